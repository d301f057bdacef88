/**
 * The developer API of R SharedObject, with its names and meaning: raw segments by id, mapped as
 * ArrayBuffers, for code that manages its own layout. Also `pkgconfig`, for native addon authors.
 */
import * as path from 'node:path'

import { native } from './native'
import { codes, coded } from './errors'
import { remember } from './views'
import { close } from './inspect'

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
  if (x === 'PKG_CPPFLAGS') return `-I${path.join(__dirname, '..', '..', 'include')}`
  if (x === 'PKG_LIBS') return ''
  throw coded(codes.INVALID_ARG_VALUE, `pkgconfig: expected "PKG_CPPFLAGS" or "PKG_LIBS", got ${JSON.stringify(x)}`, TypeError)
}

/** Mappings and views this process holds (diagnostics). */
export function stats(): { mappings: number; views: number } {
  return native.stats()
}

// Loading the package frees what crashed owners left behind; it never touches a live owner's.
