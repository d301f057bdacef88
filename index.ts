/**
 * sharedobject: share big vectors between the processes of one machine through OS shared
 * memory, with no copies.
 *
 * Words: a *segment* is the OS shared-memory object; its *id* is its name; a *handle* is the
 * short string that travels between processes; a *view* is a JavaScript object over a mapping;
 * the *owner* is the process that created the segment.
 *
 * Who frees what: the owner's segment is removed when its last view in the owner process is
 * garbage-collected or closed, or when the owner exits; processes that mapped it before keep
 * working. `persist: true` and developer-API segments stay until `free`. A crashed owner leaves
 * its segment behind until `sweep()` (run cheaply at load, and by `sharedobject gc`).
 */
import { constants as bufferConstants } from 'node:buffer'
import * as path from 'node:path'

import * as native from './binding'
import { codes, coded, type CodedError, type ErrorCode } from './errors'
import { SharedLogicalVector, SharedStringVector, NA_LOGICAL, encodeStrings, layoutFromAux } from './vectors'

export { codes, type CodedError, type ErrorCode, SharedLogicalVector, SharedStringVector, NA_LOGICAL }

// ---------------------------------------------------------------------------------------------
// Kinds

/** Every numeric kind and the TypedArray a user holds for it. */
const CTORS = {
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

export type NumericKind = keyof typeof CTORS
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

/** What `share` makes of a value: vectors become shared vectors, containers keep their shape. */
export type Shared<T> = T extends NumericVector | SharedLogicalVector | SharedStringVector
  ? T
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
function numericKindOf(value: unknown): NumericKind | undefined {
  if (!ArrayBuffer.isView(value)) return undefined
  return KIND_OF_TAG[Object.prototype.toString.call(value)]
}

const isNumericKind = (kind: unknown): kind is NumericKind => typeof kind === 'string' && Object.prototype.hasOwnProperty.call(CTORS, kind)
const isKind = (kind: unknown): kind is Kind => isNumericKind(kind) || kind === 'logical' || kind === 'string'

/**
 * Which vector an ordinary array is: booleans (and nulls) are logical, strings (and nulls) are
 * strings, numbers are float64 (R's numeric). Anything else, or only nulls, is a container.
 */
function arrayKind(a: readonly unknown[]): Kind | undefined {
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

// ---------------------------------------------------------------------------------------------
// Options

/** Package options; every one can be overridden per call. */
export interface Options {
  /**
   * Map segments privately: a process that writes gets its own copy of the pages it touches.
   * Default `false`: writes are seen by every process at once (R's default is `TRUE`).
   */
  copyOnWrite: boolean
  /** Vectors shorter than this are left unshared by `share`. Default 0 (R: 3). */
  minLength: number
  /** Throw when a value cannot be shared, instead of leaving it as it is. Default `false`. */
  mustWork: boolean
  /** Allocate every page at creation, so a full `/dev/shm` is an error then. Default `true`. */
  reserve: boolean
  /** Keep segments after their owner ends, until `free`. Default `false`. */
  persist: boolean
  /** Store each unique string once, with a code per element (R SharedObject's scheme). Default `false`. */
  dictionary: boolean
}

/** Options of `share` and `alloc`. */
export interface ShareOptions extends Partial<Options> {
  /** `share` only: the kind of vector to make of an array, instead of inferring it. */
  kind?: Kind
  /** A user-chosen id for one vector: 1 to 25 characters of `A-Z a-z 0-9 . _ -`. Default: 80 random bits. */
  name?: string
  /** JSON-serialisable attributes stored with one vector (`dim`, names, units, ...). */
  attributes?: unknown
}

/** Options of `open` and `revive`. */
export interface OpenOptions {
  /** Override the sharer's copy-on-write choice for this process. */
  copyOnWrite?: boolean
  /**
   * Read an ordinary private copy instead of mapping: for runtimes that forbid external buffers
   * (Electron), where mapping throws `ERR_SHM_EXTERNAL_BUFFERS`. The result is what `unshare`
   * would give.
   */
  copy?: boolean
}

const DEFAULTS: Options = { copyOnWrite: false, minLength: 0, mustWork: false, reserve: true, persist: false, dictionary: false }
const options: Options = { ...DEFAULTS }

function checkOption(key: string, value: unknown): void {
  if (!Object.prototype.hasOwnProperty.call(DEFAULTS, key)) {
    throw coded(codes.INVALID_ARG_VALUE, `unknown option ${JSON.stringify(key)}; options are ${Object.keys(DEFAULTS).join(', ')}`, TypeError)
  }
  if (key === 'minLength') {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
      throw coded(codes.OUT_OF_RANGE, `minLength must be a whole number >= 0, got ${String(value)}`, RangeError)
    }
  } else if (typeof value !== 'boolean') {
    throw coded(codes.INVALID_ARG_TYPE, `option ${key} must be a boolean, got ${typeof value}`, TypeError)
  }
}

/** Sets package options for this process; returns their previous values. */
export function setOptions(o: Partial<Options>): Partial<Options> {
  if (o === null || typeof o !== 'object') throw coded(codes.INVALID_ARG_TYPE, 'setOptions takes an object', TypeError)
  for (const [k, v] of Object.entries(o)) checkOption(k, v)
  const old: Partial<Options> = {}
  for (const [k, v] of Object.entries(o)) {
    ;(old as Record<string, unknown>)[k] = (options as unknown as Record<string, unknown>)[k]
    ;(options as unknown as Record<string, unknown>)[k] = v
  }
  return old
}

/** The package options in force in this process. */
export function getOptions(): Options {
  return { ...options }
}

type Resolved = Options & ShareOptions

function resolve(o: ShareOptions | undefined): Resolved {
  if (o === undefined) return { ...options }
  if (o === null || typeof o !== 'object') throw coded(codes.INVALID_ARG_TYPE, 'options must be an object', TypeError)
  for (const [k, v] of Object.entries(o)) {
    if (k === 'name' || k === 'attributes' || k === 'kind' || v === undefined) continue
    checkOption(k, v)
  }
  if (o.name !== undefined && typeof o.name !== 'string') {
    throw coded(codes.NAME, `name must be a string, got ${typeof o.name}`, TypeError)
  }
  if (o.kind !== undefined && !isKind(o.kind)) {
    throw coded(codes.INVALID_ARG_VALUE, `unknown kind ${JSON.stringify(o.kind)}; kinds are ${[...Object.keys(CTORS), 'logical', 'string'].join(', ')}`, TypeError)
  }
  return { ...options, ...o }
}

// ---------------------------------------------------------------------------------------------
// Views and their metadata

/** What this process knows of one view; keyed by the view's ArrayBuffer. */
interface Meta {
  token: number
  id: string
  handle: string
  kind: Kind | 'bytes' | 'list'
  length: number
  byteLength: number
  copyOnWrite: boolean
  persistent: boolean
  owner: boolean
  ownerPid: number
  created: number
  attributes: string
  aux: number[]
  buffer: ArrayBuffer
  closed: boolean
}

const metas = new WeakMap<ArrayBuffer, Meta>()

/**
 * One ArrayBuffer per segment and mode per thread: opening a handle again (every task message
 * may carry the same vector) reuses it. Each new external ArrayBuffer makes V8 count its bytes as
 * external memory and run a garbage collection, so reuse keeps repeated hand-overs cheap.
 */
const buffers = new Map<string, WeakRef<ArrayBuffer>>()
const forget = new FinalizationRegistry<string>((key) => {
  if (buffers.get(key)?.deref() === undefined) buffers.delete(key)
})
const modeKey = (cow: boolean | undefined): string => (cow === undefined ? 'default' : cow ? 'cow' : 'shared')

function cache(key: string, buffer: ArrayBuffer): void {
  buffers.set(key, new WeakRef(buffer))
  forget.register(buffer, key)
}

/** A live cached buffer for this handle and mode, if the segment can still be opened. */
function cached(handle: string, cow: boolean | undefined): Meta | undefined {
  const buffer = buffers.get(`${handle}|${modeKey(cow)}`)?.deref()
  const meta = buffer && metas.get(buffer)
  if (!meta || meta.closed) return undefined
  // open() means opening by name: a freed segment is not found even if this thread maps it,
  // and a name freed and made again elsewhere names another segment.
  return native.isCurrent(handle) ? meta : undefined
}

/** The buffer behind a shared vector (or a developer ArrayBuffer). */
function bufferOf(value: unknown): ArrayBuffer | undefined {
  if (ArrayBuffer.isView(value)) return value.buffer as ArrayBuffer
  if (value instanceof SharedLogicalVector || value instanceof SharedStringVector) return value.buffer
  if (value instanceof ArrayBuffer) return value
  return undefined
}

function metaOf(value: unknown): Meta | undefined {
  const b = bufferOf(value)
  return b && metas.get(b)
}

function remember(info: native.ViewInfo): Meta {
  const meta: Meta = {
    token: info.token,
    id: info.id,
    handle: info.handle,
    kind: info.kind as Meta['kind'],
    length: info.length,
    byteLength: info.byteLength,
    copyOnWrite: info.copyOnWrite,
    persistent: info.persistent,
    owner: info.owner,
    ownerPid: info.ownerPid,
    created: info.created,
    attributes: info.attributes,
    aux: info.aux,
    buffer: info.buffer,
    closed: false,
  }
  metas.set(info.buffer, meta)
  return meta
}

/** `JSON.stringify` of a shared vector gives its handle, which `revive` turns back into it. */
function sharedToJSON(this: SharedVector): { $sharedobject: string } {
  return { $sharedobject: handleOf(this) }
}

Object.defineProperty(SharedLogicalVector.prototype, 'toJSON', { value: sharedToJSON, configurable: true, writable: true })
Object.defineProperty(SharedStringVector.prototype, 'toJSON', { value: sharedToJSON, configurable: true, writable: true })

function vectorOf(meta: Meta): SharedVector {
  if (meta.kind === 'logical') return new SharedLogicalVector(new Int8Array(meta.buffer, 0, meta.length))
  if (meta.kind === 'string') return new SharedStringVector(meta.buffer, meta.length, layoutFromAux(meta.aux))
  const Ctor = CTORS[meta.kind as NumericKind]
  const v = new Ctor(meta.buffer, 0, meta.length)
  Object.defineProperty(v, 'toJSON', { value: sharedToJSON, configurable: true, writable: true, enumerable: false })
  return v
}

function liveMeta(value: unknown, fn: string): Meta {
  const meta = metaOf(value)
  if (!meta) throw coded(codes.NOT_SHARED, `${fn}: the value is not a shared vector`, TypeError)
  if (meta.closed) throw coded(codes.CLOSED, `${fn}: the vector was closed in this thread`)
  return meta
}

function isPlainObject(v: object): boolean {
  const proto = Object.getPrototypeOf(v)
  return proto === Object.prototype || proto === null
}

const isContainer = (v: unknown): v is object => v !== null && typeof v === 'object' && (Array.isArray(v) || isPlainObject(v)) && !metaOf(v)

/** Calls `f` on every leaf of a value: the value itself, or every element of a container. */
function leaves(value: unknown, f: (leaf: unknown) => void): void {
  if (isContainer(value)) for (const v of Object.values(value)) leaves(v, f)
  else f(value)
}

// ---------------------------------------------------------------------------------------------
// Sharing

function createOptions(kind: Kind | 'list', length: number, o: Resolved, extra: Partial<native.CreateOptions> = {}): native.CreateOptions {
  let attributes: string | undefined
  if (o.attributes !== undefined) {
    try {
      attributes = JSON.stringify(o.attributes)
    } catch (e) {
      throw coded(codes.INVALID_ARG_VALUE, `attributes must be JSON-serialisable: ${(e as Error).message}`, TypeError)
    }
  }
  return { kind, length, id: o.name, attributes, copyOnWrite: o.copyOnWrite, persist: o.persist, reserve: o.reserve, ...extra }
}

/** The owner's view is also what this thread gets when it opens its own handle. */
function created(info: native.ViewInfo): Meta {
  const meta = remember(info)
  cache(`${info.handle}|${modeKey(undefined)}`, info.buffer)
  cache(`${info.handle}|${modeKey(info.copyOnWrite)}`, info.buffer)
  return meta
}

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

/** Shares one vector, or returns undefined when `value` is not one. */
function shareVector(value: unknown, o: Resolved): SharedVector | undefined {
  let numeric = numericKindOf(value)
  let kind: Kind | undefined = numeric
  if (!kind && value instanceof SharedLogicalVector) kind = 'logical'
  if (!kind && value instanceof SharedStringVector) kind = 'string'
  if (!kind && Array.isArray(value)) kind = arrayKind(value)
  if (o.kind !== undefined) {
    if (!kind && !Array.isArray(value)) {
      throw coded(codes.INVALID_ARG_TYPE, `share: kind ${o.kind} needs an array or a vector`, TypeError)
    }
    if (kind !== o.kind) {
      const items = value instanceof SharedLogicalVector || value instanceof SharedStringVector ? value.toArray() : Array.from(value as ArrayLike<unknown>)
      value = isNumericKind(o.kind) ? numericFrom(o.kind, items) : items
    }
    kind = o.kind
    numeric = isNumericKind(kind) ? kind : undefined
  }
  if (!kind) return undefined
  const length = (value as { length: number }).length
  if (length < o.minLength && o.name === undefined) return value as SharedVector
  let info: native.ViewInfo
  if (numeric) {
    info = native.create(createOptions(numeric, length, o), bytesOf(value as NumericVector))
  } else if (kind === 'float64') {
    info = native.create(createOptions(kind, length, o), bytesOf(numericFrom('float64', value as unknown[])))
  } else if (kind === 'logical') {
    const c = value instanceof SharedLogicalVector ? value.codes : logicalCodes(value as unknown[])
    info = native.create(createOptions(kind, length, o), bytesOf(c))
  } else {
    const strings = value instanceof SharedStringVector ? value.toArray() : (value as unknown[])
    const { bytes, aux } = encodeStrings(strings, o.dictionary)
    info = native.create(createOptions(kind, length, o, { byteLength: bytes.length, aux }), bytes)
  }
  return vectorOf(created(info))
}

/**
 * Copies `value` into new shared memory once. A TypedArray, `boolean[]`, `string[]` or
 * `number[]` becomes a shared vector (a TypedArray, `SharedLogicalVector`, `SharedStringVector`,
 * `Float64Array`); plain objects and arrays of other things are shared element by element,
 * recursively, into a container of the same shape (R's lists and data.frames). Other values stay
 * as they are, or throw with `mustWork`.
 */
export function share<T>(value: T, opts?: ShareOptions): Shared<T> {
  const o = resolve(opts)
  const vector = shareVector(value, o)
  if (vector !== undefined) return vector as Shared<T>
  if (!isContainer(value)) {
    if (o.mustWork) throw unsharable(value, 'value')
    return value as Shared<T>
  }
  if (o.name !== undefined || o.attributes !== undefined || o.kind !== undefined) {
    throw coded(codes.INVALID_ARG_TYPE, 'share: name, attributes and kind belong to one vector, not to a container', TypeError)
  }
  const made: unknown[] = []
  try {
    return shareContainer(value, o, 'value', made) as Shared<T>
  } catch (e) {
    // Nothing half-shared is left behind when one element fails.
    for (const v of made) close(v)
    throw e
  }
}

function unsharable(value: unknown, where: string): CodedError {
  const what = value === null ? 'null' : typeof value === 'object' ? Object.prototype.toString.call(value) : typeof value
  return coded(codes.INVALID_ARG_TYPE, `share: ${where} (${what}) cannot be shared; to leave such values as they are, do not set mustWork`, TypeError)
}

function shareContainer(value: object, o: Resolved, where: string, made: unknown[]): unknown {
  const one = (v: unknown, at: string): unknown => {
    const vector = shareVector(v, o)
    if (vector !== undefined) {
      made.push(vector)
      return vector
    }
    if (isContainer(v)) return shareContainer(v, o, at, made)
    // Plain values of a container (numbers, strings, booleans, null) travel by value anyway.
    if (v === null || v === undefined || ['number', 'string', 'boolean', 'bigint'].includes(typeof v)) return v
    if (o.mustWork) throw unsharable(v, at)
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
  return vectorOf(created(native.create(createOptions(kind, length, resolve(opts)), undefined)))
}

// ---------------------------------------------------------------------------------------------
// Handles, opening, reviving

function handleText(handle: unknown, fn: string): string {
  if (handle !== null && typeof handle === 'object' && typeof (handle as { $sharedobject?: unknown }).$sharedobject === 'string') {
    return (handle as { $sharedobject: string }).$sharedobject
  }
  if (typeof handle !== 'string') {
    throw coded(codes.INVALID_HANDLE, `${fn}: a handle is a string from handleOf(), got ${handle === null ? 'null' : typeof handle}`, TypeError)
  }
  return handle
}

/** Maps a vector (or a container) shared by any process, from its handle or its JSON form. */
export function open(handle: string | { $sharedobject: string }, opts?: OpenOptions): SharedVector | object {
  const h = handleText(handle, 'open')
  const cow = opts?.copyOnWrite
  if (cow !== undefined && typeof cow !== 'boolean') {
    throw coded(codes.INVALID_ARG_TYPE, 'open: copyOnWrite must be a boolean', TypeError)
  }
  if (opts?.copy) return openCopy(h, opts)
  const hit = cached(h, cow)
  if (hit) return vectorOf(hit)
  const info = native.open(h, cow)
  if (info.kind === 'list') {
    // A container's manifest: its shape, with its leaves' handles. Only the leaves stay mapped.
    native.close(info.buffer, info.token)
    return revive((JSON.parse(info.attributes) as { $container: unknown }).$container, opts) as object
  }
  if (!isKind(info.kind)) {
    native.close(info.buffer, info.token)
    throw coded(codes.BAD_HEADER, `open: the segment holds ${info.kind} data, not a vector; use mapSharedMemory for developer segments`)
  }
  const meta = remember(info)
  cache(`${h}|${modeKey(cow)}`, info.buffer)
  return vectorOf(meta)
}

function openCopy(h: string, opts: OpenOptions): SharedVector | object {
  const c = native.readCopy(h)
  if (c.kind === 'list') return revive((JSON.parse(c.attributes) as { $container: unknown }).$container, opts) as object
  if (!isKind(c.kind)) {
    throw coded(codes.BAD_HEADER, `open: the segment holds ${c.kind} data, not a vector; use mapSharedMemory for developer segments`)
  }
  // An aligned buffer of our own, so that every element type can view it.
  const ab = new Uint8Array(c.data).buffer
  if (c.kind === 'logical') return new SharedLogicalVector(new Int8Array(ab)).toArray()
  if (c.kind === 'string') return new SharedStringVector(ab, c.length, layoutFromAux(c.aux)).toArray()
  return new CTORS[c.kind](ab, 0, c.length)
}

/** A container's manifest segment, made on the first `handleOf` and kept while the container lives. */
const manifests = new WeakMap<object, Meta>()

/**
 * The short ASCII handle of a shared vector, to send over any channel. For a container, the
 * handle of a small segment that records its shape and its leaves' handles.
 */
export function handleOf(value: unknown): string {
  if (isContainer(value)) {
    const known = manifests.get(value)
    if (known && !known.closed) return known.handle
    if (!isShared(value)) throw coded(codes.NOT_SHARED, 'handleOf: the container holds no shared vector', TypeError)
    const shape = JSON.stringify({ $container: value })
    const o = { ...options, attributes: undefined, name: undefined }
    const meta = created(native.create({ ...createOptions('list', 0, o, { byteLength: 0 }), attributes: shape }, undefined))
    manifests.set(value, meta)
    return meta.handle
  }
  return liveMeta(value, 'handleOf').handle
}

function isHandleObject(v: object): v is { $sharedobject: string } {
  const keys = Object.keys(v)
  return keys.length === 1 && keys[0] === '$sharedobject' && typeof (v as { $sharedobject: unknown }).$sharedobject === 'string'
}

/**
 * Walks a received message and opens every `{"$sharedobject": handle}` in it. Arrays and plain
 * objects are rebuilt; everything else is returned as it is.
 */
export function revive<T = unknown>(message: unknown, opts?: OpenOptions): T {
  const walk = (v: unknown): unknown => {
    if (v === null || typeof v !== 'object') return v
    if (Array.isArray(v)) return v.map(walk)
    if (!isPlainObject(v)) return v
    if (isHandleObject(v)) return open(v.$sharedobject, opts)
    const out: Record<string, unknown> = {}
    for (const [k, x] of Object.entries(v)) out[k] = walk(x)
    return out
  }
  return walk(message) as T
}

// ---------------------------------------------------------------------------------------------
// Inspecting and letting go

/**
 * An ordinary private copy: a TypedArray, `(boolean | null)[]`, `(string | null)[]`, or a
 * container of them. Values that are not shared are returned as they are.
 */
export function unshare<T>(value: T): T {
  if (isContainer(value)) {
    if (Array.isArray(value)) return value.map((v) => unshare(v)) as T
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(value)) out[k] = unshare(v)
    return out as T
  }
  const meta = metaOf(value)
  if (!meta || meta.kind === 'bytes') return value
  if (meta.closed) throw coded(codes.CLOSED, 'unshare: the vector was closed in this thread')
  if (value instanceof SharedLogicalVector || value instanceof SharedStringVector) return value.toArray() as T
  return (value as unknown as NumericVector).slice() as unknown as T
}

/** Whether a value is a live shared vector, or a container that holds one (at any depth). */
export function isShared(value: unknown): boolean {
  let any = false
  leaves(value, (leaf) => {
    const meta = metaOf(leaf)
    if (meta !== undefined && !meta.closed && meta.kind !== 'bytes') any = true
  })
  return any
}

/** What the segment behind a shared vector is (R: `sharedObjectProperties`). */
export interface Properties {
  id: string
  handle: string
  kind: Kind | 'bytes'
  length: number
  byteLength: number
  /** How this process maps it. */
  copyOnWrite: boolean
  /** Whether this process owns (and will remove) the segment. */
  ownData: boolean
  ownerPid: number
  persistent: boolean
  created: Date
  attributes: unknown
  /** String vectors: whether unique strings are stored once. */
  dictionary?: boolean
}

/**
 * The properties of a shared vector; for a container, a container of the same shape with each
 * shared leaf's properties (and null for the rest).
 */
export function properties(value: unknown): Properties | object {
  if (isContainer(value)) {
    const one = (v: unknown): unknown => (isContainer(v) ? properties(v) : isShared(v) ? properties(v) : null)
    if (Array.isArray(value)) return value.map(one)
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, one(v)]))
  }
  const m = liveMeta(value, 'properties')
  const p: Properties = {
    id: m.id,
    handle: m.handle,
    kind: m.kind as Kind | 'bytes',
    length: m.length,
    byteLength: m.byteLength,
    copyOnWrite: m.copyOnWrite,
    ownData: m.owner && !m.persistent,
    ownerPid: m.ownerPid,
    persistent: m.persistent,
    created: new Date(m.created),
    attributes: m.attributes === '' ? undefined : JSON.parse(m.attributes),
  }
  if (m.kind === 'string') p.dictionary = m.aux[4] !== 0
  return p
}

