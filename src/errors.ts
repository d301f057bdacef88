/**
 * Error codes, defined once for JavaScript; `crates/core/src/error.rs` defines the same for
 * Rust. Every error this package throws carries one of them in `error.code`.
 */
export const codes = {
  NOT_FOUND: 'ERR_SHM_NOT_FOUND',
  NO_SPACE: 'ERR_SHM_NO_SPACE',
  INVALID_HANDLE: 'ERR_SHM_INVALID_HANDLE',
  BAD_HEADER: 'ERR_SHM_BAD_HEADER',
  CLOSED: 'ERR_SHM_CLOSED',
  EXISTS: 'ERR_SHM_EXISTS',
  PERMISSION: 'ERR_SHM_PERMISSION',
  NAME: 'ERR_SHM_NAME',
  EXTERNAL_BUFFERS: 'ERR_SHM_EXTERNAL_BUFFERS',
  OS: 'ERR_SHM_OS',
  OUT_OF_RANGE: 'ERR_OUT_OF_RANGE',
  INVALID_ARG_TYPE: 'ERR_INVALID_ARG_TYPE',
  INVALID_ARG_VALUE: 'ERR_INVALID_ARG_VALUE',
  NOT_SHARED: 'ERR_SHM_NOT_SHARED',
  READ_ONLY: 'ERR_SHM_READ_ONLY',
  NO_ARROW: 'ERR_SHM_NO_ARROW',
  WRONG_KIND: 'ERR_SHM_WRONG_KIND',
  WOULD_COPY: 'ERR_SHM_WOULD_COPY',
  COPY_ON_WRITE: 'ERR_SHM_COPY_ON_WRITE',
  NOT_OWNER: 'ERR_SHM_NOT_OWNER',
  DEADLOCK: 'ERR_SHM_DEADLOCK',
  BARRIER_BROKEN: 'ERR_SHM_BARRIER_BROKEN',
} as const

export type ErrorCode = (typeof codes)[keyof typeof codes]

/** An Error (or TypeError / RangeError) with a `code`. */
export type CodedError = Error & { code: ErrorCode }

export function coded(
  code: ErrorCode,
  message: string,
  Ctor: ErrorConstructor | TypeErrorConstructor | RangeErrorConstructor = Error,
): CodedError {
  const e = new Ctor(message) as CodedError
  Object.defineProperty(e, 'code', { value: code, enumerable: true, configurable: true, writable: true })
  return e
}
