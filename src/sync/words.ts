/**
 * Wait and notify on the words of shared int32 and int64 vectors, across processes: `Atomics.wait`
 * and `Atomics.notify` over a segment; and the parked (asynchronous) waits every object of
 * `sync/` uses.
 */

import { setTimeout as sleep } from 'node:timers/promises'

import { native } from '../native'
import { codes, coded } from '../errors'
import { liveMeta, metaOf, onClose } from '../views'

/** How a wait ended: as `Atomics.wait` says it. */
export type WaitResult = 'ok' | 'not-equal' | 'timed-out'

/** The vectors that can be waited on: shared `int32` and `int64` vectors (and views of them). */
export type WaitableVector = Int32Array | BigInt64Array

/** Waits happen in the kernel here (Linux; macOS 14.4 and later); elsewhere waiters poll. */
export const kernelWaits = native.syncKernelWaits()
/** The longest sleep between two looks of an asynchronous waiter that polls. */
export const MAX_POLL_MS = 4

interface Word {
  target: WaitableVector
  index: number
  byteOffset: number
  wide: boolean
}

function wordOf(fn: string, vector: unknown, index: unknown): Word {
  const meta = liveMeta(vector, fn)
  const tag = Object.prototype.toString.call(vector)
  const wide = tag === '[object BigInt64Array]'
  if (!wide && tag !== '[object Int32Array]') {
    throw coded(codes.INVALID_ARG_TYPE, `${fn}: only int32 and int64 vectors can be waited on (as with Atomics.wait), got ${meta.kind}`, TypeError)
  }
  if (meta.copyOnWrite) {
    throw coded(
      codes.COPY_ON_WRITE,
      `${fn}: this view is copy-on-write, private to this process, so no other process can change or notify it; open the vector with { copyOnWrite: false }`,
    )
  }
  const target = vector as WaitableVector
  if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index >= target.length) {
    throw coded(codes.OUT_OF_RANGE, `${fn}: index must be a whole number from 0 to ${target.length - 1}, got ${String(index)}`, RangeError)
  }
  return { target, index, byteOffset: index * target.BYTES_PER_ELEMENT, wide }
}

function valueOf(fn: string, w: Word, value: unknown): number | bigint {
  if (w.wide) {
    if (typeof value !== 'bigint') throw coded(codes.INVALID_ARG_TYPE, `${fn}: an int64 vector's value is a bigint, got ${typeof value}`, TypeError)
    return BigInt.asIntN(64, value)
  }
  if (typeof value !== 'number') throw coded(codes.INVALID_ARG_TYPE, `${fn}: an int32 vector's value is a number, got ${typeof value}`, TypeError)
  return value | 0
}

/** Milliseconds, as `Atomics.wait` reads them: undefined and NaN wait forever, negatives not at all. */
export function timeoutOf(fn: string, ms: unknown): number {
  if (ms === undefined) return Infinity
  if (typeof ms !== 'number') throw coded(codes.INVALID_ARG_TYPE, `${fn}: timeoutMs must be a number, got ${typeof ms}`, TypeError)
  return Number.isNaN(ms) ? Infinity : Math.max(0, ms)
}

/**
 * Blocks this thread while element `index` of a shared int32 or int64 vector holds `value`,
 * until another process or thread calls {@link notify} on it, or `timeoutMs` passes: the
 * semantics of `Atomics.wait`, across processes. Blocking the main thread blocks its event loop,
 * as `Atomics.wait` does there; {@link waitAsync} does not. Where the machine has more than one
 * CPU it watches the word for up to 50 µs before it sleeps in the kernel, and a change seen then
 * ends the wait with `'ok'`: a prompt reply costs no wake-up. Change the value before notifying.
 *
 * @throws `ERR_SHM_NOT_SHARED` (TypeError) for a vector that is not shared, `ERR_INVALID_ARG_TYPE`
 * (TypeError) for another kind or a value of the wrong type, `ERR_OUT_OF_RANGE` (RangeError) for
 * an index outside the vector, `ERR_SHM_COPY_ON_WRITE` for a copy-on-write view, and
 * `ERR_SHM_CLOSED` for a closed one.
 */
export function wait(vector: WaitableVector, index: number, value: number | bigint, timeoutMs?: number): WaitResult {
  const w = wordOf('wait', vector, index)
  const v = valueOf('wait', w, value)
  const t = timeoutOf('wait', timeoutMs)
  return w.wide ? native.syncWait64(w.target, w.byteOffset, v as bigint, t) : native.syncWait32(w.target, w.byteOffset, v as number, t)
}

