/** The kinds of vector: their names, the TypedArray of each numeric kind, and how arrays map to them. */
import type { SharedLogicalVector, SharedStringVector } from './vectors'

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
type ArrowTableLike = { readonly schema: unknown; readonly numRows: number; getChild(name: never): unknown }
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
 * What `share` makes of a value: vectors become shared vectors, containers keep their shape, an
 * Arrow table stays a table (over shared memory) and an Arrow vector becomes a vector of ours.
 */
export type Shared<T> = T extends NumericVector | SharedLogicalVector | SharedStringVector
  ? T
  : T extends ArrowTableLike
    ? T
    : T extends ArrowVectorLike
      ? SharedVector
      : T extends readonly (boolean | null)[]
        ? SharedLogicalVector
        : T extends readonly (string | null)[]
          ? SharedStringVector
          : T extends readonly number[]
            ? Float64Array
            : T extends object
              ? { [K in keyof T]: Shared<T[K]> }
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
