/** The kinds of vector: their names, the TypedArray of each numeric kind, and how arrays map to them. */
import type { Factor, SharedLogicalVector, SharedStringVector } from './vectors'

/** Every numeric kind and the TypedArray a user holds for it. */
export const CTORS = {
  float64: Float64Array,
  float32: Float32Array,
  int8: Int8Array,
  uint8: Uint8Array,
  uint8clamped: Uint8ClampedArray,
  int16: Int16Array,
  uint16: Uint16Array,
  int32: Int32Array,
  uint32: Uint32Array,
  int64: BigInt64Array,
  uint64: BigUint64Array,
} as const

/**
 * A numeric kind: `'float64'`, `'float32'`, `'int8'`, `'uint8'`, `'uint8clamped'`, `'int16'`,
 * `'uint16'`, `'int32'`, `'uint32'`, `'int64'` or `'uint64'`, named after the TypedArray it gives.
 */
export type NumericKind = keyof typeof CTORS
/** Every kind of shared vector: a numeric kind, `'logical'` or `'string'`. */
export type Kind = NumericKind | 'logical' | 'string'
/** The value a user holds for each numeric kind. */
export type NumericVector =
  | Float64Array
  | Float32Array
  | Int8Array
  | Uint8Array
  | Uint8ClampedArray
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array
export type SharedVector = NumericVector | SharedLogicalVector | SharedStringVector

/** An apache-arrow Table or RecordBatch, known by its shape so that typing needs no apache-arrow. */
export type ArrowTableLike = { readonly schema: unknown; readonly numRows: number; getChild(name: never): unknown }
/** An apache-arrow Vector, likewise. */
type ArrowVectorLike = { readonly type: { readonly typeId: number }; readonly data: readonly unknown[] }

/**
 * The apache-arrow `Vector` that `toArrow` returns, typed by its shape so that the package's
 * types never require apache-arrow: with apache-arrow installed, cast it to the precise
 * `Vector<Float64>` (etc.) its kind gives.
 */
export interface ArrowVector extends ArrowVectorLike {
  readonly length: number
  get(index: number): unknown
  toArray(): unknown
}

/**
 * The value a user holds for each kind. A shared TypedArray's buffer is a SharedArrayBuffer where
 * the runtime can make one and an ArrayBuffer elsewhere, so its type says `ArrayBufferLike`.
 */
export interface VectorOfKind {
  float64: Float64Array<ArrayBufferLike>
  float32: Float32Array<ArrayBufferLike>
  int8: Int8Array<ArrayBufferLike>
  uint8: Uint8Array<ArrayBufferLike>
  uint8clamped: Uint8ClampedArray<ArrayBufferLike>
  int16: Int16Array<ArrayBufferLike>
  uint16: Uint16Array<ArrayBufferLike>
  int32: Int32Array<ArrayBufferLike>
  uint32: Uint32Array<ArrayBufferLike>
  int64: BigInt64Array<ArrayBufferLike>
  uint64: BigUint64Array<ArrayBufferLike>
  logical: SharedLogicalVector
  string: SharedStringVector
}

/** The vector of kind `K`. */
export type VectorOf<K extends Kind> = VectorOfKind[K]

/** The kind of a TypedArray type (by its `Symbol.toStringTag`), or never. */
export type NumericKindOf<T> = T extends { readonly [Symbol.toStringTag]: infer Tag }
  ? { [K in NumericKind]: VectorOfKind[K][typeof Symbol.toStringTag] extends Tag ? K : never }[NumericKind]
  : never

/** What `unshare` (or `open(h, { copy: true })`) gives for a vector: an ordinary private value. */
export type Unshared<V> = V extends SharedLogicalVector
  ? (boolean | null)[]
  : V extends SharedStringVector
    ? (string | null)[]
    : V extends NumericVector
      ? VectorOfKind[NumericKindOf<V>] extends infer R
        ? R extends { slice(): infer C }
          ? C
          : V
        : V
      : V

/** Values `share` leaves as they are: they are neither vectors nor containers. */
export type Kept =
  // eslint-disable-next-line @typescript-eslint/no-unsafe-function-type
  | Function
  | Date
  | RegExp
  | Error
  | Promise<unknown>
  | ReadonlyMap<unknown, unknown>
  | ReadonlySet<unknown>
  | WeakMap<WeakKey, unknown>
  | WeakSet<WeakKey>
  | ArrayBuffer
  | SharedArrayBuffer
  | DataView

/**
 * What `share` makes of a value: vectors become shared vectors (a TypedArray stays its type, now
 * over a buffer that may be a SharedArrayBuffer), `boolean[]` a `SharedLogicalVector`, `string[]`
 * a `SharedStringVector`, `number[]` a `Float64Array`; plain objects and other arrays keep their
 * shape with every leaf shared; an Arrow table stays a table (over shared memory) and an Arrow
 * vector becomes a vector of ours; `[]`, functions, Dates and other objects stay as they are.
 */
export type Shared<T> = T extends SharedLogicalVector | SharedStringVector
  ? T
  : T extends Factor
    ? SharedStringVector
    : T extends NumericVector
      ? VectorOfKind[NumericKindOf<T>]
      : T extends ArrowTableLike
        ? T
        : T extends ArrowVectorLike
          ? SharedVector
          : T extends Kept
            ? T
            : T extends readonly never[]
              ? T
              : T extends readonly (boolean | null)[]
                ? SharedLogicalVector
                : T extends readonly (string | null)[]
                  ? SharedStringVector
                  : T extends readonly number[]
                    ? Float64Array<ArrayBufferLike>
                    : T extends object
                      ? { -readonly [K in keyof T]: Shared<T[K]> }
                      : T

const KIND_OF_TAG: Record<string, NumericKind> = {
  '[object Float64Array]': 'float64',
  '[object Float32Array]': 'float32',
  '[object Int8Array]': 'int8',
  '[object Uint8Array]': 'uint8',
  '[object Uint8ClampedArray]': 'uint8clamped',
  '[object Int16Array]': 'int16',
  '[object Uint16Array]': 'uint16',
  '[object Int32Array]': 'int32',
  '[object Uint32Array]': 'uint32',
  '[object BigInt64Array]': 'int64',
  '[object BigUint64Array]': 'uint64',
}

/** The numeric kind of a TypedArray (from any realm), or undefined. */
export function numericKindOf(value: unknown): NumericKind | undefined {
  if (!ArrayBuffer.isView(value)) return undefined
  return KIND_OF_TAG[Object.prototype.toString.call(value)]
}

export const isNumericKind = (kind: unknown): kind is NumericKind => typeof kind === 'string' && Object.prototype.hasOwnProperty.call(CTORS, kind)
export const isKind = (kind: unknown): kind is Kind => isNumericKind(kind) || kind === 'logical' || kind === 'string'

/**
 * Which vector an ordinary array is: booleans (and nulls) are logical, strings (and nulls) are
 * strings, numbers are float64 (R's numeric). Anything else, or only nulls, is a container.
 */
export function arrayKind(a: readonly unknown[]): Kind | undefined {
  let seen: 'boolean' | 'string' | 'number' | undefined
  for (const v of a) {
    if (v === null || v === undefined) {
      if (seen === 'number') return undefined
      continue
    }
    const t = typeof v
    if (t !== 'boolean' && t !== 'string' && t !== 'number') return undefined
    if (seen === undefined) seen = t
    else if (seen !== t) return undefined
  }
  if (seen === 'number' && a.some((v) => v === null || v === undefined)) return undefined
  return seen === 'boolean' ? 'logical' : seen === 'string' ? 'string' : seen === 'number' ? 'float64' : undefined
}