/**
 * Unmaps a vector (every shared vector of a container) in this thread now: its buffer is
 * detached, so every view of that segment this thread holds reads as empty and can never touch
 * unmapped memory. Views in other threads keep the mapping until they let go. Returns whether
 * anything was open.
 */
export function close(value: unknown): boolean {
  let any = false
  leaves(value, (leaf) => {
    const meta = metaOf(leaf)
    if (!meta || meta.closed) return
    meta.closed = true
    native.close(meta.buffer, meta.token)
    any = true
  })
  if (isContainer(value)) {
    const manifest = manifests.get(value)
    if (manifest && !manifest.closed) {
      manifest.closed = true
      native.close(manifest.buffer, manifest.token)
    }
  }
  return any
}

/**
 * Removes a segment's name now, by vector, container, id or handle: no process can open it any
 * more, while views already mapped anywhere keep working. Returns whether anything was removed.
 */
export function free(value: unknown): boolean {
  if (typeof value === 'string') return native.free(value.startsWith('sobj1:') ? value.split(':')[1] : value)
  if (isContainer(value)) {
    let any = false
    leaves(value, (leaf) => {
      const meta = metaOf(leaf)
      if (meta) any = native.free(meta.id) || any
    })
    const manifest = manifests.get(value)
    if (manifest) any = native.free(manifest.id) || any
    return any
  }
  return native.free(liveMeta(value, 'free').id)
}