/**
 * Wakes up to `count` (default: all) waiters of element `index`, in every process and thread
 * that maps the vector, and returns how many it woke (waiters still watching the word before
 * they sleep are not counted: they see the changed value themselves). Where waiters poll (Windows, macOS before
 * 14.4) it cannot count them and returns 0; they see a changed value within a few milliseconds.
 * Change the value before notifying, as with `Atomics.notify`.
 */
export function notify(vector: WaitableVector, index: number, count?: number): number {
  const w = wordOf('notify', vector, index)
  if (count !== undefined && typeof count !== 'number') {
    throw coded(codes.INVALID_ARG_TYPE, `notify: count must be a number, got ${typeof count}`, TypeError)
  }
  const n = count === undefined ? Infinity : Number.isNaN(count) ? 0 : Math.max(0, Math.trunc(count))
  return native.syncNotify(w.target, w.byteOffset, w.wide ? 8 : 4, n)
}

/**
 * A parked wait's promise: keeps `value` (what is waited on) reachable until it settles, and
 * gives a failure to start a waiting thread its code.
 */
function parked<T>(p: Promise<T>, value: unknown): Promise<T> {
  return p.then(
    (r) => {
      keep(value)
      return r
    },
    (e: Error) => {
      throw coded(codes.OS, e.message.replace(/^ERR_SHM_OS: /, ''))
    },
  )
}
export function keep(_value: unknown): void {}

/** Whether this thread has not closed the object's view. */
export const isOpen = (value: object): boolean => metaOf(value)?.closed === false

/**
 * A parked wait on an object or vector of this thread that settles at once if this thread
 * closes it meanwhile: rejected with `ERR_SHM_CLOSED`, never with a lock or a value of memory
 * that is gone. `wake` ends the parked thread's sleep first (the pages are still mapped then).
 */
export function parkedOn<T>(value: object, fn: string, p: Promise<T>, wake: () => void): Promise<T> {
  const meta = liveMeta(value, fn)
  let forget = (): void => {}
  const closed = new Promise<never>((_, reject) => {
    forget = onClose(meta, () => {
      wake()
      reject(coded(codes.CLOSED, `${fn}: closed in this thread while waiting`))
    })
  })
  return Promise.race([parked(p, value), closed]).finally(() => forget())
}

/**
 * As {@link wait}, without blocking: the promise settles when the wait ends, and the event loop
 * (timers, I/O) keeps running meanwhile. The wait happens on a thread of the package's own
 * (never libuv's thread pool): on Linux 5.16 and later every pending wait shares at most 16
 * such threads, and waits on one element settle in the order they began (a notify from this
 * process ends all of them); elsewhere each holds one. A notify that races with the start of
 * the wait is seen if it changed the value, as notifiers do. A pending
 * `waitAsync` keeps the process alive, as a pending timer does. Argument errors throw at once,
 * as with {@link wait}; a failure to start a waiting thread rejects with `ERR_SHM_OS`.
 */
export function waitAsync(vector: WaitableVector, index: number, value: number | bigint, timeoutMs?: number): Promise<WaitResult> {
  const w = wordOf('waitAsync', vector, index)
  const v = valueOf('waitAsync', w, value)
  const t = timeoutOf('waitAsync', timeoutMs)
  if (kernelWaits) {
    const p = w.wide ? native.syncWaitAsync64(w.target, w.byteOffset, v as bigint, t) : native.syncWaitAsync32(w.target, w.byteOffset, v as number, t)
    return parkedOn(w.target, 'waitAsync', p, () => native.syncNotify(w.target, w.byteOffset, w.wide ? 8 : 4, Infinity))
  }
  const now = (): number | bigint => (w.wide ? Atomics.load(w.target as BigInt64Array, w.index) : Atomics.load(w.target as Int32Array, w.index))
  if (now() !== v) return Promise.resolve('not-equal')
  return pollUntil(() => now() !== v, t).then((changed) => (changed ? 'ok' : 'timed-out'))
}

/** Polls `done` from the event loop with growing sleeps until it holds or `timeoutMs` passes. */
export async function pollUntil(done: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs
  for (let nap = 0; ; nap = Math.min(MAX_POLL_MS, Math.max(1, nap * 2))) {
    if (done()) return true
    const left = deadline - performance.now()
    if (left <= 0) return false
    await (nap === 0 ? new Promise<void>((r) => setImmediate(r)) : sleep(Math.min(nap, left)))
  }
}
