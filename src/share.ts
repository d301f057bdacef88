/** Sharing: values copied into new shared memory, and zero-filled vectors made in place. */
import { constants as bufferConstants } from 'node:buffer'

import { native, type ViewInfo } from './native'
import { codes, coded, type CodedError } from './errors'
import { CTORS, arrayKind, isKind, isNumericKind, numericKindOf, type Kind, type NumericKind, type NumericVector, type Shared, type SharedVector, type VectorOf } from './kinds'
import { resolve, type Resolved, type ShareOptions } from './options'
import { Factor, NA_LOGICAL, SharedLogicalVector, SharedStringVector, encodeFactor, encodeStrings } from './vectors'
import { MAX_DEPTH, handOut, isContainer, metaOf } from './views'
import { containerOpens, touch } from './handouts'
import { close, free } from './inspect'
import { createOptions, created } from './create'
import { vectorOf } from './values'
import { arrowShape, shareArrow } from './arrow'


const bytesOf = (v: ArrayBufferView): Uint8Array => new Uint8Array(v.buffer, v.byteOffset, v.byteLength)

function logicalCodes(values: readonly unknown[]): Int8Array {
  const c = new Int8Array(values.length)
  for (let i = 0; i < values.length; i++) {
    const v = values[i]
    if (v === true) c[i] = 1
    else if (v === null || v === undefined) c[i] = NA_LOGICAL
    else if (v !== false) throw coded(codes.INVALID_ARG_TYPE, `a logical vector holds true, false or null; element ${i} is ${typeof v}`, TypeError)
  }
  return c
}

/** A TypedArray of `kind` from an ordinary array, checking every element's type. */
function numericFrom(kind: NumericKind, values: readonly unknown[]): NumericVector {
  const wide = kind === 'int64' || kind === 'uint64'
  values.forEach((v, i) => {
    if (typeof v !== (wide ? 'bigint' : 'number')) {
      throw coded(codes.INVALID_ARG_TYPE, `a ${kind} vector holds ${wide ? 'bigints' : 'numbers'}; element ${i} is ${typeof v}`, TypeError)
    }
  })
  return (CTORS[kind] as unknown as { from(a: readonly unknown[]): NumericVector }).from(values)
}

/** Shares one vector, or returns undefined when `value` is not one; hands it out with `opens`. */
function shareVector(value: unknown, o: Resolved): SharedVector | undefined {
  const v = makeVector(value, o)
  if (v !== undefined && o.opens !== undefined) {
    const meta = metaOf(v)
    if (meta) handOut(meta, o.opens)
  }
  return v
}

function makeVector(value: unknown, o: Resolved): SharedVector | undefined {
  const arrow = arrowShape(value)
  if (arrow) return shareArrow(value, arrow, o, (v, oo) => share(v, oo)) as SharedVector
  let numeric = numericKindOf(value)
  let kind: Kind | undefined = numeric
  if (!kind && value instanceof SharedLogicalVector) kind = 'logical'
  if (!kind && (value instanceof SharedStringVector || value instanceof Factor)) kind = 'string'
  // A long array that starts with a string is most likely a string vector: the encoder checks
  // each element as it goes, one pass over the strings instead of two, and gives it back (a
  // container, as arrayKind would say) at the first that is neither a string nor NA.
  let maybeStrings = false
  if (!kind && Array.isArray(value)) {
    maybeStrings = o.kind === undefined && value.length >= Math.max(1024, o.minLength) && typeof value[0] === 'string'
    kind = maybeStrings ? 'string' : arrayKind(value)
  }
  if (o.kind !== undefined) {
    if (!kind && !Array.isArray(value)) {
      throw coded(codes.INVALID_ARG_TYPE, `share: kind ${o.kind} needs an array or a vector`, TypeError)
    }
    if (kind !== o.kind || (Array.isArray(value) && isNumericKind(o.kind))) {
      const items = value instanceof SharedLogicalVector || value instanceof SharedStringVector ? value.toArray() : Array.from(value as ArrayLike<unknown>)
      value = isNumericKind(o.kind) ? numericFrom(o.kind, items) : items
    }
    kind = o.kind
    numeric = isNumericKind(kind) ? kind : undefined
  }
  if (!kind) return undefined
  const length = (value as { length: number }).length
  // A vector of an explicit kind is what the caller asked for, short or not.
  if (length < o.minLength && o.name === undefined && o.kind === undefined) return value as SharedVector
  let info: ViewInfo
  if (numeric) {
    info = native.create(createOptions(numeric, length, o), bytesOf(value as NumericVector))
  } else if (kind === 'float64') {
    info = native.create(createOptions(kind, length, o), bytesOf(numericFrom('float64', value as unknown[])))
  } else if (kind === 'logical') {
    const c = value instanceof SharedLogicalVector ? value.codes : logicalCodes(value as unknown[])
    info = native.create(createOptions(kind, length, o), bytesOf(c))
  } else {
    const encoded =
      value instanceof Factor ? encodeFactor(value) : encodeStrings(value instanceof SharedStringVector ? value.toArray() : (value as unknown[]), o.dictionary, maybeStrings)
    if (!encoded) return undefined
    const { bytes, aux } = encoded
    info = native.create(createOptions(kind, length, o, { byteLength: bytes.length, aux }), bytes)
  }
  return vectorOf(created(info))
}

/**
 * Copies `value` into new shared memory once. A TypedArray, `boolean[]`, `string[]` or
 * `number[]` becomes a shared vector (a TypedArray, `SharedLogicalVector`, `SharedStringVector`,
 * `Float64Array`); plain objects and arrays of other things are shared element by element,
 * recursively, into a container of the same shape (R's lists and data.frames). Other values stay
 * as they are, or throw with `mustWork`. With `kind`, an array or vector becomes a vector of that
 * kind (whatever `minLength` says).
 */
