/** Handles, and opening what other processes shared. */
import { constants as bufferConstants } from 'node:buffer'

import { native } from './native'
import { codes, coded } from './errors'
import { CTORS, isKind, isNumericKind, type Kind, type NumericKind, type SharedVector, type Unshared, type VectorOf } from './kinds'
import { getOptions, type OpenOptions } from './options'
import { createOptions } from './share'
import { isShared } from './inspect'
import { SharedLogicalVector, SharedStringVector, layoutFromAux } from './vectors'
import { tableFromBytes } from './arrow'
import { isSyncKind, provideOpener, syncOf } from './sync'
import { MAX_DEPTH, cachedByKey, handOut, isContainer, isPlainObject, liveMeta, manifests, metaOf, remember, vectorOf, viewHandle, type Meta } from './views'

function handleText(handle: unknown, fn: string): string {
  if (handle !== null && typeof handle === 'object' && typeof (handle as { $sharedobject?: unknown }).$sharedobject === 'string') {
    return (handle as { $sharedobject: string }).$sharedobject
  }
  if (typeof handle !== 'string') {
    throw coded(codes.INVALID_HANDLE, `${fn}: a handle is a string from handleOf(), got ${handle === null ? 'null' : typeof handle}`, TypeError)
  }
  if (handle.length > 200) throw coded(codes.INVALID_HANDLE, `${fn}: not a sharedobject handle (${handle.length} characters)`, TypeError)
  return handle
}

/**
 * A handle's part: `base#kind:byteOffset:length` names a TypedArray (`dataview`: a DataView, its
 * length in bytes) over part of a vector's data.
 */
interface Part {
  kind: NumericKind | 'dataview'
  byteOffset: number
  length: number
}

function splitHandle(h: string): { base: string; part?: Part } {
  const at = h.indexOf('#')
  if (at < 0) return { base: h }
  const m = /^([a-z0-9]+):(\d{1,16}):(\d{1,16})$/.exec(h.slice(at + 1))
  if (!m || !(isNumericKind(m[1]) || m[1] === 'dataview')) {
    throw coded(codes.INVALID_HANDLE, `not a sharedobject handle: ${JSON.stringify(h.slice(0, 60))}`, TypeError)
  }
  return { base: h.slice(0, at), part: { kind: m[1], byteOffset: Number(m[2]), length: Number(m[3]) } }
}

/** The view a part names over `buffer`, checked against the data's `byteLength`. */
function partView(buffer: ArrayBufferLike, byteLength: number, part: Part): ArrayBufferView {
  const size = part.kind === 'dataview' ? 1 : CTORS[part.kind].BYTES_PER_ELEMENT
  if (part.byteOffset % size !== 0 || part.byteOffset + part.length * size > byteLength) {
    throw coded(codes.INVALID_HANDLE, `open: the handle names a part outside the vector (${part.kind} at byte ${part.byteOffset}, ${part.length} elements)`, TypeError)
  }
  if (part.kind === 'dataview') return new DataView(buffer, part.byteOffset, part.length)
  return new CTORS[part.kind](buffer as ArrayBuffer, part.byteOffset, part.length)
}

/** Refuses a result that is not of the kind the caller asked for. */
function checkKind(want: Kind | undefined, got: string, handle: string): void {
  if (want !== undefined && want !== got) {
    throw coded(codes.WRONG_KIND, `open: ${JSON.stringify(handle.slice(0, 80))} holds ${got === 'list' ? 'a container' : got === 'dataview' ? 'a DataView' : `a ${got} vector`}, not ${want}`, TypeError)
  }
}

/** Parses a manifest's attributes: a container's shape with its leaves' handles. */
function manifestShape(attributes: string): unknown {
  try {
    return (JSON.parse(attributes) as { $container: unknown }).$container
  } catch {
    throw coded(codes.BAD_HEADER, 'open: a container manifest whose attributes are not valid JSON')
  }
}

/** Handles of manifests being opened now, to refuse one that names itself. */
const opening = new Set<string>()

function fromMeta(meta: Meta, part: Part | undefined, opts: OpenOptions | undefined): SharedVector | object {
  checkKind(opts?.kind, part?.kind ?? meta.kind, meta.handle)
  if (meta.kind === 'list') {
    if (opening.has(meta.key)) throw coded(codes.BAD_HEADER, 'open: a container manifest that contains itself')
    opening.add(meta.key)
    try {
      return revive(manifestShape(meta.attributes), opts) as object
    } finally {
      opening.delete(meta.key)
    }
  }
  if (isSyncKind(meta.kind)) return syncOf(meta)
  if (!isKind(meta.kind) && meta.kind !== 'arrow') {
    throw coded(codes.BAD_HEADER, `open: the segment holds ${meta.kind} data, not a vector; use mapSharedMemory for developer segments`)
  }
  if (!part) return vectorOf(meta)
  return partView(meta.buffer, meta.byteLength, part)
}

/** A handle as `handleOf` gives it, or as a shared vector serialises to JSON. */
export type Handle = string | { $sharedobject: string }

/**
 * Maps a vector (or a container) shared by any process, from its handle or its JSON form. With
 * `kind`, the result is that kind of vector, or a `ERR_SHM_WRONG_KIND` error; with `copy`, an
 * ordinary private copy.
 */
