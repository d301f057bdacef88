/**
 * The views this thread holds: what it knows of each buffer over a mapping, and the one buffer
 * per segment and mode it hands out. The only module that keeps per-thread state; lifecycle
 * rules (when memory is unmapped, when a segment is released) live in the native core.
 */
import { native, type Segment, type ViewInfo } from './native'
import { codes, coded } from './errors'
import { CTORS, type Kind, type NumericKind } from './kinds'
import { SharedLogicalVector, SharedStringVector } from './vectors'
import { watching } from './handouts'
import { mapped } from './runtime'

/** A buffer over a mapping: a SharedArrayBuffer where the runtime can make one. */
export type ViewBuffer = ArrayBuffer | SharedArrayBuffer

/**
 * The process's count of closes, read without a call: while it has not moved, no mapping was
 * closed and no segment needs asking. Where the runtime gives no such buffer, every check asks.
 */
const closesBuffer = native.closesCounter()
const closes = closesBuffer ? new Int32Array(closesBuffer) : undefined
const closesNow = (): number => (closes ? Atomics.load(closes, 0) : NaN)

/** What this thread knows of one buffer over a mapping. */
export class Meta {
  /** `id:generation:mode`, the same for every buffer over one mapping. */
  key: string
  id: string
  handle: string
  kind: Kind | 'bytes' | 'list' | (string & {})
  length: number
  byteLength: number
  copyOnWrite: boolean
  persistent: boolean
  owner: boolean
  ownerPid: number
  created: number
  attributes: string
  aux: number[]
  path: string | undefined
  buffer: ViewBuffer
  /** The native segment this buffer is over: asked whether it is live, and closed by. */
  segment: Segment
  handedOut = false
  /** The handle as UTF-8, made once for a channel's `sendShared` (which copies it). */
  handleBytes: Uint8Array | undefined
  #closed = false
  #closedHere = false
  #seen: number

  constructor(info: ViewInfo) {
    this.key = info.key
    this.id = info.id
    this.handle = info.handle
    this.kind = info.kind
    this.length = info.length
    this.byteLength = info.byteLength
    this.copyOnWrite = info.copyOnWrite
    this.persistent = info.persistent
    this.owner = info.owner
    this.ownerPid = info.ownerPid
    this.created = info.created
    this.attributes = info.attributes
    this.aux = info.aux
    this.path = info.path ?? undefined
    this.buffer = info.buffer
    this.segment = info.segment
    this.#seen = closesNow()
  }

