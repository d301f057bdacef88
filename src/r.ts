/**
 * The developer API of R SharedObject, with its names and meaning: raw segments by id, mapped as
 * ArrayBuffers, for code that manages its own layout. Also `pkgconfig`, for native addon authors.
 */
import * as path from 'node:path'

import { native } from './native'
import { codes, coded } from './errors'
import { closeMeta, devMaps, remember } from './views'
import { stats as handoutStats, type Stats } from './handouts'


/** An id argument, checked before it reaches the native side (whose messages would quote it). */
function idArg(id: unknown, fn: string): string {
  if (typeof id !== 'string') {
    throw coded(codes.NAME, `${fn}: an id is a string, got ${id === null ? 'null' : Array.isArray(id) ? 'an array' : typeof id}`, TypeError)
  }
  if (id.length > 64) throw coded(codes.NAME, `${fn}: invalid id (${id.length} characters)`, TypeError)
  return id
}

/** The id of the last segment this process created, or null. */
export function getLastIndex(): string | null {
  return native.lastCreated() ?? null
}

/** Allocates a persistent untyped segment of `size` bytes; returns its id. */
export function allocateSharedMemory(size: number, name?: string): string {
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw coded(codes.OUT_OF_RANGE, `allocateSharedMemory: size must be a whole number >= 0, got ${typeof size === 'number' ? size : typeof size}`, RangeError)
  }
  const id = name === undefined || name === '' ? undefined : idArg(name, 'allocateSharedMemory')
  return native.allocate(size, id)
}

/** Maps a segment by id; an ArrayBuffer over its data. Repeated maps return the same buffer. */
export function mapSharedMemory(id: string): ArrayBuffer {
  idArg(id, 'mapSharedMemory')
  const known = devMaps.get(id)
  if (known && !known.meta.closed) {
    known.count++
    return known.meta.buffer as ArrayBuffer
  }
  const meta = remember(native.openId(id, false))
  devMaps.set(id, { meta, count: 1 })
  return meta.buffer as ArrayBuffer
}

/** Undoes one `mapSharedMemory`; the last one unmaps (the buffer is detached). */
export function unmapSharedMemory(id: string): void {
  idArg(id, 'unmapSharedMemory')
  const known = devMaps.get(id)
  if (!known) return
  if (--known.count > 0 && !known.meta.closed) return
  devMaps.delete(id)
  closeMeta(known.meta)
}

/** Unmaps the segment in this process and removes it. */
export function freeSharedMemory(id: string): void {
  idArg(id, 'freeSharedMemory')
  const known = devMaps.get(id)
  if (known) {
    devMaps.delete(id)
    closeMeta(known.meta)
  }
  native.free(id)
}

export function hasSharedMemory(id: string): boolean {
  return native.exists(idArg(id, 'hasSharedMemory'))
}

/** Bytes a segment's data holds: at least what was asked for. */
export function getSharedMemorySize(id: string): number {
  return native.dataSize(idArg(id, 'getSharedMemorySize'))
}

/** Loads the package's per-process state and frees segments left by dead owners. */
export function initialSharedObjectPackageData(): void {
  native.sweep(false)
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
  if (x === 'PKG_CPPFLAGS') return `-I${path.join(__dirname, '..', '..', 'include')}`
  if (x === 'PKG_LIBS') return ''
  throw coded(codes.INVALID_ARG_VALUE, `pkgconfig: expected "PKG_CPPFLAGS" or "PKG_LIBS", got ${JSON.stringify(x)}`, TypeError)
}

/**
 * What this process holds now: `segments`, `bytes` and `descriptors` (owned or opened), the
 * same by state in `byState` (live, handed out and still referenced, handed out and dropped,
 * waiting for opens, opened), `mappings` (registered and alive, one per segment and mode) and
 * `live` (mappings neither closed nor released). Looking also lets go of handed-out segments
 * others freed.
 */
export function stats(): Stats {
  return handoutStats()
}