export function open<K extends Kind>(handle: Handle, opts: OpenOptions & { kind: K; copy: true }): Unshared<VectorOf<K>>
export function open<K extends Kind>(handle: Handle, opts: OpenOptions & { kind: K; copy?: false }): VectorOf<K>
export function open(handle: Handle, opts?: OpenOptions): SharedVector | object
export function open(handle: Handle, opts?: OpenOptions): SharedVector | object {
  const h = handleText(handle, 'open')
  if (opts !== undefined && (opts === null || typeof opts !== 'object')) throw coded(codes.INVALID_ARG_TYPE, 'open: options must be an object', TypeError)
  const cow = opts?.copyOnWrite
  if (cow !== undefined && typeof cow !== 'boolean') {
    throw coded(codes.INVALID_ARG_TYPE, 'open: copyOnWrite must be a boolean', TypeError)
  }
  const populate = opts?.populate
  if (populate !== undefined && typeof populate !== 'boolean') {
    throw coded(codes.INVALID_ARG_TYPE, 'open: populate must be a boolean', TypeError)
  }
  if (opts?.kind !== undefined && !isKind(opts.kind)) {
    throw coded(codes.INVALID_ARG_VALUE, `open: unknown kind ${JSON.stringify(opts.kind)}; kinds are ${[...Object.keys(CTORS), 'logical', 'string'].join(', ')}`, TypeError)
  }
  const { base, part } = splitHandle(h)
  if (opts?.copy) return openCopy(base, part, opts)
  const found = native.locate(base, cow)
  if (found.byteLength > bufferConstants.MAX_LENGTH) {
    throw coded(codes.OUT_OF_RANGE, `open: the segment holds ${found.byteLength} bytes, more than this Node.js can view as one buffer (${bufferConstants.MAX_LENGTH})`, RangeError)
  }
  // Checked before mapping, so that a wrong kind maps nothing.
  checkKind(opts?.kind, part?.kind ?? found.kind, base)
  const cached = cachedByKey(found.key)
  if (cached && populate) native.populate(cached.key)
  const meta = cached ?? remember(native.open(base, cow, populate))
  return fromMeta(meta, part, opts)
}

// A channel hands what it carried by handle to this verb (the kinds below it never import it).
provideOpener((h) => open(h))

function openCopy(h: string, part: Part | undefined, opts: OpenOptions): SharedVector | object {
  const c = native.readCopy(h, bufferConstants.MAX_LENGTH)
  checkKind(opts.kind, part?.kind ?? c.kind, h)
  if (c.kind === 'list') return revive(manifestShape(c.attributes), opts) as object
  if (c.kind === 'arrow') return tableFromBytes(c.data, c.length)
  if (!isKind(c.kind)) {
    throw coded(codes.BAD_HEADER, `open: the segment holds ${c.kind} data, not a vector; use mapSharedMemory for developer segments`)
  }
  // An aligned buffer of our own, so that every element type can view it.
  const ab = new Uint8Array(c.data).buffer
  if (c.kind === 'logical') return new SharedLogicalVector(new Int8Array(ab)).toArray()
  if (c.kind === 'string') return new SharedStringVector(ab, c.length, layoutFromAux(c.aux)).toArray()
  if (part) return partView(ab, c.data.length, part)
  return new CTORS[c.kind](ab, 0, c.length)
}

/**
 * The short ASCII handle of a shared vector (or of a TypedArray over part of one), to send over
 * any channel. For a container, the handle of a small segment that records its shape and its
 * leaves' handles. Taking a handle keeps the segment openable for as long as its owner lives
 * (or until `free`), whatever garbage collection does.
 */
export function handleOf(value: unknown): string {
  if (isContainer(value)) {
    const known = manifests.get(value)
    if (known && !known.closed) return handOut(known)
    if (!isShared(value)) throw coded(codes.NOT_SHARED, 'handleOf: the container holds no shared vector', TypeError)
    // JSON.stringify of the container takes (and hands out) every leaf's handle.
    const shape = JSON.stringify({ $container: value })
    const o = { ...getOptions(), attributes: undefined, name: undefined, persist: false }
    const meta = remember(native.create({ ...createOptions('list', 0, o, { byteLength: 0 }), attributes: shape }, undefined))
    manifests.set(value, meta)
    return handOut(meta)
  }
  const meta = liveMeta(value, 'handleOf')
  if (ArrayBuffer.isView(value)) return viewHandle(value, meta)
  return handOut(meta)
}

function isHandleObject(v: object): v is { $sharedobject: string } {
  const keys = Object.keys(v)
  return keys.length === 1 && keys[0] === '$sharedobject' && typeof (v as { $sharedobject: unknown }).$sharedobject === 'string'
}

/**
 * Walks a received message and opens every `{"$sharedobject": handle}` in it. Arrays and plain
 * objects are rebuilt; everything else is returned as it is.
 */
export function revive<T = unknown>(message: unknown, opts?: Omit<OpenOptions, 'kind'>): T {
  // A message holds vectors of any kind: `kind` would refuse all but one.
  if (opts !== null && typeof opts === 'object' && 'kind' in opts) opts = { ...opts, kind: undefined } as OpenOptions
  const walk = (v: unknown, depth: number): unknown => {
    if (v === null || typeof v !== 'object') return v
    if (depth > MAX_DEPTH) throw coded(codes.OUT_OF_RANGE, `revive: the message nests deeper than ${MAX_DEPTH} levels`, RangeError)
    if (metaOf(v)) return v
    if (Array.isArray(v)) return v.map((x) => walk(x, depth + 1))
    if (!isPlainObject(v)) return v
    if (isHandleObject(v)) return open(v.$sharedobject, opts)
    const out: Record<string, unknown> = {}
    for (const [k, x] of Object.entries(v)) out[k] = walk(x, depth + 1)
    return out
  }
  return walk(message, 0) as T
}