/** A segment of this package, as `list()` and `sweep()` report it. */
export interface SegmentInfo {
  id: string
  kind: Kind | 'bytes' | 'list'
  length: number
  byteLength: number
  /** Bytes the segment occupies, header included. */
  size: number
  ownerPid: number
  /** `null` when this process cannot tell (another pid namespace, or Windows). */
  ownerAlive: boolean | null
  persistent: boolean
  developer: boolean
  copyOnWrite: boolean
  created: Date
}

function segmentInfo(s: native.SegmentInfo): SegmentInfo {
  return {
    id: s.id,
    kind: s.kind as SegmentInfo['kind'],
    length: s.length,
    byteLength: s.byteLength,
    size: s.size,
    ownerPid: s.ownerPid,
    ownerAlive: s.ownerAlive ?? null,
    persistent: s.persistent,
    developer: s.developer,
    copyOnWrite: s.copyOnWrite,
    created: new Date(s.created),
  }
}

/** This package's segments on the machine (on Windows: this process's own). */
export function list(): SegmentInfo[] {
  return native.list().map(segmentInfo)
}

/**
 * Frees the segments whose owner died (crashed or killed), except persistent and developer
 * segments. A live owner's segment is never touched. With `{ dryRun: true }` only reports.
 */
export function sweep(opts?: { dryRun?: boolean }): SegmentInfo[] {
  if (opts?.dryRun) {
    return list().filter((s) => s.ownerAlive === false && !s.persistent && !s.developer)
  }
  return native.sweep().map(segmentInfo)
}

