/** The condition variable, used with a shared mutex. */

import { native } from '../native'
import { codes, coded } from '../errors'
import { SEGMENT_BUFFER, handOut, liveMeta, wordsOf, type Meta, type ViewBuffer } from '../views'
import { timeoutOf, isOpen } from './words'
import { syncOptions, make, bufferOf, carry, sleepOn } from './base'
import { HOLDING, MutexGuard } from './mutex'

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
