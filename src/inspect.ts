/** Inspecting shared values and letting them go: unshare, properties, close, free, list, sweep. */
import { native, type SegmentInfo as NativeSegmentInfo } from './native'
import { closeMeta, isContainer, leaves, liveMeta, manifests, metaOf } from './views'
import { codes, coded } from './errors'
import { type ArrowTableLike, type Kind, type NumericVector, type SharedVector } from './kinds'
import { SharedLogicalVector, SharedStringVector } from './vectors'
import { unshareTable } from './arrow'
import { isSyncKind, type SharedBarrier, type SharedMutex } from './sync'
import { touch } from './handouts'


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
  if (!meta || meta.kind === 'bytes' || isSyncKind(meta.kind)) return value
  if (meta.closed) throw coded(codes.CLOSED, 'unshare: the vector was closed in this process')
  if (meta.kind === 'arrow') return unshareTable(value)
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
  kind: Kind | 'bytes' | 'arrow' | 'mutex' | 'barrier' | 'condition' | 'semaphore' | 'channel'
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
  /**
   * A path any process of this user (in any language) can open and map to read the segment:
   * its header, then its data at the header's data offset. Undefined where there is none (Windows).
   */
  path?: string
}

/** A segment's attributes, which any process could have written: corrupt JSON is a coded error. */
function parseAttributes(text: string): unknown {
  if (text === '') return undefined
  try {
    return JSON.parse(text)
  } catch {
    throw coded(codes.BAD_HEADER, 'properties: the segment’s attributes are not valid JSON')
  }
}

/** What `properties` gives for a container: its shape, with each shared leaf's properties. */
export type PropertiesOf<T> = T extends SharedVector
  ? Properties | null
  : T extends readonly unknown[] | Record<string, unknown>
    ? { -readonly [K in keyof T]: PropertiesOf<T[K]> }
    : null

/**
 * The properties of a shared vector, table, mutex or barrier (a `ERR_SHM_NOT_SHARED` error for
 * anything else), with `kind` typed where the argument's type fixes it (`'string'`, `'arrow'`,
 * ...; a TypedArray may view any kind's segment, so its `kind` is not narrowed); for a
 * container, a container of the same shape with each shared leaf's properties (and null for the
 * rest).
 */
export function properties(value: SharedLogicalVector): Properties & { kind: 'logical' }
export function properties(value: SharedStringVector): Properties & { kind: 'string' }
export function properties(value: SharedMutex): Properties & { kind: 'mutex' }
export function properties(value: SharedBarrier): Properties & { kind: 'barrier' }
export function properties(value: ArrowTableLike): Properties & { kind: 'arrow' }
export function properties(value: SharedVector | DataView): Properties
export function properties<T extends readonly unknown[] | Record<string, unknown>>(value: T): PropertiesOf<T>
export function properties(value: unknown): Properties | object
export function properties(value: unknown): unknown {
  if (isContainer(value)) {
    const one = (v: unknown): unknown => (isContainer(v) ? properties(v) : isShared(v) ? properties(v) : null)
    if (Array.isArray(value)) return value.map(one)
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, one(v)]))
  }
  const m = liveMeta(value, 'properties')
  const p: Properties = {
    id: m.id,
    handle: m.handle,
    kind: m.kind as Properties['kind'],
    length: m.length,
    byteLength: m.byteLength,
    copyOnWrite: m.copyOnWrite,
    ownData: m.owner && !m.persistent,
    ownerPid: m.ownerPid,
    persistent: m.persistent,
    created: new Date(m.created),
    attributes: parseAttributes(m.attributes),
  }
  if (m.kind === 'string') p.dictionary = m.aux[4] !== 0
  if (m.path !== undefined) p.path = m.path
  return p
}

/**
 * Closes a vector (every shared vector of a container) in this process now: its pages are given
 * back to the OS at once, in every thread of the process. An ArrayBuffer-backed vector is
 * detached, so every view of it in this thread reads as empty; a SharedArrayBuffer cannot be
 * detached and may be in use by other threads, so its views (here and in every worker it was
 * posted to) keep their length, read zeros, and take writes that nobody will read. Either way
 * nothing can touch unmapped memory: the address range itself is released only when the engine
 * releases the last buffer over it. Later `handleOf`, `properties` and `JSON.stringify` of it in
 * this thread throw `ERR_SHM_CLOSED`. Views of the segment in other processes are not affected.
 * Returns whether anything was open.
 */
export function close(value: unknown): boolean {
  // A vector, as most closes are: its mapping, with none of the walk a container needs.
  const meta = ArrayBuffer.isView(value) ? metaOf(value) : undefined
  if (meta) return closeMeta(meta)
  let any = false
  leaves(value, (leaf) => {
    const meta = metaOf(leaf)
    if (meta && closeMeta(meta)) any = true
  }, 'close')
  if (isContainer(value)) {
    const manifest = manifests.get(value)
    if (manifest) closeMeta(manifest)
  }
  return any
}

/**
 * Removes a segment now, by vector, container, id or handle: no process can open it any more,
 * while views already mapped anywhere keep working. A handle removes only the very segment it
 * named, never a newer one that reuses its id. Returns whether anything was removed.
 */
export function free(value: unknown): boolean {
  touch()
  if (typeof value === 'string') {
    if (value.startsWith('sobj1:')) return native.freeHandle(value.split('#')[0])
    return native.free(value)
  }
  if (value !== null && typeof value === 'object' && typeof (value as { $sharedobject?: unknown }).$sharedobject === 'string' && Object.keys(value).length === 1) {
    return free((value as { $sharedobject: string }).$sharedobject)
  }
  if (isContainer(value)) {
    let any = false
    leaves(value, (leaf) => {
      const meta = metaOf(leaf)
      if (meta) any = native.freeHandle(meta.handle) || any
    }, 'free')
    const manifest = manifests.get(value)
    if (manifest) any = native.freeHandle(manifest.handle) || any
    return any
  }
  const meta = metaOf(value)
  if (!meta) throw coded(codes.NOT_SHARED, 'free: the value is not a shared vector, an id or a handle', TypeError)
  return native.freeHandle(meta.handle)
}

/** A segment of this package, as `list()` and `sweep()` report it. */
export interface SegmentInfo {
  id: string
  kind: Kind | 'bytes' | 'list' | 'arrow' | 'mutex' | 'barrier' | 'condition' | 'semaphore' | 'channel'
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
  /** A file in /dev/shm (named) or a memfd its owner holds (unnamed, Linux). */
  named: boolean
  created: Date
}

function segmentInfo(s: NativeSegmentInfo): SegmentInfo {
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
    named: s.named,
    copyOnWrite: s.copyOnWrite,
    created: new Date(s.created),
  }
}

/** This package's segments on the machine (on Windows: this process's own). */
export function list(): SegmentInfo[] {
  touch()
  return native.list().map(segmentInfo)
}

/**
 * Frees the segments whose owner died (crashed or killed), except persistent and developer
 * segments. A live owner's segment is never touched. With `{ dryRun: true }` only reports.
 */
export function sweep(opts?: { dryRun?: boolean }): SegmentInfo[] {
  return native.sweep(opts?.dryRun === true).map(segmentInfo)
}
