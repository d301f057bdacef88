/**
 * Synchronisation between the processes and threads that map the same segments: wait/notify on
 * shared int32 and int64 vectors (`Atomics.wait` / `Atomics.notify` across processes), a robust
 * mutex and a reusable barrier, each in a segment of its own that travels like a vector.
 *
 * Memory order: every operation here is sequentially consistent. Whatever a thread wrote before
 * `notify` is visible to the waiter it wakes once `wait` returns `'ok'`; whatever a holder wrote
 * before `unlock` is visible to the next holder once `lock` returns; whatever any party wrote
 * before a barrier's `wait` is visible to every party after it. This holds for plain element
 * writes too, in every process, as it does for a `SharedArrayBuffer` between threads.
 */
import { setTimeout as sleep } from 'node:timers/promises'

import { native } from './native'
import { codes, coded } from './errors'
import { type Kind } from './kinds'
import { resolve, type Resolved } from './options'
import { createOptions, created } from './share'
import { close } from './inspect'
import { SEGMENT_BUFFER, liveMeta, wordsOf, type Meta, type ViewBuffer } from './views'

/** How a wait ended: as `Atomics.wait` says it. */
export type WaitResult = 'ok' | 'not-equal' | 'timed-out'

/** The vectors that can be waited on: shared `int32` and `int64` vectors (and views of them). */
export type WaitableVector = Int32Array | BigInt64Array

/** Waits happen in the kernel here (Linux; macOS 14.4 and later); elsewhere waiters poll. */
const kernelWaits = native.syncKernelWaits()
/** The longest sleep between two looks of an asynchronous waiter that polls. */
const MAX_POLL_MS = 4

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
function timeoutOf(fn: string, ms: unknown): number {
  if (ms === undefined) return Infinity
  if (typeof ms !== 'number') throw coded(codes.INVALID_ARG_TYPE, `${fn}: timeoutMs must be a number, got ${typeof ms}`, TypeError)
  return Number.isNaN(ms) ? Infinity : Math.max(0, ms)
}

/**
 * Blocks this thread while element `index` of a shared int32 or int64 vector holds `value`,
 * until another process or thread calls {@link notify} on it, or `timeoutMs` passes: the
 * semantics of `Atomics.wait`, across processes. Blocking the main thread blocks its event loop,
 * as `Atomics.wait` does there; {@link waitAsync} does not.
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
 * that maps the vector, and returns how many it woke. Where waiters poll (Windows, macOS before
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
function keep(_value: unknown): void {}

/**
 * As {@link wait}, without blocking: the promise settles when the wait ends, and the event loop
 * (timers, I/O) keeps running meanwhile. The wait happens on a thread of the package's own
 * (never libuv's thread pool); each pending `waitAsync` holds one such thread. A notify that
 * races with the start of the wait is seen if it changed the value, as notifiers do. A pending
 * `waitAsync` keeps the process alive, as a pending timer does. Argument errors throw at once,
 * as with {@link wait}; a failure to start a waiting thread rejects with `ERR_SHM_OS`.
 */
export function waitAsync(vector: WaitableVector, index: number, value: number | bigint, timeoutMs?: number): Promise<WaitResult> {
  const w = wordOf('waitAsync', vector, index)
  const v = valueOf('waitAsync', w, value)
  const t = timeoutOf('waitAsync', timeoutMs)
  if (kernelWaits) {
    const p = w.wide ? native.syncWaitAsync64(w.target, w.byteOffset, v as bigint, t) : native.syncWaitAsync32(w.target, w.byteOffset, v as number, t)
    return parked(p, w.target)
  }
  const now = (): number | bigint => (w.wide ? Atomics.load(w.target as BigInt64Array, w.index) : Atomics.load(w.target as Int32Array, w.index))
  if (now() !== v) return Promise.resolve('not-equal')
  return pollUntil(() => now() !== v, t).then((changed) => (changed ? 'ok' : 'timed-out'))
}

