/**
 * What an owner does for the segments it handed out: it looks at them from time to time (on its
 * calls into the package and on a timer that never keeps the process alive) and lets go of
 * those another process freed or that had their `opens`, and it warns once when handed-out
 * segments nobody here references pile up. The rules themselves live in the native core.
 */
import { native } from './native'
import { getOptions } from './options'

/** Segments looked at per call into the package, and per tick of the timer. */
const PER_CALL = 16
const PER_TICK = 2048
const TICK_MS = 100
/** The warning is checked every this many ticks. */
const WARN_EVERY = 10

/** For `share(container, { opens })`: the opens its handle gets when `handleOf` makes it. */
export const containerOpens = new WeakMap<object, number>()

/** Handed-out segments the core watches, as last heard (any thread's). */
let watched = 0
let timer: ReturnType<typeof setInterval> | undefined
let ticks = 0
let warned = false

function tick(): void {
  look(PER_TICK)
  if (++ticks % WARN_EVERY === 0) checkWarning()
}

function look(limit: number): void {
  const r = native.reap(limit)
  watched = r.watched
  if (watched === 0 && timer !== undefined) {
    clearInterval(timer)
    timer = undefined
  }
}

/** A segment was handed out: from now on it is watched. */
export function watching(): void {
  watched++
  if (timer === undefined) {
    timer = setInterval(tick, TICK_MS)
    // Looking at handed-out segments is never a reason for the process to stay alive.
    timer.unref?.()
  }
}

/** Called on each call into the package: a few watched segments are looked at. */
export function touch(): void {
  if (watched > 0) look(PER_CALL)
}

/** Segments and bytes in one state. */
export interface StateStats {
  segments: number
  bytes: number
}

/** What `stats()` returns: what this process holds now. */
export interface Stats {
  /** Segments this process holds now, owned or opened. */
  segments: number
  /** Bytes those segments occupy. */
  bytes: number
  /** Descriptors (Windows: handles) held to keep owned segments openable by others. */
  descriptors: number
  /** Mappings registered and alive (one per segment and mode). */
  mappings: number
  /** Mappings not yet retired or released, across threads. */
  live: number
  /** The same segments by state. */
  byState: {
    /** Owned and never handed out. */
    live: StateStats
    /** Handed out, and a vector over it is still referenced here. */
    handedOut: StateStats
    /**
     * Handed out (without `opens`) and no longer referenced here: kept openable until some
     * process frees it, or this one exits.
     */
    handedOutDropped: StateStats
    /** Handed out with `opens: n`, not all of whose opens have happened yet. */
    waitingForOpens: StateStats
    /** Opened here, owned by another process. */
    opened: StateStats
  }
}

export function stats(): Stats {
  look(PER_TICK)
  const h = native.holdings()
  const s = native.stats()
  checkWarning(h)
  return {
    segments: h.segments,
    bytes: h.bytes,
    descriptors: h.descriptors,
    mappings: s.mappings,
    live: s.live,
    byState: { live: h.live, handedOut: h.handedOut, handedOutDropped: h.dropped, waitingForOpens: h.waiting, opened: h.opened },
  }
}

/** The README section that says what to do about handed-out segments. */
const README = 'https://github.com/sharedobject/sharedobject#per-request-hand-overs'

function checkWarning(h = native.holdings()): void {
  if (warned) return
  const o = getOptions()
  if (!o.warnHandouts) return
  const segments = h.dropped.segments
  const bytes = h.dropped.bytes
  if (segments < o.warnHandoutSegments && bytes < o.warnHandoutBytes) return
  warned = true
  process.emitWarning(
    `${segments} shared segments (${(bytes / 2 ** 20).toFixed(1)} MiB) were handed out and are no longer referenced in this ` +
      'process; each stays openable (memory and, on Linux, a descriptor) until some process frees it or this one exits. ' +
      'Let the receiver free(handle) it, open(handle, { free: true }), or hand it out with { opens: n } (share, alloc, ' +
      `handleOf) so that it is released after n opens. See "Per-request hand-overs" in the README (${README}); ` +
      'setOptions({ warnHandouts: false }) turns this warning off.',
    { type: 'SharedObjectHandoutsWarning', code: 'SHAREDOBJECT_HANDOUTS' },
  )
}