// ---------------------------------------------------------------------------------------------
// The developer API, with the names and meaning of R SharedObject's

const devMaps = new Map<string, { buffer: ArrayBuffer; token: number; count: number }>()

/** The id of the last segment this process created, or null. */
export function getLastIndex(): string | null {
  return native.lastCreated() ?? null
}

/** Allocates a persistent untyped segment of `size` bytes; returns its id. */
export function allocateSharedMemory(size: number, name?: string): string {
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw coded(codes.OUT_OF_RANGE, `allocateSharedMemory: size must be a whole number >= 0, got ${String(size)}`, RangeError)
  }
  return native.allocate(size, name === '' ? undefined : name)
}

/** Maps a segment by id; an ArrayBuffer over its data. Repeated maps return the same buffer. */
export function mapSharedMemory(id: string): ArrayBuffer {
  const known = devMaps.get(id)
  if (known) {
    known.count++
    return known.buffer
  }
  const info = native.openId(id, false)
  remember(info)
  devMaps.set(id, { buffer: info.buffer, token: info.token, count: 1 })
  return info.buffer
}

/** Undoes one `mapSharedMemory`; the last one unmaps (the buffer is detached). */
export function unmapSharedMemory(id: string): void {
  const known = devMaps.get(id)
  if (!known) return
  if (--known.count > 0) return
  devMaps.delete(id)
  close(known.buffer)
}

