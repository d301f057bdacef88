/** The robust mutex, and the guard its lock gives. */

import { setTimeout as sleep } from 'node:timers/promises'

import { native } from '../native'
import { codes, coded } from '../errors'
import { SEGMENT_BUFFER, handOut, liveMeta, wordsOf, type Meta, type ViewBuffer } from '../views'
import { type WaitResult, kernelWaits, MAX_POLL_MS, timeoutOf, isOpen, parkedOn } from './words'
import { syncOptions, make, bufferOf, carry, detectionOf } from './base'

/**
 * This thread as a mutex holder: its holder word, and its token as the two unsigned 32-bit words a view
 * of the mutex's words holds it in (native byte order), asked of the native side once per
 * thread.
 */
interface Me {
  word: bigint
  token0: number
  token1: number
}
let me: Me | undefined
const holder = (): Me => {
  if (me !== undefined) return me
  const { word, token } = native.mutexHolder()
  const halves = new Uint32Array(new BigInt64Array([token]).buffer)
  return (me = { word, token0: halves[0]!, token1: halves[1]! })
}

/** The options of {@link mutex}. */
export interface MutexOptions {
  /**
   * How long a locker waits before it checks whether the holder's process (and thread) still
   * runs, in milliseconds: a lock whose holder died is taken over within about this time.
   * Default 100; a whole number from 1 to 3 600 000.
   */
  detectionMs?: number
  /** A user-chosen id, as for `share`. */
  name?: string
  /** Keep the segment after its owner ends, until `free`. */
  persist?: boolean
}

/**
 * A new robust mutex in a segment of its own, for every thread of every process that opens it.
 * It travels like a vector: `handleOf`, JSON (`{"$sharedobject": handle}`), `revive`, `open`,
 * containers; `close`, `free` and `properties` work on it too.
 */
export function mutex(opts?: MutexOptions): SharedMutex {
  const o = syncOptions('mutex', opts, ['detectionMs'])
  return new SharedMutex(make('mutex', o, native.mutexInit(detectionOf('mutex', opts?.detectionMs))))
}

/** The method by which a condition variable's wait marks a guard released and held again. */
export const HOLDING = Symbol('sharedobject.holding')

/**
 * A held lock, from {@link SharedMutex.lock} and its kin. `using guard = m.lock()` unlocks at
 * the end of the block (`Symbol.dispose`).
 */
export class MutexGuard {
  /**
   * True when the previous holder died holding the lock (its process was killed, or its thread
   * ended) and this lock was taken over from it: the data it guarded may be half-updated. The
   * POSIX robust mutex's `EOWNERDEAD`.
   */
  get ownerDied(): boolean {
    return this.#ownerDied
  }

  readonly mutex: SharedMutex
  #held = true
  #ownerDied: boolean

  /** @internal */
  constructor(m: SharedMutex, ownerDied: boolean) {
    this.mutex = m
    this.#ownerDied = ownerDied
  }

  /** @internal A condition variable's wait let the lock go (`held`) or took it again. */
  [HOLDING](held: boolean, ownerDied = false): void {
    this.#held = held
    if (held) this.#ownerDied = ownerDied
  }

  /** Whether this guard still holds the lock. */
  get held(): boolean {
    return this.#held
  }

