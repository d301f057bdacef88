/** The bounded multi-producer multi-consumer channel of byte messages. */

import { native } from '../native'
import { codes, coded } from '../errors'
import { SEGMENT_BUFFER, handOut, liveMeta, wordsOf, type Meta, type ViewBuffer } from '../views'
import { timeoutOf, isOpen } from './words'
import { syncOptions, make, carry, detectionOf, sleepOn } from './base'

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

/**
 * Channels whose messages are at most this big receive them through a scratch buffer of the
 * channel object and copy them out here (`slice`): making the message in the native call cost
 * several times a message's whole receive. Bigger ones are made natively, with one copy. Either
 * way a message is a plain Uint8Array over memory of its own (a Buffer costs twice as much to
 * make as a `slice`, a third of a small message's receive). A message of 64 KiB or more comes
 * in memory the process reuses once the message is released (a SharedArrayBuffer where the
 * runtime can make one over memory of the package's: see crates/napi/src/pool.rs).
 */
const SCRATCH_MAX = 64 * 1024

/**
 * The memory of big messages that nothing has used for this long is freed (see
 * `messagePoolTrim`): a process that received a burst of them does not keep it.
 */
const POOL_IDLE_MS = 2000
let trimming = false

/**
 * Looks at the memory of big messages every {@link POOL_IDLE_MS} while the pool holds or lends
 * any. Started by a message the pool lent, so never where the runtime has none (its big messages
 * are Buffers): there, Deno could not unref the timer.
 */
function trimPoolLater(): void {
  trimming = true
  const tick = (): void => {
    if (native.messagePoolTrim(POOL_IDLE_MS) > 0) later()
    else trimming = false
  }
  // Never a reason for the process to stay alive.
  const later = (): void => void setTimeout(tick, POOL_IDLE_MS).unref?.()
  later()
}

function bytesOf(fn: string, msg: unknown): Uint8Array {
  if (msg instanceof Uint8Array) return msg
  if (typeof msg === 'string') return Buffer.from(msg, 'utf8')
  if (ArrayBuffer.isView(msg)) return new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength)
  throw coded(codes.INVALID_ARG_TYPE, `${fn}: a message is a Uint8Array, a Buffer or a string, got ${msg === null ? 'null' : typeof msg}`, TypeError)
}

const utf8 = new TextEncoder()

/** The handle of a shared value as UTF-8, encoded once per mapping (a handle never changes). */
function handleBytes(fn: string, value: unknown): Uint8Array {
  const meta = liveMeta(value, fn)
  const handle = handOut(meta)
  return (meta.handleBytes ??= utf8.encode(handle))
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
  /** Where small messages are received (see `SCRATCH_MAX`), made at the first receive. */
  #scratch: Uint8Array | undefined

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

  /**
   * Takes a message, waiting up to `timeoutMs` (none: only if there is one now), in the shape of
   * `native.channelTryReceive`'s answer: a Uint8Array of its bytes, a string for a handle, 0 for
   * none yet, 1 for none ever again.
   */
  #take(words: Uint32Array, timeoutMs?: number): Uint8Array | string | 0 | 1 {
    if (this.#maxMessageBytes > SCRATCH_MAX) {
      const r = timeoutMs === undefined ? native.channelTryReceive(words) : native.channelReceive(words, timeoutMs)
      // A SharedArrayBuffer is the pool's (see SCRATCH_MAX).
      if (!trimming && typeof r === 'object' && r.buffer instanceof SharedArrayBuffer) trimPoolLater()
      return r
    }
    // A sender never receives: the scratch is made when first needed.
    const s = (this.#scratch ??= new Uint8Array(this.#maxMessageBytes))
    const n = timeoutMs === undefined ? native.channelTryReceiveInto(words, s) : native.channelReceiveInto(words, s, timeoutMs)
    // A copy of its own, one allocation and one copy (half the time of making a Buffer).
    if (n >= 0) return s.slice(0, n)
    // A handle is a short ASCII string (at most 200 characters: `open` refuses longer ones).
    if (n <= -3) return -3 - n <= 200 ? String.fromCharCode.apply(null, s.subarray(0, -3 - n) as unknown as number[]) : Buffer.from(s.buffer, 0, -3 - n).toString('utf8')
    return n === -1 ? 0 : 1
  }

  /** A native answer as the caller sees it: undefined for none (0 or 1). */
  #message(r: Uint8Array | string | 0 | 1): Uint8Array | T | undefined {
    if (typeof r === 'number') return undefined
    if (typeof r === 'string') {
      if (!opener) throw coded(codes.INVALID_HANDLE, 'receive: a handle arrived, but open() is not loaded')
      return opener(r) as T
    }
    return r
  }

  /**
   * Receives a message, blocking this thread until one comes or `timeoutMs` passes: a
   * `Uint8Array` of the bytes sent, over memory of its own (a plain one, not a `Buffer`:
   * `Buffer.from(m.buffer)` makes one without a copy; a message from {@link sendShared}: the
   * value, opened), or undefined on timeout and once the channel was ended and is empty. Blocks
   * the event loop while it waits; see {@link receiveAsync}. A message of 64 KiB or more is
   * over a `SharedArrayBuffer` of its own where the runtime can make one (Node 22.23+, 24.16+,
   * 26): its memory is reused for a later message once no thread holds it, instead of fresh
   * pages each time. Such a message is shared, not copied, by `postMessage`, and cannot be in
   * a transfer list.
   */
  receive(timeoutMs?: number): Uint8Array | T | undefined {
    return this.#message(this.#take(this.#live('receive'), timeoutOf('receive', timeoutMs)))
  }

  /** Receives a message if there is one now; undefined when it is empty. Never waits. */
  tryReceive(): Uint8Array | T | undefined {
    return this.#message(this.#take(this.#live('tryReceive')))
  }

  /** As {@link receive}, without blocking the event loop. */
  async receiveAsync(timeoutMs?: number): Promise<Uint8Array | T | undefined> {
    const deadline = performance.now() + timeoutOf('receiveAsync', timeoutMs)
    for (;;) {
      const words = this.#live('receiveAsync')
      let r = this.#take(words)
      if (r !== 0) return this.#message(r)
      const seq = native.channelWaitBegin(words, true)
      let ranOut: boolean
      try {
        r = this.#take(words)
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