/** Unmaps the segment in this process and removes it. */
export function freeSharedMemory(id: string): void {
  const known = devMaps.get(id)
  if (known) {
    devMaps.delete(id)
    close(known.buffer)
  }
  native.free(id)
}

export function hasSharedMemory(id: string): boolean {
  return native.exists(id)
}

/** Bytes a segment's data holds: at least what was asked for. */
export function getSharedMemorySize(id: string): number {
  return native.dataSize(id)
}

/** Loads the package's per-process state and frees segments left by dead owners. */
export function initialSharedObjectPackageData(): void {
  native.sweep()
}

/**
 * Releases this process's package state: the segments it owns lose their names now, as they
 * would at exit (views keep working). Returns how many names were removed.
 */
export function releaseSharedObjectPackageData(): number {
  return native.releaseOwned()
}

/**
 * For native addon authors: `'PKG_CPPFLAGS'` gives the include flag for `sharedobject.h`, the
 * C description of the segment format; `'PKG_LIBS'` gives what to link: nothing, as the header
 * is all there is.
 */
export function pkgconfig(x: 'PKG_CPPFLAGS' | 'PKG_LIBS'): string {
  if (x === 'PKG_CPPFLAGS') return `-I${path.join(__dirname, 'include')}`
  if (x === 'PKG_LIBS') return ''
  throw coded(codes.INVALID_ARG_VALUE, `pkgconfig: expected "PKG_CPPFLAGS" or "PKG_LIBS", got ${JSON.stringify(x)}`, TypeError)
}

/** Mappings and views this process holds (diagnostics). */
export function stats(): { mappings: number; views: number } {
  return native.stats()
}

// Loading the package frees what crashed owners left behind; it never touches a live owner's.
// SHAREDOBJECT_NO_SWEEP=1 turns this off (to inspect leftovers, or in tests of the sweep itself).
if (!process.env.SHAREDOBJECT_NO_SWEEP) {
  try {
    native.sweep()
  } catch {
    // A sweep that cannot run (no /dev/shm, no permission) must not stop the package loading.
  }
}
