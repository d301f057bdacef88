/** The reusable barrier, which breaks when a party dies or times out. */

import { native } from '../native'
import { codes, coded } from '../errors'
import { SEGMENT_BUFFER, handOut, liveMeta, wordsOf, type Meta, type ViewBuffer } from '../views'
import { timeoutOf } from './words'
import { syncOptions, make, bufferOf, carry, detectionOf, sleepOn } from './base'

/** The options of {@link barrier}. */
export interface BarrierOptions {
  /**
   * How often a waiter looks for a party that died, in milliseconds (default 100): a party that
   * waited on the barrier before and died without arriving breaks it within about this time.
   */
  detectionMs?: number
  /** A user-chosen id, as for `share`. */
  name?: string
  /** Keep the segment after its owner ends, until `free`. */
  persist?: boolean
}

/**
 * A new barrier for `parties` threads or processes, in a segment of its own that travels like
 * a vector. Reusable: round after round, no party returns from `wait` before all have arrived.
 */
export function barrier(parties: number, opts?: BarrierOptions): SharedBarrier {
  if (typeof parties !== 'number' || !Number.isInteger(parties) || parties < 1 || parties > 0xffffffff) {
    throw coded(codes.OUT_OF_RANGE, `barrier: parties must be a whole number from 1 to 4294967295, got ${String(parties)}`, RangeError)
  }
  const o = syncOptions('barrier', opts, ['detectionMs'])
  const init = native.barrierInit(parties, detectionOf('barrier', opts?.detectionMs))
  return new SharedBarrier(make('barrier', o, init, native.barrierSize(parties)))
}

/**
 * A barrier shared by processes and threads. Exactly `parties` parties take part in each round.
 * It breaks, as Python's `threading.Barrier` does, when a wait times out, when a party calls
 * {@link abort}, or when a thread that waited on it before dies (its process killed, or the
 * thread ended) without arriving in the round under way: every waiter then fails with
 * `ERR_SHM_BARRIER_BROKEN`, and so does every later wait until {@link reset}. Death is seen
 * within the detection interval; only the first 256 threads that wait are watched.
 */
export class SharedBarrier {
  declare readonly [SEGMENT_BUFFER]: ViewBuffer
  readonly #parties: number

  /** @internal Use {@link barrier} or `open(handle)`. */
  constructor(meta: Meta) {
    carry(this, meta)
    this.#parties = native.barrierParties(wordsOf(meta.buffer))
  }

  get parties(): number {
    return this.#parties
  }

  /** Whether the barrier is broken (until {@link reset}). */
  get broken(): boolean {
    return native.barrierBroken(bufferOf(this, 'broken'))
  }

  /**
   * Arrives and blocks this thread until every party has arrived. Returns true in exactly one
   * party per round: the one that arrived last and released the others.
   * @throws `ERR_SHM_BARRIER_BROKEN` if the barrier is broken, breaks while waiting, or
   * `timeoutMs` passes first (which breaks it for every party).
   */
  wait(timeoutMs?: number): boolean {
    return native.barrierWait(bufferOf(this, 'wait'), timeoutOf('wait', timeoutMs))
  }

  /**
   * As {@link wait}, without blocking the event loop. Arrival happens at once, in call order;
   * the promise rejects with `ERR_SHM_BARRIER_BROKEN` where `wait` throws.
   */
  async waitAsync(timeoutMs?: number): Promise<boolean> {
    const deadline = performance.now() + timeoutOf('waitAsync', timeoutMs)
    const generation = native.barrierArrive(bufferOf(this, 'waitAsync'))
    if (generation < 0) return true
    const detection = native.barrierDetectionMs(bufferOf(this, 'waitAsync'))
    while (!native.barrierPassed(bufferOf(this, 'waitAsync'), generation)) {
      const left = deadline - performance.now()
      if (left <= 0) {
        native.barrierBreak(bufferOf(this, 'waitAsync'), generation)
        continue
      }
      const words = bufferOf(this, 'waitAsync')
      const ranOut = await sleepOn(this, words, 1, generation, Math.min(left, detection), (t) => native.barrierParkAsync(words, generation, t))
      if (ranOut) native.barrierCheck(bufferOf(this, 'waitAsync'), generation)
    }
    return false
  }

  /** Breaks the barrier: every party waiting now, and every later wait, fails until {@link reset}. */
  abort(): void {
    native.barrierAbort(bufferOf(this, 'abort'))
  }

  /**
   * Makes a broken barrier usable again, for a fresh round with nobody arrived, and forgets the
   * parties that died (so that new ones can take their place). Call it while nobody waits.
   */
  reset(): void {
    native.barrierReset(bufferOf(this, 'reset'))
  }

  /** `{"$sharedobject": handle}`: `revive` on the other side gives the barrier back. */
  toJSON(): { $sharedobject: string } {
    return { $sharedobject: handOut(liveMeta(this, 'toJSON')) }
  }
}
