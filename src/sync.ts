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
export { wait, notify, waitAsync, type WaitResult, type WaitableVector } from './sync/words'
export { mutex, MutexGuard, SharedMutex, type MutexOptions } from './sync/mutex'
export { barrier, SharedBarrier, type BarrierOptions } from './sync/barrier'
export { condition, SharedCondition, type ConditionOptions } from './sync/condition'
export { semaphore, SharedSemaphore, type SemaphoreOptions } from './sync/semaphore'
export { channel, provideOpener, SharedChannel, type ChannelOptions, type Message } from './sync/channel'

import { codes, coded } from './errors'
import { closeMeta, type Meta } from './views'
import { SharedMutex } from './sync/mutex'
import { SharedBarrier } from './sync/barrier'
import { SharedCondition } from './sync/condition'
import { SharedSemaphore } from './sync/semaphore'
import { SharedChannel } from './sync/channel'

type SyncObject = SharedMutex | SharedBarrier | SharedCondition | SharedSemaphore | SharedChannel<unknown>

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
