/** The counting semaphore. */

import { native } from '../native'
import { codes, coded } from '../errors'
import { SEGMENT_BUFFER, handOut, liveMeta, wordsOf, type Meta, type ViewBuffer } from '../views'
import { timeoutOf, isOpen } from './words'
import { syncOptions, make, bufferOf, carry, detectionOf, sleepOn } from './base'

/** The options of {@link semaphore}. */
export interface SemaphoreOptions {
  /**
   * How long an acquirer waits before it looks for holders that died, in milliseconds (default
   * 100): their permits come back within about this time.
   */
  detectionMs?: number
  /** A user-chosen id, as for `share`. */
  name?: string
  /** Keep the segment after its owner ends, until `free`. */
  persist?: boolean
}

/**
 * A new counting semaphore with `permits` permits (a whole number from 0 to 2^53 - 1), in a
 * segment of its own that travels like a vector.
 */
export function semaphore(permits: number, opts?: SemaphoreOptions): SharedSemaphore {
  if (typeof permits !== 'number' || !Number.isSafeInteger(permits) || permits < 0) {
    throw coded(codes.OUT_OF_RANGE, `semaphore: permits must be a whole number from 0 to 2^53 - 1, got ${String(permits)}`, RangeError)
  }
  const o = syncOptions('semaphore', opts, ['detectionMs'])
  const init = native.semaphoreInit(permits, detectionOf('semaphore', opts?.detectionMs))
  return new SharedSemaphore(make('semaphore', o, init, native.semaphoreSize()))
}

/**
 * A counting semaphore shared by processes and threads. A permit is held by the thread that
 * acquired it until that thread releases one; when a holding thread dies (its process killed, or
 * the thread ended), its permits come back within the detection interval, found by the next
 * `acquire` or `acquireAsync` that has to wait. A release by a thread that holds no permit adds
 * one (a semaphore used as a signal). The first 256 threads that use it at once are tracked;
 * permits of further threads do not come back on their death.
 */
export class SharedSemaphore {
  declare readonly [SEGMENT_BUFFER]: ViewBuffer
  readonly #detectionMs: number

  /** @internal Use {@link semaphore} or `open(handle)`. */
  constructor(meta: Meta) {
    carry(this, meta)
    this.#detectionMs = native.semaphoreDetectionMs(wordsOf(meta.buffer))
  }

  /** Permits available now (others may take or return some at any moment). */
  get value(): number {
    return native.semaphoreAvailable(bufferOf(this, 'value'))
  }

  /**
   * Takes a permit, blocking this thread until one is available or `timeoutMs` passes: true
   * when taken, false on timeout. Blocks the event loop, as `Atomics.wait` does; see
   * {@link acquireAsync}.
   */
  acquire(timeoutMs?: number): boolean {
    return native.semaphoreAcquire(bufferOf(this, 'acquire'), timeoutOf('acquire', timeoutMs))
  }

  /** Takes a permit if one is available now: true when taken. Never waits. */
  tryAcquire(): boolean {
    return native.semaphoreTryAcquire(bufferOf(this, 'tryAcquire'))
  }

  /** Returns a permit, waking one waiter. @throws `ERR_OUT_OF_RANGE` past 2^53 - 1 permits. */
  release(): void {
    native.semaphoreRelease(bufferOf(this, 'release'))
  }

  /** As {@link acquire}, without blocking the event loop: a promise of true, or false on timeout. */
  async acquireAsync(timeoutMs?: number): Promise<boolean> {
    const deadline = performance.now() + timeoutOf('acquireAsync', timeoutMs)
    for (;;) {
      const words = bufferOf(this, 'acquireAsync')
      if (native.semaphoreTryAcquire(words)) return true
      const seq = native.semaphoreWaitBegin(words)
      let ranOut: boolean
      try {
        if (native.semaphoreAvailable(words) > 0) continue
        const left = deadline - performance.now()
        if (left <= 0) return false
        ranOut = await sleepOn(this, words, 18, seq, Math.min(left, this.#detectionMs), (t) => native.semaphoreParkAsync(words, seq, t))
      } finally {
        if (isOpen(this)) native.semaphoreWaitEnd(words)
      }
      if (ranOut) native.semaphoreReclaim(bufferOf(this, 'acquireAsync'))
    }
  }

  /** `{"$sharedobject": handle}`: `revive` on the other side gives the semaphore back. */
  toJSON(): { $sharedobject: string } {
    return { $sharedobject: handOut(liveMeta(this, 'toJSON')) }
  }
}
