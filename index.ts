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
export { open, revive, handleOf } from './src/open'
export { unshare, isShared, properties, close, free, list, sweep, type Properties, type SegmentInfo } from './src/inspect'
export { setOptions, getOptions, type Options, type ShareOptions, type OpenOptions } from './src/options'
export { SharedLogicalVector, SharedStringVector, NA_LOGICAL } from './src/vectors'
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
  type WaitResult,
  type WaitableVector,
  type MutexOptions,
  type BarrierOptions,
} from './src/sync'
export type { Kind, NumericKind, NumericVector, SharedVector, Shared } from './src/kinds'
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
