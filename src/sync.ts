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
import { createOptions, created } from './create'
import { SEGMENT_BUFFER, closeMeta, handOut, liveMeta, metaOf, onClose, wordsOf, type Meta, type ViewBuffer } from './views'

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

/** Whether this thread has not closed the object's view. */
const isOpen = (value: object): boolean => metaOf(value)?.closed === false

/**
 * A parked wait on an object or vector of this thread that settles at once if this thread
 * closes it meanwhile: rejected with `ERR_SHM_CLOSED`, never with a lock or a value of memory
 * that is gone. `wake` ends the parked thread's sleep first (the pages are still mapped then).
 */
function parkedOn<T>(value: object, fn: string, p: Promise<T>, wake: () => void): Promise<T> {
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
async function pollUntil(done: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs
  for (let nap = 0; ; nap = Math.min(MAX_POLL_MS, Math.max(1, nap * 2))) {
    if (done()) return true
    const left = deadline - performance.now()
    if (left <= 0) return false
    await (nap === 0 ? new Promise<void>((r) => setImmediate(r)) : sleep(Math.min(nap, left)))
  }
}

/** This thread as a mutex holder (its words), asked of the native side once per thread. */
interface HolderWords {
  word: bigint
  start: bigint
  pidns: bigint
  token: bigint
  threadStart: bigint
}
let me: HolderWords | undefined
const holder = (): HolderWords => (me ??= native.mutexHolder())

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

/** The kinds of segment that hold one of the objects of this module rather than a vector. */
type SyncKind = 'mutex' | 'barrier' | 'condition' | 'semaphore' | 'channel'
type SyncObject = SharedMutex | SharedBarrier | SharedCondition | SharedSemaphore | SharedChannel<unknown>

function make(kind: SyncKind, o: Resolved, init: Uint8Array, byteLength = init.length): Meta {
  return created(native.create(createOptions(kind as unknown as Kind, 1, o, { byteLength }), init))
}

/** The live buffer of one of these objects: throws `ERR_SHM_CLOSED` once it was closed here. */
function bufferOf(value: SyncObject, fn: string): Uint32Array {
  return wordsOf(liveMeta(value, fn).buffer)
}

function carry(value: SyncObject, meta: Meta): void {
  Object.defineProperty(value, SEGMENT_BUFFER, { value: meta.buffer })
}

/** `detectionMs` as the options of {@link mutex} take it. */
function detectionOf(fn: string, ms: unknown): number {
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
async function sleepOn(owner: SyncObject, words: Uint32Array, index: number, seq: number, sliceMs: number, park: (t: number) => Promise<WaitResult>): Promise<boolean> {
  if (kernelWaits) {
    const wake = (): number => native.syncNotify(words, index * 4, 4, Infinity)
    return (await parkedOn(owner, 'wait', park(sliceMs), wake)) === 'timed-out'
  }
  const meta = liveMeta(owner, 'wait')
  return !(await pollUntil(() => meta.closed || Atomics.load(words, index) !== seq, sliceMs))
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
const HOLDING = Symbol('sharedobject.holding')

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
  /** The words as 64-bit integers, for the fast path; null unless the view is a SharedArrayBuffer. */
  readonly #big: BigInt64Array | null
  readonly #words: Uint32Array

  /** @internal Use {@link mutex} or `open(handle)`. */
  constructor(meta: Meta) {
    carry(this, meta)
    this.#meta = meta
    this.#words = wordsOf(meta.buffer)
    this.#detectionMs = native.mutexState(this.#words).detectionMs
    this.#big = typeof SharedArrayBuffer === 'function' && meta.buffer instanceof SharedArrayBuffer ? new BigInt64Array(meta.buffer, 0, 7) : null
  }

  /**
   * The fast path of an uncontended lock, in JavaScript: one compare-and-swap of the holder word
   * from 0 to this thread's, then the start time and namespace that let others judge it and the
   * token that tells this thread from one of another pid namespace with the same word, as the
   * native `try_lock` writes them (all SeqCst, as Atomics are). Only over a SharedArrayBuffer:
   * Atomics on an ArrayBuffer are not guaranteed atomic towards other agents.
   */
  #fastLock(): boolean {
    const big = this.#big
    if (big === null || this.#meta.closed) return false
    const me = holder()
    if (Atomics.compareExchange(big, 0, 0n, me.word) !== 0n) return false
    if (Atomics.load(this.#words, 8) === 0) {
      // Another thread closed this process's view: zeros are here now, not the mutex.
      throw coded(codes.CLOSED, 'lock: the mutex was closed in this process')
    }
    Atomics.store(big, 2, me.start)
    Atomics.store(big, 3, me.pidns)
    Atomics.store(big, 5, me.token)
    Atomics.store(big, 6, me.threadStart)
    return true
  }

  /**
   * The fast path of an unlock by the holder: clear what the lock wrote, release the holder
   * word, and go native only to wake a counted waiter (word 2 is `waiters`). False when this
   * thread does not hold it, for the native unlock to say why.
   */
  #fastUnlock(): boolean {
    const big = this.#big
    if (big === null || this.#meta.closed) return false
    const me = holder()
    if (Atomics.load(big, 0) !== me.word || Atomics.load(big, 5) !== me.token) return false
    Atomics.store(big, 5, 0n)
    Atomics.store(big, 6, 0n)
    Atomics.store(big, 2, 0n)
    Atomics.store(big, 3, 0n)
    Atomics.store(big, 0, 0n)
    if (Atomics.load(this.#words, 2) > 0) native.mutexWake(this.#words)
    return true
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
    for (let nap = 0; ; nap = Math.min(MAX_POLL_MS, Math.max(1, nap * 2))) {
      if (this.#fastLock()) return new MutexGuard(this, false)
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
        let r: WaitResult
        try {
          r = await parkedOn(this, 'lockAsync', native.mutexParkAsync(buffer, seq, slice), () => native.syncNotify(buffer, 12, 4, Infinity))
        } finally {
          // Still counted as a waiter until here; a closed view's words are gone with it.
          if (isOpen(this)) native.mutexWaitEnd(buffer)
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
    return { $sharedobject: liveMeta(this, 'toJSON').handle }
  }
}

const SYNC_KINDS: readonly string[] = ['mutex', 'barrier', 'condition', 'semaphore', 'channel']

/** Whether a segment kind is one of these objects rather than a vector. */
export const isSyncKind = (kind: string): boolean => SYNC_KINDS.includes(kind)

/** The object over an opened segment; a copy-on-write view of one is refused. */
export function syncOf(meta: Meta): SyncObject {
  const kind = meta.kind as string
  if (meta.copyOnWrite) {
    closeMeta(meta)
    throw coded(codes.COPY_ON_WRITE, `open: a ${kind} works only through a shared mapping; open it without copyOnWrite`)
  }
  try {
    switch (kind) {
      case 'mutex':
        return new SharedMutex(meta)
      case 'barrier':
        return new SharedBarrier(meta)
      case 'condition':
        return new SharedCondition(meta)
      case 'semaphore':
        return new SharedSemaphore(meta)
      default:
        return new SharedChannel(meta)
    }
  } catch (e) {
    closeMeta(meta)
    throw e
  }
}

/** The options of {@link condition}. */
export interface ConditionOptions {
  /** A user-chosen id, as for `share`. */
  name?: string
  /** Keep the segment after its owner ends, until `free`. */
  persist?: boolean
}

/** A guard this thread holds now, for a condition variable's wait. */
function heldGuard(fn: string, guard: unknown): MutexGuard {
  if (!(guard instanceof MutexGuard)) throw coded(codes.INVALID_ARG_TYPE, `${fn}: guard must be a MutexGuard, from a shared mutex's lock()`, TypeError)
  if (!guard.held) throw coded(codes.NOT_OWNER, `${fn}: this guard has unlocked already`)
  return guard
}

/**
 * A new condition variable in a segment of its own, used with a shared mutex (any mutex: the
 * one passed to each wait) by every thread of every process that opens it. It travels like a
 * vector: `handleOf`, JSON, `revive`, `open`, containers.
 */
export function condition(opts?: ConditionOptions): SharedCondition {
  return new SharedCondition(make('condition', syncOptions('condition', opts, []), native.conditionInit()))
}

/**
 * A condition variable shared by processes and threads, as POSIX's `pthread_cond_t` and Rust's
 * `Condvar`: a waiter holding the mutex calls {@link wait}, which unlocks it, sleeps until a
 * {@link notify}, and locks it again before returning. Wake-ups may be spurious and a notify
 * with nobody waiting is lost, so wait in a loop over the state the mutex guards:
 *
 * ```js
 * let g = m.lock()
 * while (queue[0] === 0) g = c.wait(g)
 * g.unlock()
 * ```
 *
 * A dead party costs nothing: a waiter that dies is simply gone, and the mutex is robust.
 */
export class SharedCondition {
  declare readonly [SEGMENT_BUFFER]: ViewBuffer

  /** @internal Use {@link condition} or `open(handle)`. */
  constructor(meta: Meta) {
    carry(this, meta)
    native.conditionCheck(wordsOf(meta.buffer))
  }

  /**
   * Unlocks the guard's mutex, blocks this thread until a notify (or `timeoutMs` passes), and
   * locks the mutex again, whichever way the wait ended. Returns the same guard, held again, or
   * null when the timeout passed (the guard is held again then too). Like `Atomics.wait`, this
   * blocks the event loop of the thread that calls it; see {@link waitAsync}. When the relock
   * takes the mutex over from a holder that died, `guard.ownerDied` says so.
   * @throws `ERR_SHM_NOT_OWNER` if the guard does not hold its mutex.
   */
  wait(guard: MutexGuard, timeoutMs?: number): MutexGuard | null {
    const g = heldGuard('wait', guard)
    const t = timeoutOf('wait', timeoutMs)
    const r = native.conditionWait(bufferOf(this, 'wait'), bufferOf(g.mutex, 'wait'), t)
    g[HOLDING](true, r === 2)
    return r === 0 ? null : g
  }

  /**
   * As {@link wait}, without blocking the event loop: the promise settles with the guard, held
   * again (by this thread, through {@link SharedMutex.lockAsync}), or null on timeout.
   */
  async waitAsync(guard: MutexGuard, timeoutMs?: number): Promise<MutexGuard | null> {
    const g = heldGuard('waitAsync', guard)
    const t = timeoutOf('waitAsync', timeoutMs)
    const words = bufferOf(this, 'waitAsync')
    const seq = native.conditionWaitBegin(words)
    let ranOut: boolean
    try {
      g.unlock()
      ranOut = await sleepOn(this, words, 0, seq, t, (ms) => native.conditionParkAsync(words, seq, ms))
    } finally {
      if (isOpen(this)) native.conditionWaitEnd(words)
    }
    const again = await g.mutex.lockAsync()
    g[HOLDING](true, again.ownerDied)
    return ranOut ? null : g
  }

  /** Wakes one waiter; returns how many were woken (0 where waiters poll: Windows, older macOS). */
  notify(): number {
    return native.conditionNotify(bufferOf(this, 'notify'), false)
  }

  /** Wakes every waiter; returns how many were woken (0 where waiters poll). */
  notifyAll(): number {
    return native.conditionNotify(bufferOf(this, 'notifyAll'), true)
  }

  /** `{"$sharedobject": handle}`: `revive` on the other side gives the condition variable back. */
  toJSON(): { $sharedobject: string } {
    return { $sharedobject: handOut(liveMeta(this, 'toJSON')) }
  }
}

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

/** The options of {@link channel}. */
export interface ChannelOptions {
  /** How many messages it holds at once (slots in its ring): 1 to 16 777 216, default 1024. */
  capacity?: number
  /** The largest message, in bytes: 1 to 1 GiB, default 65 536. Every slot has this room. */
  maxMessageBytes?: number
  /**
   * How often a waiting party looks for parties that died mid-send or mid-receive, in
   * milliseconds (default 100).
   */
  detectionMs?: number
  /** A user-chosen id, as for `share`. */
  name?: string
  /** Keep the segment after its owner ends, until `free`. */
  persist?: boolean
}

/** What a channel carries: bytes (a `Buffer` is a `Uint8Array`), or a string sent as UTF-8. */
export type Message = Uint8Array | string

/** Opens a handle a channel carried; the verb that does it hands itself here (see open.ts). */
let opener: ((handle: string) => unknown) | undefined
/** @internal */
export function provideOpener(open: (handle: string) => unknown): void {
  opener = open
}

/** Flags of a message: its bytes, or the handle of a shared value. */
const BYTES = 0
const HANDLE = 1

function bytesOf(fn: string, msg: unknown): Uint8Array {
  if (msg instanceof Uint8Array) return msg
  if (typeof msg === 'string') return Buffer.from(msg, 'utf8')
  if (ArrayBuffer.isView(msg)) return new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength)
  throw coded(codes.INVALID_ARG_TYPE, `${fn}: a message is a Uint8Array, a Buffer or a string, got ${msg === null ? 'null' : typeof msg}`, TypeError)
}

function handleBytes(fn: string, value: unknown): Uint8Array {
  const meta = liveMeta(value, fn)
  return Buffer.from(handOut(meta), 'utf8')
}

/**
 * A new channel: a bounded queue of messages, for any number of senders and receivers in any
 * threads and processes, in one segment that travels like a vector (`handleOf`, JSON, `revive`,
 * `open`, containers). Messages are copied into the segment and out of it, once each way.
 */
export function channel<T = Uint8Array>(opts?: ChannelOptions): SharedChannel<T> {
  const o = syncOptions('channel', opts, ['capacity', 'maxMessageBytes', 'detectionMs'])
  const whole = (what: string, v: unknown, dflt: number, max: number): number => {
    const n = v ?? dflt
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > max) {
      throw coded(codes.OUT_OF_RANGE, `channel: ${what} must be a whole number from 1 to ${max}, got ${String(n)}`, RangeError)
    }
    return n
  }
  const capacity = whole('capacity', opts?.capacity, 1024, 1 << 24)
  const max = whole('maxMessageBytes', opts?.maxMessageBytes, 65536, 1 << 30)
  const init = native.channelInit(capacity, max, detectionOf('channel', opts?.detectionMs))
  return new SharedChannel<T>(make('channel', o, init.header, init.byteLength))
}

/**
 * A bounded multi-producer multi-consumer queue of messages shared by processes and threads: a
 * ring of slots in shared memory, each with a stamp that says whose turn it is, so that senders
 * and receivers claim slots with one compare-and-swap and never lock. Every message sent is
 * received exactly once, by one receiver; messages of one sender arrive in the order sent when
 * one receiver receives them.
 *
 * A party killed at any point (SIGKILL mid-send or mid-receive) never corrupts the ring: a
 * message it was writing was never sent, and one it was reading is received again by another
 * party. Waiting parties repair what a dead one left within the detection interval.
 *
 * {@link end} finishes the channel for every party: receivers get the messages already in it,
 * then `undefined` (iterators stop); later sends throw `ERR_SHM_CLOSED`.
 *
 * `T` is what {@link sendShared} sends (a shared vector, table or container): such a message
 * arrives as the value, opened in the receiver.
 */
export class SharedChannel<T = Uint8Array> {
  declare readonly [SEGMENT_BUFFER]: ViewBuffer
  readonly #capacity: number
  readonly #maxMessageBytes: number
  readonly #detectionMs: number
  readonly #meta: Meta
  readonly #words: Uint32Array

  /** @internal Use {@link channel} or `open(handle)`. */
  constructor(meta: Meta) {
    carry(this, meta)
    this.#meta = meta
    this.#words = wordsOf(meta.buffer)
    const s = native.channelState(this.#words)
    this.#capacity = s.capacity
    this.#maxMessageBytes = s.maxMessageBytes
    this.#detectionMs = s.detectionMs
  }

  /** The words of the channel, as `bufferOf` gives them, without its look-ups: a message is cheap. */
  #live(fn: string): Uint32Array {
    if (this.#meta.closed) throw coded(codes.CLOSED, `${fn}: the channel was closed in this thread`)
    return this.#words
  }

  /** How many messages it holds at once. */
  get capacity(): number {
    return this.#capacity
  }

  /** The largest message, in bytes. */
  get maxMessageBytes(): number {
    return this.#maxMessageBytes
  }

  /** Messages in it now (others may change this at any moment). */
  get length(): number {
    return native.channelState(this.#live('length')).length
  }

  /** Whether {@link end} was called, by any party. */
  get ended(): boolean {
    return native.channelState(this.#live('ended')).ended
  }

  /**
   * Sends a message, blocking this thread while the channel is full, up to `timeoutMs`: true
   * when sent, false on timeout. Blocks the event loop while it waits; see {@link sendAsync}.
   * @throws `ERR_SHM_CLOSED` once the channel was ended; `ERR_OUT_OF_RANGE` for a message larger
   * than `maxMessageBytes`.
   */
  send(message: Message, timeoutMs?: number): boolean {
    return this.#send('send', bytesOf('send', message), BYTES, timeoutMs)
  }

  /** Sends a message if there is room now: false when the channel is full. Never waits. */
  trySend(message: Message): boolean {
    return native.channelTrySend(this.#live('trySend'), bytesOf('trySend', message), BYTES)
  }

  /** As {@link send}, without blocking the event loop. */
  sendAsync(message: Message, timeoutMs?: number): Promise<boolean> {
    return this.#sendAsync('sendAsync', bytesOf('sendAsync', message), BYTES, timeoutMs)
  }

  /**
   * Sends a shared vector, table, container or synchronisation object by its handle (the
   * bytes of its data never move): the receiver gets the value itself, opened. The value must
   * stay openable until it is received (see `persist` and `free`). Blocks as {@link send}.
   */
  sendShared(value: T, timeoutMs?: number): boolean {
    return this.#send('sendShared', handleBytes('sendShared', value), HANDLE, timeoutMs)
  }

  /** As {@link sendShared}, without blocking the event loop. */
  sendSharedAsync(value: T, timeoutMs?: number): Promise<boolean> {
    return this.#sendAsync('sendSharedAsync', handleBytes('sendSharedAsync', value), HANDLE, timeoutMs)
  }

  #send(fn: string, bytes: Uint8Array, flags: number, timeoutMs: number | undefined): boolean {
    return native.channelSend(this.#live(fn), bytes, flags, timeoutOf(fn, timeoutMs))
  }

  async #sendAsync(fn: string, bytes: Uint8Array, flags: number, timeoutMs: number | undefined): Promise<boolean> {
    const deadline = performance.now() + timeoutOf(fn, timeoutMs)
    for (;;) {
      const words = this.#live(fn)
      if (native.channelTrySend(words, bytes, flags)) return true
      const seq = native.channelWaitBegin(words, false)
      let ranOut: boolean
      try {
        if (native.channelTrySend(words, bytes, flags)) return true
        const left = deadline - performance.now()
        if (left <= 0) return false
        ranOut = await sleepOn(this, words, 64, seq, Math.min(left, this.#detectionMs), (t) => native.channelParkAsync(words, false, seq, t))
      } finally {
        if (isOpen(this)) native.channelWaitEnd(words, false)
      }
      if (ranOut) native.channelRepair(this.#live(fn))
    }
  }

  /** A native answer as the caller sees it: undefined for none (0 or 1). */
  #message(r: Buffer | string | 0 | 1): Uint8Array | T | undefined {
    if (typeof r === 'number') return undefined
    if (typeof r === 'string') {
      if (!opener) throw coded(codes.INVALID_HANDLE, 'receive: a handle arrived, but open() is not loaded')
      return opener(r) as T
    }
    return r
  }

  /**
   * Receives a message, blocking this thread until one comes or `timeoutMs` passes: a
   * `Uint8Array` of the bytes sent (a message from {@link sendShared}: the value, opened), or
   * undefined on timeout and once the channel was ended and is empty. Blocks the event loop
   * while it waits; see {@link receiveAsync}.
   */
  receive(timeoutMs?: number): Uint8Array | T | undefined {
    return this.#message(native.channelReceive(this.#live('receive'), timeoutOf('receive', timeoutMs)))
  }

  /** Receives a message if there is one now; undefined when it is empty. Never waits. */
  tryReceive(): Uint8Array | T | undefined {
    return this.#message(native.channelTryReceive(this.#live('tryReceive')))
  }

  /** As {@link receive}, without blocking the event loop. */
  async receiveAsync(timeoutMs?: number): Promise<Uint8Array | T | undefined> {
    const deadline = performance.now() + timeoutOf('receiveAsync', timeoutMs)
    for (;;) {
      const words = this.#live('receiveAsync')
      let r = native.channelTryReceive(words)
      if (r !== 0) return this.#message(r)
      const seq = native.channelWaitBegin(words, true)
      let ranOut: boolean
      try {
        r = native.channelTryReceive(words)
        if (r !== 0) return this.#message(r)
        const left = deadline - performance.now()
        if (left <= 0) return undefined
        ranOut = await sleepOn(this, words, 48, seq, Math.min(left, this.#detectionMs), (t) => native.channelParkAsync(words, true, seq, t))
      } finally {
        if (isOpen(this)) native.channelWaitEnd(words, true)
      }
      if (ranOut) native.channelRepair(this.#live('receiveAsync'))
    }
  }

  /**
   * Marks the channel finished, for every party in every process: receivers get the messages
   * already in it, then undefined; sends from now on throw `ERR_SHM_CLOSED`. Idempotent.
   */
  end(): void {
    native.channelEnd(this.#live('end'))
  }

  /** `for await (const m of ch)`: every message until the channel is ended and empty. */
  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array | T, void, undefined> {
    for (;;) {
      const m = await this.receiveAsync()
      if (m === undefined) return
      yield m
    }
  }

  /** `for (const m of ch)`: as the async iterator, blocking this thread between messages. */
  *[Symbol.iterator](): Generator<Uint8Array | T, void, undefined> {
    for (;;) {
      const m = this.receive()
      if (m === undefined) return
      yield m
    }
  }

  /** `{"$sharedobject": handle}`: `revive` on the other side gives the channel back. */
  toJSON(): { $sharedobject: string } {
    return { $sharedobject: handOut(liveMeta(this, 'toJSON')) }
  }
}