  /**
   * Whether the mapping was closed in this process, by any thread: `close` is a property of the
   * segment in this process, not of one thread's buffer. Asked on every element read of a string
   * vector and every lock of a mutex, so the count of closes is first read with a plain load (an
   * `Atomics.load` costs more than the rest of such a call). A close by another thread racing
   * with the call is seen by the next one, or by what the call does next: a closed mapping's
   * pages read as zeros.
   */
  get closed(): boolean {
    if (this.#closed) return true
    if (closes !== undefined && closes[0] === this.#seen) return false
    this.#seen = closesNow()
    this.#closed = !native.segmentIsLive(this.segment)
    return this.#closed
  }

  /** Closes the mapping for every thread of the process; false when it was closed already. */
  close(): boolean {
    if (this.#closedHere) return false
    this.#closedHere = this.#closed = true
    // Closed by another thread already: this buffer is still detached, so it reads as closed.
    return native.segmentClose(this.segment, this.buffer)
  }
}

/**
 * A Meta kept for the life of the module, for the reason `keptShapes` (vectors.ts) gives: every
 * read of a shared vector asks its Meta whether it was closed, and that code was deoptimised each
 * time a collection took the last Meta of a process that opens and closes vectors in turn. Its
 * numbers are doubles where a real one's can be (a creation time; lengths past 2^31).
 */
export const keptMeta = new Meta({
  key: '',
  id: '',
  handle: '',
  kind: 'bytes',
  length: 0.5,
  byteLength: 0.5,
  copyOnWrite: false,
  persistent: false,
  owner: false,
  ownerPid: 0,
  created: Date.now() + 0.5,
  attributes: '',
  aux: [],
  path: undefined,
  buffer: new ArrayBuffer(0),
  segment: null,
} as unknown as ViewInfo)

const metas = new WeakMap<object, Meta>()

/** The buffer behind each shared Arrow table (or record batch) this thread holds. */
export const arrowBuffers = new WeakMap<object, ArrayBuffer>()

/**
 * One buffer per mapping (segment and mode) in this thread: opening a handle again reuses it.
 * Held weakly by the native side (`cacheBuffer`), so a buffer nobody holds can be collected (and
 * its mapping released), even in the middle of a synchronous loop: a `WeakRef` would keep it
 * until the loop's job ends.
 */

/** The live buffer this thread holds for a mapping key, if any. */
export function cachedByKey(key: string): Meta | undefined {
  const buffer = native.cachedBuffer(key)
  return buffer ? liveMetaOfBuffer(buffer) : undefined
}

/** Records a buffer the native side made, and makes it this thread's buffer for its mapping. */
export function remember(info: ViewInfo): Meta {
  const meta = recorded(info)
  native.cacheBuffer(info.key, info.buffer)
  return meta
}

/** As `remember`, for a buffer the native side made this thread's already (`openPlain`). */
export function recorded(info: ViewInfo): Meta {
  const meta = new Meta(info)
  metas.set(info.buffer, meta)
  mapped()
  return meta
}

/** The live view this thread made a buffer for, if it is one of ours and not closed. */
export function liveMetaOfBuffer(buffer: object): Meta | undefined {
  const meta = metas.get(buffer)
  return meta && !meta.closed ? meta : undefined
}

/** Where an object that is not a vector (a mutex, a barrier) keeps the buffer of its segment. */
export const SEGMENT_BUFFER = Symbol('sharedobject.segmentBuffer')

const wordViews = new WeakMap<object, Uint32Array>()

/**
 * The words of a mutex or barrier segment as one Uint32Array per buffer: Node-API reads a
 * TypedArray over a SharedArrayBuffer as well as over an ArrayBuffer.
 */
export function wordsOf(buffer: ViewBuffer): Uint32Array {
  let w = wordViews.get(buffer)
  if (!w) wordViews.set(buffer, (w = new Uint32Array(buffer)))
  return w
}

/** The buffer behind a shared vector (or a developer ArrayBuffer, a mutex, a barrier). */
export function bufferOf(value: unknown): ViewBuffer | undefined {
  if (value !== null && typeof value === 'object' && SEGMENT_BUFFER in value) return (value as { [SEGMENT_BUFFER]: ViewBuffer })[SEGMENT_BUFFER]
  if (ArrayBuffer.isView(value)) return value.buffer
  if (value instanceof SharedLogicalVector || value instanceof SharedStringVector) return value.buffer
  if (value instanceof ArrayBuffer || (typeof SharedArrayBuffer === 'function' && value instanceof SharedArrayBuffer)) return value
  if (value !== null && typeof value === 'object') return arrowBuffers.get(value)
  return undefined
}

export function metaOf(value: unknown): Meta | undefined {
  const b = bufferOf(value)
  return b && (metas.get(b) ?? adopt(b))
}

/** SharedArrayBuffers seen in this thread that are over none of this process's mappings. */
const strangers = new WeakSet<object>()

/**
 * A SharedArrayBuffer that another thread made over a mapping (a vector posted to a worker
 * arrives as a new SharedArrayBuffer object over the same memory) becomes known here, so that it
 * serialises, gives its handle and closes as the vector it is.
 */
function adopt(b: ViewBuffer): Meta | undefined {
  if (typeof SharedArrayBuffer !== 'function' || !(b instanceof SharedArrayBuffer) || strangers.has(b)) return undefined
  const info = b.byteLength > 0 ? native.identify(new Uint8Array(b)) : null
  if (!info) {
    strangers.add(b)
    return undefined
  }
  const meta = cachedByKey(info.key) ?? remember(info)
  metas.set(b, meta)
  return meta
}

export function liveMeta(value: unknown, fn: string): Meta {
  const meta = metaOf(value)
  if (!meta) throw coded(codes.NOT_SHARED, `${fn}: the value is not a shared vector`, TypeError)
  if (meta.closed) throw coded(codes.CLOSED, `${fn}: the vector was closed in this process`)
  return meta
}

/**
 * The handle of a mapping, recorded as handed out: from now on its owner keeps the segment
 * openable until `free` (by any process) or exit, whatever its garbage collector does; with
 * `opens`, until that many more opens by other processes.
 */
export function handOut(meta: Meta, opens?: number): string {
  if (!meta.handedOut || opens !== undefined) {
    if (native.handOut(meta.handle, opens)) watching()
    meta.handedOut = true
  }
  return meta.handle
}

/** What to do when a thread of this process closes a mapping, before its pages go: waits pending on it. */
const closing = new WeakMap<Meta, Set<() => void>>()

/** Calls `fn` when this thread closes the mapping, before its pages go; returns a function that forgets it. */
export function onClose(meta: Meta, fn: () => void): () => void {
  let set = closing.get(meta)
  if (!set) closing.set(meta, (set = new Set()))
  set.add(fn)
  return () => set.delete(fn)
}

/**
 * Closes a mapping for the whole process (every thread sees it closed); the native side gives
 * the pages back now. False when it was closed already.
 */
export function closeMeta(meta: Meta): boolean {
  const waiting = closing.get(meta)
  closing.delete(meta)
  waiting?.forEach((fn) => fn())
  // The native close also makes the buffer no longer this thread's for its mapping.
  return meta.close()
}

const TAG_OF_KIND: Record<string, NumericKind> = Object.fromEntries(
  Object.entries(CTORS).map(([k, C]) => [Object.prototype.toString.call(new C(0)), k as NumericKind]),
)

/**
 * The handle of a TypedArray (or DataView) over part of a shared mapping: the segment's handle,
 * then the view's type, byte offset and length. `open` gives back exactly that view over the same
 * memory.
 */
export function viewHandle(value: ArrayBufferView, meta: Meta): string {
  const base = handOut(meta)
  if (value instanceof DataView) return `${base}#dataview:${value.byteOffset}:${value.byteLength}`
  const kind = TAG_OF_KIND[Object.prototype.toString.call(value)]
  const whole = kind === meta.kind && value.byteOffset === 0 && value.byteLength === meta.byteLength
  if (whole || kind === undefined) return base
  return `${base}#${kind}:${value.byteOffset}:${(value as unknown as { length: number }).length}`
}

/**
 * `JSON.stringify` of a shared vector gives its handle, which `revive` turns back into it. A
 * closed one throws `ERR_SHM_CLOSED` rather than serialise as something it is not.
 */
function sharedToJSON(this: SharedLogicalVector | SharedStringVector): { $sharedobject: string } {
  return { $sharedobject: handOut(liveMeta(this, 'toJSON')) }
}
Object.defineProperty(SharedLogicalVector.prototype, 'toJSON', { value: sharedToJSON, configurable: true, writable: true })
Object.defineProperty(SharedStringVector.prototype, 'toJSON', { value: sharedToJSON, configurable: true, writable: true })

/**
 * `toJSON` of a TypedArray (or DataView) over shared memory: its handle, with the part it views.
 * Set as an own, non-enumerable property on each view the package makes (no built-in prototype
 * is touched); `replacer` and `install` apply it to views the package did not make (a
 * `subarray`, a vector posted from another thread).
 */
export function viewToJSON(this: ArrayBufferView): unknown {
  const meta = metaOf(this)
  if (!meta) return this
  if (meta.closed) throw coded(codes.CLOSED, 'toJSON: the vector was closed in this process; it has no handle to send')
  return { $sharedobject: viewHandle(this, meta) }
}

/** Gives a view the package made its own `toJSON`, so that `JSON.stringify` sends its handle. */
export function withJSON<T extends ArrayBufferView>(view: T): T {
  Object.defineProperty(view, 'toJSON', { value: viewToJSON, configurable: true, writable: true, enumerable: false })
  return view
}

/**
 * A `JSON.stringify` replacer: every view over shared memory (a subarray, a DataView, a vector
 * posted from another thread) becomes its `{"$sharedobject": handle}`; anything else is left
 * as it is.
 */
export function replacer(this: unknown, _key: string, value: unknown): unknown {
  return ArrayBuffer.isView(value) ? viewToJSON.call(value) : value
}


export function isPlainObject(v: object): boolean {
  const proto = Object.getPrototypeOf(v)
  return proto === Object.prototype || proto === null
}

export const isContainer = (v: unknown): v is object =>
  v !== null && typeof v === 'object' && (Array.isArray(v) || isPlainObject(v)) && !metaOf(v)

/** The deepest container nesting walked; deeper (or cyclic) values are refused with a code. */
export const MAX_DEPTH = 1000

/**
 * Calls `f` on every leaf of a value: the value itself, or every element of a container. A
 * cycle or a nesting deeper than `MAX_DEPTH` is a coded error, never a stack overflow.
 */
export function leaves(value: unknown, f: (leaf: unknown) => void, fn = 'sharedobject'): void {
  const path: object[] = []
  const walk = (v: unknown): void => {
    if (!isContainer(v)) return f(v)
    if (path.includes(v)) throw coded(codes.INVALID_ARG_VALUE, `${fn}: the container refers to itself`, TypeError)
    if (path.length >= MAX_DEPTH) throw coded(codes.OUT_OF_RANGE, `${fn}: containers nest deeper than ${MAX_DEPTH} levels`, RangeError)
    path.push(v)
    for (const x of Object.values(v)) walk(x)
    path.pop()
  }
  walk(value)
}

/** A container's manifest segment, made on the first `handleOf` and kept while the container lives. */
export const manifests = new WeakMap<object, Meta>()

/** What this thread mapped through the developer API's `mapSharedMemory`: one buffer per id, counted. */
export const devMaps = new Map<string, { meta: Meta; count: number }>()
