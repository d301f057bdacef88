/** Inspecting shared values and letting them go: unshare, properties, close, free, list, sweep. */
import { native, type SegmentInfo as NativeSegmentInfo } from './native'
import { isContainer, leaves, liveMeta, manifests, metaOf } from './views'
import { codes, coded } from './errors'
import { type Kind, type NumericVector } from './kinds'
import { SharedLogicalVector, SharedStringVector } from './vectors'
import { isSyncKind } from './sync'


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
  kind: Kind | 'bytes' | 'mutex' | 'barrier'
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
    kind: m.kind as Properties['kind'],
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
  if (process.platform === 'linux') p.path = `/dev/shm/sobj.${m.id}`
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
  kind: Kind | 'bytes' | 'list' | 'mutex' | 'barrier'
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
