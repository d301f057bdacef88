/** Handles, and opening what other processes shared. */
import { native } from './native'
import { codes, coded } from './errors'
import { CTORS, isKind, type SharedVector } from './kinds'
import { getOptions, type OpenOptions } from './options'
import { createOptions, created } from './share'
import { isShared } from './inspect'
import { cache, cached, isContainer, isPlainObject, liveMeta, modeKey, remember, vectorOf, manifests } from './views'
import { SharedLogicalVector, SharedStringVector, layoutFromAux } from './vectors'
import { isSyncKind, syncOf } from './sync'


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
  if (hit) return isSyncKind(hit.kind) ? syncOf(hit) : vectorOf(hit)
  const info = native.open(h, cow)
  if (info.kind === 'list') {
    // A container's manifest: its shape, with its leaves' handles. Only the leaves stay mapped.
    native.close(info.buffer, info.token)
    return revive((JSON.parse(info.attributes) as { $container: unknown }).$container, opts) as object
  }
  if (isSyncKind(info.kind)) {
    const meta = remember(info)
    cache(`${h}|${modeKey(cow)}`, info.buffer)
    return syncOf(meta)
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
    const o = { ...getOptions(), attributes: undefined, name: undefined }
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
