/**
 * The native addon, loaded once. When no prebuilt binary fits this machine, the error says first
 * which platform package it needs and how to install it.
 */
import type * as Binding from '../binding'

export type { CreateOptions, ViewInfo, SegmentInfo, CopyInfo } from '../binding'

/** A view's segment as the native side hands it out: asked with `segmentIsLive`, closed with `segmentClose`. */
export type Segment = unknown

/** The napi target triple's platform-package suffix for this machine, e.g. `linux-x64-gnu`. */
export function platformTarget(): string {
  const { platform, arch } = process
  if (platform === 'linux') {
    const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined
    const libc = report?.header?.glibcVersionRuntime ? 'gnu' : 'musl'
    return `linux-${arch}-${libc}`
  }
  if (platform === 'win32') return `win32-${arch}-msvc`
  return `${platform}-${arch}`
}

/**
 * A channel's per-message calls, a string vector's per-block count and the open of a plain
 * handle, exported by the addon as plain Node-API functions (`crates/napi/src/raw.rs`), for which
 * no declarations are generated.
 */
interface RawCalls {
  /**
   * Opens a whole handle with no options in one call: this thread's buffer over its live
   * mapping, or a new view's description (its buffer made this thread's), or null, with nothing
   * mapped, for a segment over `bytesLeft` bytes or `maxLength` (the caller then takes the long
   * way, which says why).
   */
  openPlain(handle: string, bytesLeft: number, maxLength: number): Binding.ViewInfo | ArrayBuffer | SharedArrayBuffer | null
  /** Sends if there is room: false when the ring is full. */
  channelTrySend(words: Uint32Array, message: Uint8Array, flags: number): boolean
  /** Sends, blocking up to the timeout (milliseconds, Infinity for none) for room: false when it timed out. */
  channelSend(words: Uint32Array, message: Uint8Array, flags: number, timeoutMs: number): boolean
  /**
   * Receives a message if there is one into `scratch` (at least the channel's largest message):
   * its length; for a handle, -3 less its length; -1 for none yet, -2 for none ever again.
   */
  channelTryReceiveInto(words: Uint32Array, scratch: Uint8Array): number
  /** As `channelTryReceiveInto`, blocking up to the timeout: -1 when it timed out. */
  channelReceiveInto(words: Uint32Array, scratch: Uint8Array, timeoutMs: number): number
  /**
   * Decodes strings `from` to `end` of a string vector (bytes `a` to `b`) into two texts: the
   * strings that fit in Latin-1 into `latin1`, one byte a character, the others into `wide` as
   * UTF-16 (little endian). `ends[k]` is where string `from + k` ends: in `latin1`'s text when
   * at or past 0, else its bitwise not in `wide`'s units; `ends[end - from]` is `wide`'s units.
   * Answers the bytes of `latin1`; -1 when a string is not UTF-8 on its own; -2 less the first
   * string whose offsets are out of order or outside the values.
   */
  utf8Split(values: Uint8Array, offsets: Int32Array, from: number, end: number, a: number, b: number, latin1: Uint8Array, wide: Uint8Array, ends: Int32Array): number
}

function load(): typeof Binding & RawCalls {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require('../binding.js') as typeof Binding & RawCalls
  } catch (cause) {
    const pkg = `@sharedobject/core-${platformTarget()}`
    const e = new Error(
      `@sharedobject/core has no native binary for this machine (${process.platform} ${process.arch}). ` +
        `It needs the package ${pkg}: install it with \`npm i ${pkg}\` (npm installs it by itself unless ` +
        `optional dependencies were skipped, e.g. by --omit=optional or a lockfile made on another platform).`,
      { cause },
    )
    Object.defineProperty(e, 'code', { value: 'ERR_SHM_NO_BINARY', enumerable: true })
    throw e
  }
}

export const native: typeof Binding & RawCalls = load()

// A view's description is made here from its fields, in the order `ViewInfo` declares them
// (crates/napi/src/lib.rs, `info_value`): made property by property from native code, each
// name looked up first, it cost 70 µs instead of 58 in a child that opened once in a while.
native.setInfoFactory(
  (
    buffer: unknown,
    segment: unknown,
    key: unknown,
    id: unknown,
    handle: unknown,
    kind: unknown,
    length: unknown,
    byteLength: unknown,
    copyOnWrite: unknown,
    persistent: unknown,
    owner: unknown,
    ownerPid: unknown,
    created: unknown,
    attributes: unknown,
    aux: unknown,
    path: unknown,
  ) => ({ buffer, segment, key, id, handle, kind, length, byteLength, copyOnWrite, persistent, owner, ownerPid, created, attributes, aux, path }) as unknown as Binding.ViewInfo,
)
