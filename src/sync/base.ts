/** What the objects of `sync/` share: their options, their segments, and one asynchronous sleep. */

import { native } from '../native'
import { codes, coded } from '../errors'
import { type Kind } from '../kinds'
import { resolve, type Resolved } from '../options'
import { createOptions, created } from '../create'
import { SEGMENT_BUFFER, liveMeta, wordsOf, type Meta } from '../views'
import { type WaitResult, kernelWaits, parkedOn, pollUntil } from './words'

const DEFAULT_DETECTION_MS = 100

export function syncOptions(fn: string, opts: object | undefined, extra: string[]): Resolved {
  if (opts === undefined) return { ...resolve(undefined), copyOnWrite: false, attributes: undefined }
  if (opts === null || typeof opts !== 'object') throw coded(codes.INVALID_ARG_TYPE, `${fn}: options must be an object`, TypeError)
  const known = ['name', 'persist', ...extra]
  for (const k of Object.keys(opts)) {
    if (!known.includes(k)) throw coded(codes.INVALID_ARG_VALUE, `${fn}: unknown option ${JSON.stringify(k)}; options are ${known.join(', ')}`, TypeError)
  }
  const picked: Record<string, unknown> = {}
  for (const k of ['name', 'persist']) if ((opts as Record<string, unknown>)[k] !== undefined) picked[k] = (opts as Record<string, unknown>)[k]
  return { ...resolve(picked), copyOnWrite: false, attributes: undefined }
}

/** The kinds of segment that hold one of the objects of this module rather than a vector. */
type SyncKind = 'mutex' | 'barrier' | 'condition' | 'semaphore' | 'channel'

export function make(kind: SyncKind, o: Resolved, init: Uint8Array, byteLength = init.length): Meta {
  return created(native.create(createOptions(kind as unknown as Kind, 1, o, { byteLength }), init))
}

/** The live buffer of one of these objects: throws `ERR_SHM_CLOSED` once it was closed here. */
export function bufferOf(value: object, fn: string): Uint32Array {
  return wordsOf(liveMeta(value, fn).buffer)
}

export function carry(value: object, meta: Meta): void {
  Object.defineProperty(value, SEGMENT_BUFFER, { value: meta.buffer })
}

/** `detectionMs` as the options of {@link mutex} take it. */
export function detectionOf(fn: string, ms: unknown): number {
  const v = ms ?? DEFAULT_DETECTION_MS
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 3_600_000) {
    throw coded(codes.OUT_OF_RANGE, `${fn}: detectionMs must be a whole number from 1 to 3600000, got ${String(v)}`, RangeError)
  }
  return v
}

/**
 * One sleep of an asynchronous waiter, never blocking the event loop: until word `index` of
 * `words` changes from `seq` or `sliceMs` passes. True when the sleep ran out. Parks a thread in
 * the kernel's wait where there is one; elsewhere polls from the event loop.
 */
export async function sleepOn(owner: object, words: Uint32Array, index: number, seq: number, sliceMs: number, park: (t: number) => Promise<WaitResult>): Promise<boolean> {
  if (kernelWaits) {
    const wake = (): number => native.syncNotify(words, index * 4, 4, Infinity)
    return (await parkedOn(owner, 'wait', park(sliceMs), wake)) === 'timed-out'
  }
  const meta = liveMeta(owner, 'wait')
  return !(await pollUntil(() => meta.closed || Atomics.load(words, index) !== seq, sliceMs))
}