/** Polls `done` from the event loop with growing sleeps until it holds or `timeoutMs` passes. */
async function pollUntil(done: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs
  for (let nap = 0; ; nap = Math.min(MAX_POLL_MS, Math.max(1, nap * 2))) {
    if (done()) return true
    const left = deadline - performance.now()
    if (left <= 0) return false
    await (nap === 0 ? new Promise<void>((r) => setImmediate(r)) : sleep(Math.min(nap, left)))
  }
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

/** The options of {@link barrier}. */
export interface BarrierOptions {
  name?: string
  persist?: boolean
}

const DEFAULT_DETECTION_MS = 100

function syncOptions(fn: string, opts: object | undefined, extra: string[]): Resolved {
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

function make(kind: 'mutex' | 'barrier', o: Resolved, init: Uint8Array): Meta {
  return created(native.create(createOptions(kind as unknown as Kind, 1, o, { byteLength: init.length }), init))
}

/** The live buffer of a mutex or barrier: throws `ERR_SHM_CLOSED` once it was closed here. */
function bufferOf(value: SharedMutex | SharedBarrier, fn: string): Uint32Array {
  return wordsOf(liveMeta(value, fn).buffer)
}

function carry(value: SharedMutex | SharedBarrier, meta: Meta): void {
  Object.defineProperty(value, SEGMENT_BUFFER, { value: meta.buffer })
}

/**
 * A new robust mutex in a segment of its own, for every thread of every process that opens it.
 * It travels like a vector: `handleOf`, JSON (`{"$sharedobject": handle}`), `revive`, `open`,
 * containers; `close`, `free` and `properties` work on it too.
 */
export function mutex(opts?: MutexOptions): SharedMutex {
  const o = syncOptions('mutex', opts, ['detectionMs'])
  const ms = opts?.detectionMs ?? DEFAULT_DETECTION_MS
  if (typeof ms !== 'number' || !Number.isInteger(ms) || ms < 1 || ms > 3_600_000) {
    throw coded(codes.OUT_OF_RANGE, `mutex: detectionMs must be a whole number from 1 to 3600000, got ${String(ms)}`, RangeError)
  }
  return new SharedMutex(make('mutex', o, native.mutexInit(ms)))
}

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
  readonly ownerDied: boolean
  readonly mutex: SharedMutex
  #held = true

  /** @internal */
  constructor(m: SharedMutex, ownerDied: boolean) {
    this.mutex = m
    this.ownerDied = ownerDied
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

  /** @internal Use {@link mutex} or `open(handle)`. */
  constructor(meta: Meta) {
    carry(this, meta)
    this.#detectionMs = native.mutexState(wordsOf(meta.buffer)).detectionMs
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
    const got = native.mutexLock(bufferOf(this, 'lock'), timeoutOf('lock', timeoutMs))
    return got ? new MutexGuard(this, got === 2) : null
  }

  /** Takes the lock if it is free now, else null. Never waits, never judges the holder. */
  tryLock(): MutexGuard | null {
    const got = native.mutexTryLock(bufferOf(this, 'tryLock'))
    return got ? new MutexGuard(this, got === 2) : null
  }

  /**
   * Unlocks, waking one waiter if there is any.
   * @throws `ERR_SHM_NOT_OWNER` if this thread does not hold the lock.
   */
  unlock(): void {
    native.mutexUnlock(bufferOf(this, 'unlock'))
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
    for (let nap = 0; ; nap = Math.min(MAX_POLL_MS, Math.max(1, nap * 2))) {
      const buffer = bufferOf(this, 'lockAsync')
      const got = native.mutexTryLock(buffer)
      if (got) return new MutexGuard(this, got === 2)
      const left = deadline - performance.now()
      if (left <= 0) return null
      const slice = Math.min(left, this.#detectionMs)
      let judge: boolean
      if (kernelWaits) {
        const seq = native.mutexWaitBegin(buffer)
        if (seq < 0) continue
        const r = await parked(native.mutexParkAsync(buffer, seq, slice), this)
        native.mutexWaitEnd(bufferOf(this, 'lockAsync'))
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
    return { $sharedobject: liveMeta(this, 'toJSON').handle }
  }
}

/**
 * A new barrier for `parties` threads or processes, in a segment of its own that travels like
 * a vector. Reusable: round after round, no party returns from `wait` before all have arrived.
 */
export function barrier(parties: number, opts?: BarrierOptions): SharedBarrier {
  if (typeof parties !== 'number' || !Number.isInteger(parties) || parties < 1 || parties > 0xffffffff) {
    throw coded(codes.OUT_OF_RANGE, `barrier: parties must be a whole number from 1 to 4294967295, got ${String(parties)}`, RangeError)
  }
  return new SharedBarrier(make('barrier', syncOptions('barrier', opts, []), native.barrierInit(parties)))
}

/**
 * A barrier shared by processes and threads. Exactly `parties` parties take part in each round;
 * one that dies before arriving leaves the others waiting (a barrier has no timeout).
 */
export class SharedBarrier {
  declare readonly [SEGMENT_BUFFER]: ViewBuffer
  readonly #parties: number

  /** @internal Use {@link barrier} or `open(handle)`. */
  constructor(meta: Meta) {
    carry(this, meta)
    this.#parties = native.barrierParties(meta.buffer)
  }

  get parties(): number {
    return this.#parties
  }

  /**
   * Arrives and blocks this thread until every party has arrived. Returns true in exactly one
   * party per round: the one that arrived last and released the others.
   */
  wait(): boolean {
    return native.barrierWait(bufferOf(this, 'wait'))
  }

  /** As {@link wait}, without blocking the event loop. Arrival happens at once, in call order. */
  async waitAsync(): Promise<boolean> {
    const generation = native.barrierArrive(bufferOf(this, 'waitAsync'))
    if (generation < 0) return true
    if (kernelWaits) {
      while (!native.barrierPassed(bufferOf(this, 'waitAsync'), generation)) {
        await parked(native.barrierParkAsync(bufferOf(this, 'waitAsync'), generation), this)
      }
    } else {
      await pollUntil(() => native.barrierPassed(bufferOf(this, 'waitAsync'), generation), Infinity)
    }
    return false
  }

  /** `{"$sharedobject": handle}`: `revive` on the other side gives the barrier back. */
  toJSON(): { $sharedobject: string } {
    return { $sharedobject: liveMeta(this, 'toJSON').handle }
  }
}

/** Whether a segment kind is one of these objects rather than a vector. */
export const isSyncKind = (kind: string): boolean => kind === 'mutex' || kind === 'barrier'

/** The mutex or barrier over an opened segment; a copy-on-write view of one is refused. */
export function syncOf(meta: Meta): SharedMutex | SharedBarrier {
  const kind = meta.kind as string
  if (meta.copyOnWrite) {
    close({ [SEGMENT_BUFFER]: meta.buffer })
    throw coded(codes.COPY_ON_WRITE, `open: a ${kind} works only through a shared mapping; open it without copyOnWrite`)
  }
  try {
    return kind === 'mutex' ? new SharedMutex(meta) : new SharedBarrier(meta)
  } catch (e) {
    close({ [SEGMENT_BUFFER]: meta.buffer })
    throw e
  }
}
