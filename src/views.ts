/**
 * The views this thread holds: what it knows of each buffer over a mapping, and the one buffer
 * per segment and mode it hands out. The only module that keeps per-thread state.
 */
import { native, type ViewInfo } from './native'
import { codes, coded } from './errors'
import { CTORS, type Kind, type NumericKind, type SharedVector } from './kinds'
import { SharedLogicalVector, SharedStringVector, layoutFromAux } from './vectors'


/** What this process knows of one view; keyed by the view's ArrayBuffer. */
export interface Meta {
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

export const metas = new WeakMap<ArrayBuffer, Meta>()

/**
 * One ArrayBuffer per segment and mode per thread: opening a handle again (every task message
 * may carry the same vector) reuses it. Each new external ArrayBuffer makes V8 count its bytes as
 * external memory and run a garbage collection, so reuse keeps repeated hand-overs cheap.
 */
export const buffers = new Map<string, WeakRef<ArrayBuffer>>()
const forget = new FinalizationRegistry<string>((key) => {
  if (buffers.get(key)?.deref() === undefined) buffers.delete(key)
})
export const modeKey = (cow: boolean | undefined): string => (cow === undefined ? 'default' : cow ? 'cow' : 'shared')

export function cache(key: string, buffer: ArrayBuffer): void {
  buffers.set(key, new WeakRef(buffer))
  forget.register(buffer, key)
}

/** A live cached buffer for this handle and mode, if the segment can still be opened. */
export function cached(handle: string, cow: boolean | undefined): Meta | undefined {
  const buffer = buffers.get(`${handle}|${modeKey(cow)}`)?.deref()
  const meta = buffer && metas.get(buffer)
  if (!meta || meta.closed) return undefined
  // open() means opening by name: a freed segment is not found even if this thread maps it,
  // and a name freed and made again elsewhere names another segment.
  return native.isCurrent(handle) ? meta : undefined
}

/** Where an object that is not a vector (a mutex, a barrier) keeps the buffer of its segment. */
export const SEGMENT_BUFFER = Symbol('sharedobject.segmentBuffer')

/** The buffer behind a shared vector (or a developer ArrayBuffer, a mutex, a barrier). */
export function bufferOf(value: unknown): ArrayBuffer | undefined {
  if (value !== null && typeof value === 'object' && SEGMENT_BUFFER in value) return (value as { [SEGMENT_BUFFER]: ArrayBuffer })[SEGMENT_BUFFER]
  if (ArrayBuffer.isView(value)) return value.buffer as ArrayBuffer
  if (value instanceof SharedLogicalVector || value instanceof SharedStringVector) return value.buffer
  if (value instanceof ArrayBuffer) return value
  return undefined
}

export function metaOf(value: unknown): Meta | undefined {
  const b = bufferOf(value)
  return b && metas.get(b)
}

export function remember(info: ViewInfo): Meta {
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
export function sharedToJSON(this: SharedVector): { $sharedobject: string } {
  return { $sharedobject: liveMeta(this, 'toJSON').handle }
}

Object.defineProperty(SharedLogicalVector.prototype, 'toJSON', { value: sharedToJSON, configurable: true, writable: true })
Object.defineProperty(SharedStringVector.prototype, 'toJSON', { value: sharedToJSON, configurable: true, writable: true })

export function vectorOf(meta: Meta): SharedVector {
  if (meta.kind === 'logical') return new SharedLogicalVector(new Int8Array(meta.buffer, 0, meta.length))
  if (meta.kind === 'string') return new SharedStringVector(meta.buffer, meta.length, layoutFromAux(meta.aux))
  const Ctor = CTORS[meta.kind as NumericKind]
  const v = new Ctor(meta.buffer, 0, meta.length)
  Object.defineProperty(v, 'toJSON', { value: sharedToJSON, configurable: true, writable: true, enumerable: false })
  return v
}

export function liveMeta(value: unknown, fn: string): Meta {
  const meta = metaOf(value)
  if (!meta) throw coded(codes.NOT_SHARED, `${fn}: the value is not a shared vector`, TypeError)
  if (meta.closed) throw coded(codes.CLOSED, `${fn}: the vector was closed in this thread`)
  return meta
}

export function isPlainObject(v: object): boolean {
  const proto = Object.getPrototypeOf(v)
  return proto === Object.prototype || proto === null
}

export const isContainer = (v: unknown): v is object => v !== null && typeof v === 'object' && (Array.isArray(v) || isPlainObject(v)) && !metaOf(v)

/** Calls `f` on every leaf of a value: the value itself, or every element of a container. */
export function leaves(value: unknown, f: (leaf: unknown) => void): void {
  if (isContainer(value)) for (const v of Object.values(value)) leaves(v, f)
  else f(value)
}

/** A container's manifest segment, made on the first `handleOf` and kept while the container lives. */
export const manifests = new WeakMap<object, Meta>()
