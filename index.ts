/**
 * sharedobject: share big vectors between the processes of one machine through OS shared
 * memory, with no copies.
 *
 * Words: a *segment* is the OS shared-memory object; its *id* is its name; a *handle* is the
 * short string that travels between processes; a *view* is a JavaScript object over a mapping;
 * the *owner* is the process that created the segment.
 *
 * @packageDocumentation
 */
export { share, alloc } from './src/share'
export { open, revive, handleOf, type Handle } from './src/open'
export type { Opened, OpenedContainer, OpenedObject, OpenedArray, Plain, Message, HandleObject, ArrowTable } from './src/types'
export { install, reviver } from './src/advanced'
export { replacer } from './src/views'
export { unshare, isShared, properties, close, free, list, sweep, type Properties, type PropertiesOf, type SegmentInfo } from './src/inspect'
export { setOptions, getOptions, type Options, type ShareOptions, type OpenOptions, type HandleOptions } from './src/options'
export type { Stats, StateStats } from './src/handouts'
export { SharedLogicalVector, SharedStringVector, NA_LOGICAL, factor, type Factor } from './src/vectors'
import { toArrow as arrowOf } from './src/arrow'
import type { ArrowVector, SharedVector } from './src/kinds'
/**
 * An apache-arrow Vector over the same memory as a shared vector (a logical vector is the one
 * copy: Arrow packs booleans in bits). apache-arrow is loaded on first use.
 */
export const toArrow: (vector: SharedVector) => ArrowVector = arrowOf
export { codes, type CodedError, type ErrorCode } from './src/errors'
export {
  wait,
  notify,
  waitAsync,
  mutex,
  barrier,
  SharedMutex,
  SharedBarrier,
  MutexGuard,
  condition,
  semaphore,
  channel,
  SharedCondition,
  SharedSemaphore,
  SharedChannel,
  type ConditionOptions,
  type SemaphoreOptions,
  type ChannelOptions,
  type Message as ChannelMessage,
  type WaitResult,
  type WaitableVector,
  type MutexOptions,
  type BarrierOptions,
} from './src/sync'
export type { Kind, NumericKind, NumericVector, SharedVector, Shared, Unshared, VectorOf, VectorOfKind, ArrowVector } from './src/kinds'
export {
  getLastIndex,
  allocateSharedMemory,
  mapSharedMemory,
  unmapSharedMemory,
  freeSharedMemory,
  hasSharedMemory,
  getSharedMemorySize,
  initialSharedObjectPackageData,
  releaseSharedObjectPackageData,
  pkgconfig,
  stats,
} from './src/r'