  /** Unlocks. @throws `ERR_SHM_NOT_OWNER` when this guard unlocked already. */
  unlock(): void {
    if (!this.#held) throw coded(codes.NOT_OWNER, 'unlock: this guard has unlocked already')
    this.#held = false
    this.mutex.unlock()
  }

  /** Unlocks if this guard still holds the lock. */
  [Symbol.dispose](): void {
    if (this.#held) this.unlock()
  }
}

const isAsyncFunction = (f: unknown): boolean => Object.prototype.toString.call(f) === '[object AsyncFunction]'
const isThenable = (v: unknown): v is PromiseLike<unknown> =>
  v !== null && (typeof v === 'object' || typeof v === 'function') && typeof (v as { then?: unknown }).then === 'function'

/**
 * A mutex shared by processes and threads. The holder is a thread: every worker thread is a
 * holder distinct from the main thread, and only the holding thread may unlock. An uncontended
 * lock and unlock are one atomic operation each. Robust: when the holder's process dies
 * (SIGKILL, a crash) or its thread ends while it holds the lock, the next locker takes it over
 * within the detection interval and its guard says `ownerDied`. `tryLock` never judges the
 * holder: only `lock`, `lockAsync` and `withLock` do.
 */
export class SharedMutex {
  declare readonly [SEGMENT_BUFFER]: ViewBuffer
  readonly #detectionMs: number
  readonly #meta: Meta
  /** The holder word as a 64-bit integer, for the fast path; null unless the view is a SharedArrayBuffer. */
  readonly #big: BigInt64Array | null
  readonly #words: Uint32Array

  /** @internal Use {@link mutex} or `open(handle)`. */
  constructor(meta: Meta) {
    carry(this, meta)
    this.#meta = meta
    this.#words = wordsOf(meta.buffer)
    this.#detectionMs = native.mutexState(this.#words).detectionMs
    this.#big = typeof SharedArrayBuffer === 'function' && meta.buffer instanceof SharedArrayBuffer ? new BigInt64Array(meta.buffer, 0, 1) : null
  }

  /**
   * The fast path of an uncontended lock, in JavaScript: one compare-and-swap of the holder word
   * from 0 to this thread's, then one load of the token word. The identity words that let others
   * judge a holder stay after an unlock, so a thread that takes the lock again finds its own token
   * there and writes nothing; otherwise the native side writes them (and says if another thread
   * closed this view meanwhile: zeros are here then, not the mutex). Only over a
   * SharedArrayBuffer: Atomics on an ArrayBuffer are not guaranteed atomic towards other agents.
   */
  #fastLock(): boolean {
    const big = this.#big
    if (big === null || this.#meta.closed) return false
    const me = holder()
    if (Atomics.compareExchange(big, 0, 0n, me.word) !== 0n) return false
    if (!this.#tokenIs(me)) native.mutexClaim(this.#words)
    return true
  }

  /**
   * Whether the token word (bytes 40 to 47) is this thread's. Plain reads, not `Atomics`: only a
   * holder writes the identity words, and only while it holds the lock, so a thread that holds
   * it reads them race-free after its compare-and-swap (which orders them after the previous
   * holder's unlock); one that does not hold it gets a value its holder-word swap then refutes.
   * An `Atomics.load` costs several times as much here.
   */
  #tokenIs(me: Me): boolean {
    const w = this.#words
    return w[10] === me.token0 && w[11] === me.token1
  }

  /**
   * The fast path of an unlock by the holder: the token word must be this thread's, then one
   * compare-and-swap of the holder word from this thread's to 0. False when that fails: lockers
   * sleep (they set the word's top bit), and the native unlock wakes one; or this thread does not
   * hold it, and the native unlock says why.
   */
  #fastUnlock(): boolean {
    const big = this.#big
    if (big === null || this.#meta.closed) return false
    const me = holder()
    return this.#tokenIs(me) && Atomics.compareExchange(big, 0, me.word, 0n) === me.word
  }

  /** How long a locker waits before it checks that the holder still runs, in milliseconds. */
  get detectionMs(): number {
    return this.#detectionMs
  }

  /** The pid of the process whose thread holds the lock, or null when it is free. */
  get holderPid(): number | null {
    return native.mutexState(bufferOf(this, 'holderPid')).holderPid ?? null
  }

  /** Whether this thread holds the lock. */
  get heldHere(): boolean {
    return native.mutexState(bufferOf(this, 'heldHere')).heldHere
  }

  /**
   * Blocks this thread until it holds the lock (or `timeoutMs` passes: then null). Like
   * `Atomics.wait`, this blocks the event loop of the thread that calls it; see {@link lockAsync}.
   * @throws `ERR_SHM_DEADLOCK` if this thread holds it already (say, from an async task):
   * waiting would never end. Use `lockAsync` there.
   */
  lock(): MutexGuard
  lock(timeoutMs: number): MutexGuard | null
  lock(timeoutMs?: number): MutexGuard | null {
    if (this.#fastLock()) return new MutexGuard(this, false)
    const got = native.mutexLock(bufferOf(this, 'lock'), timeoutOf('lock', timeoutMs))
    return got ? new MutexGuard(this, got === 2) : null
  }

  /** Takes the lock if it is free now, else null. Never waits, never judges the holder. */
  tryLock(): MutexGuard | null {
    if (this.#fastLock()) return new MutexGuard(this, false)
    const got = native.mutexTryLock(bufferOf(this, 'tryLock'))
    return got ? new MutexGuard(this, got === 2) : null
  }

  /**
   * Unlocks, waking one waiter if there is any.
   * @throws `ERR_SHM_NOT_OWNER` if this thread does not hold the lock.
   */
  unlock(): void {
    if (!this.#fastUnlock()) native.mutexUnlock(bufferOf(this, 'unlock'))
  }

  /**
   * As {@link lock} without blocking: waiting happens on a thread of the package's own (or, where
   * waits cannot be made in the kernel, by polling from the event loop), so timers and I/O keep
   * running. Async tasks of one thread take turns: this waits even when another task of this
   * thread holds the lock.
   */
  lockAsync(): Promise<MutexGuard>
  lockAsync(timeoutMs: number): Promise<MutexGuard | null>
  async lockAsync(timeoutMs?: number): Promise<MutexGuard | null> {
    const deadline = performance.now() + timeoutOf('lockAsync', timeoutMs)
    let judged = performance.now()
    // Once it slept, this locker takes the lock natively, with the sleepers' bit while others
    // still wait (see the native mutex), so that its unlock wakes the next.
    let slept = false
    for (let nap = 0; ; nap = Math.min(MAX_POLL_MS, Math.max(1, nap * 2))) {
      if (!slept && this.#fastLock()) return new MutexGuard(this, false)
      const buffer = bufferOf(this, 'lockAsync')
      const got = native.mutexTryLock(buffer, slept)
      if (got) return new MutexGuard(this, got === 2)
      const left = deadline - performance.now()
      if (left <= 0) return null
      const slice = Math.min(left, this.#detectionMs)
      let judge: boolean
      if (kernelWaits) {
        const seq = native.mutexWaitBegin(buffer)
        if (seq < 0) continue
        let r: WaitResult
        try {
          r = await parkedOn(this, 'lockAsync', native.mutexParkAsync(buffer, seq, slice), () => native.syncNotify(buffer, 12, 4, Infinity))
        } finally {
          // Still counted as a waiter until here; a closed view's words are gone with it.
          if (isOpen(this)) native.mutexWaitEnd(buffer)
          slept = true
        }
        // A sleep that ran out saw no unlock: time to look at the holder.
        judge = r === 'timed-out'
      } else {
        await (nap === 0 ? new Promise<void>((r) => setImmediate(r)) : sleep(Math.min(nap, left)))
        judge = performance.now() - judged >= this.#detectionMs
      }
      if (judge) {
        judged = performance.now()
        const took = native.mutexReclaim(bufferOf(this, 'lockAsync'))
        if (took) return new MutexGuard(this, took === 2)
      }
    }
  }

  /**
   * Runs `fn` holding the lock and unlocks when it returns or throws. An `async` function gets
   * the lock with {@link lockAsync} and the result is a promise that unlocks when it settles; a
   * plain function gets it with {@link lock} (and if it returns a promise, the lock is held until
   * that settles). `fn` receives the guard, whose `ownerDied` says whether a dead holder's work
   * may need repair.
   */
  withLock<T>(fn: (guard: MutexGuard) => T): T {
    if (typeof fn !== 'function') throw coded(codes.INVALID_ARG_TYPE, 'withLock: fn must be a function', TypeError)
    if (isAsyncFunction(fn)) {
      return this.lockAsync().then(async (g) => {
        try {
          return await fn(g)
        } finally {
          g[Symbol.dispose]()
        }
      }) as T
    }
    const g = this.lock()
    let r: T
    try {
      r = fn(g)
    } catch (e) {
      g[Symbol.dispose]()
      throw e
    }
    if (isThenable(r)) return Promise.resolve(r).finally(() => g[Symbol.dispose]()) as T
    g[Symbol.dispose]()
    return r
  }

  /** `{"$sharedobject": handle}`: `revive` on the other side gives the mutex back. */
  toJSON(): { $sharedobject: string } {
    return { $sharedobject: handOut(liveMeta(this, 'toJSON')) }
  }
}