export function share<K extends Kind>(value: ArrayLike<unknown> | SharedLogicalVector | SharedStringVector, opts: ShareOptions & { kind: K }): VectorOf<K>
export function share<T>(value: T, opts?: ShareOptions): Shared<T>
export function share<T>(value: T, opts?: ShareOptions): Shared<T> {
  touch()
  const o = resolve(opts)
  const vector = shareVector(value, o)
  if (vector !== undefined) return vector as Shared<T>
  if (!isContainer(value)) {
    // A mutex or barrier is shared already: it stays as it is.
    if (o.mustWork && !metaOf(value)) throw unsharable(value, 'value')
    return value as Shared<T>
  }
  if (o.name !== undefined || o.attributes !== undefined || o.kind !== undefined) {
    throw coded(codes.INVALID_ARG_TYPE, 'share: name, attributes and kind belong to one vector, not to a container', TypeError)
  }
  const made: unknown[] = []
  try {
    const out = shareContainer(value, o, 'value', made) as Shared<T>
    if (o.opens !== undefined) containerOpens.set(out as object, o.opens)
    return out
  } catch (e) {
    // Nothing half-shared is left behind when one element fails (persistent leaves included).
    for (const v of made) {
      free(v)
      close(v)
    }
    throw e
  }
}

function unsharable(value: unknown, where: string): CodedError {
  const what = value === null ? 'null' : typeof value === 'object' ? Object.prototype.toString.call(value) : typeof value
  return coded(codes.INVALID_ARG_TYPE, `share: ${where} (${what}) cannot be shared; to leave such values as they are, do not set mustWork`, TypeError)
}

function shareContainer(value: object, o: Resolved, where: string, made: unknown[], path: object[] = []): unknown {
  if (path.includes(value)) throw coded(codes.INVALID_ARG_VALUE, `share: ${where} refers to a container that holds it`, TypeError)
  if (path.length >= MAX_DEPTH) throw coded(codes.OUT_OF_RANGE, `share: containers nest deeper than ${MAX_DEPTH} levels`, RangeError)
  path = [...path, value]
  const one = (v: unknown, at: string): unknown => {
    const vector = shareVector(v, o)
    if (vector !== undefined) {
      made.push(vector)
      return vector
    }
    if (isContainer(v)) return shareContainer(v, o, at, made, path)
    // Plain values of a container (numbers, strings, booleans, null) travel by value anyway.
    if (v === null || v === undefined || ['number', 'string', 'boolean', 'bigint'].includes(typeof v)) return v
    if (o.mustWork && !metaOf(v)) throw unsharable(v, at)
    return v
  }
  if (Array.isArray(value)) return value.map((v, i) => one(v, `${where}[${i}]`))
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(value)) out[k] = one(v, `${where}.${k}`)
  return out
}

/** A zero-filled (logical: all false) shared vector of `length` elements, with no source copy (R: `SharedObject()`). */
export function alloc(kind: 'float64', length: number, opts?: ShareOptions): Float64Array
export function alloc(kind: 'float32', length: number, opts?: ShareOptions): Float32Array
export function alloc(kind: 'int8', length: number, opts?: ShareOptions): Int8Array
export function alloc(kind: 'uint8', length: number, opts?: ShareOptions): Uint8Array
export function alloc(kind: 'uint8clamped', length: number, opts?: ShareOptions): Uint8ClampedArray
export function alloc(kind: 'int16', length: number, opts?: ShareOptions): Int16Array
export function alloc(kind: 'uint16', length: number, opts?: ShareOptions): Uint16Array
export function alloc(kind: 'int32', length: number, opts?: ShareOptions): Int32Array
export function alloc(kind: 'uint32', length: number, opts?: ShareOptions): Uint32Array
export function alloc(kind: 'int64', length: number, opts?: ShareOptions): BigInt64Array
export function alloc(kind: 'uint64', length: number, opts?: ShareOptions): BigUint64Array
export function alloc(kind: 'logical', length: number, opts?: ShareOptions): SharedLogicalVector
export function alloc(kind: Kind, length: number, opts?: ShareOptions): SharedVector
export function alloc(kind: Kind, length: number, opts?: ShareOptions): SharedVector {
  if (kind === 'string') {
    throw coded(codes.INVALID_ARG_VALUE, "alloc: string vectors are immutable; share(['a', 'b', ...]) makes one", TypeError)
  }
  if (!isKind(kind)) {
    throw coded(codes.INVALID_ARG_VALUE, `alloc: unknown kind ${JSON.stringify(kind)}; kinds are ${[...Object.keys(CTORS), 'logical'].join(', ')}`, TypeError)
  }
  if (typeof length !== 'number' || !Number.isSafeInteger(length) || length < 0) {
    throw coded(codes.OUT_OF_RANGE, `alloc: length must be a whole number >= 0, got ${String(length)}`, RangeError)
  }
  const bytes = length * (kind === 'logical' ? 1 : CTORS[kind].BYTES_PER_ELEMENT)
  if (bytes > bufferConstants.MAX_LENGTH) {
    throw coded(
      codes.OUT_OF_RANGE,
      `alloc: ${bytes} bytes is more than this Node.js can view as one ArrayBuffer (${bufferConstants.MAX_LENGTH})`,
      RangeError,
    )
  }
  touch()
  const o = resolve(opts)
  const meta = created(native.create(createOptions(kind, length, o), undefined))
  if (o.opens !== undefined) handOut(meta, o.opens)
  return vectorOf(meta)
}
