/** Package options, their defaults, and the options of each call. */
import { codes, coded } from './errors'
import { CTORS, isKind, type Kind } from './kinds'


/** Package options; every one can be overridden per call. */
export interface Options {
  /**
   * Map segments privately: a process that writes gets its own copy of the pages it touches.
   * Default `false`: writes are seen by every process at once (R's default is `TRUE`).
   */
  copyOnWrite: boolean
  /** Vectors shorter than this are left unshared by `share`. Default 0 (R: 3). */
  minLength: number
  /** Throw when a value cannot be shared, instead of leaving it as it is. Default `false`. */
  mustWork: boolean
  /** Allocate every page at creation, so a full `/dev/shm` is an error then. Default `true`. */
  reserve: boolean
  /** Keep segments after their owner ends, until `free`. Default `false`. */
  persist: boolean
  /** Store each unique string once, with a code per element (R SharedObject's scheme). Default `false`. */
  dictionary: boolean
  /**
   * Make segments named files in `/dev/shm` even without a `name`. Default `false`: on Linux an
   * unnamed segment is a memfd that others open through `/proc/<owner pid>/fd`, which nothing can
   * leak; set this when receivers cannot see the owner's `/proc` (another pid namespace or
   * container, `hidepid`). Named segments are removed by their owner's exit, by SIGINT, SIGTERM
   * and SIGHUP (see `signals`), or by `sweep()` after a crash.
   */
  named: boolean
  /**
   * On SIGINT, SIGTERM and SIGHUP, remove the names of the segments this process owns before it
   * dies of the signal (other listeners keep working, as `signal-exit` arranges). Default `true`.
   */
  signals: boolean
  /**
   * Warn once (`process.emitWarning`, code `SHAREDOBJECT_HANDOUTS`) when segments this process
   * handed out and no longer references pile up past `warnHandoutSegments` or
   * `warnHandoutBytes`: they stay until some process frees them. Default `true`.
   */
  warnHandouts: boolean
  /** Handed-out, unreferenced segments that trigger the warning. Default 1000. */
  warnHandoutSegments: number
  /** Bytes of handed-out, unreferenced segments that trigger the warning. Default 1 GiB. */
  warnHandoutBytes: number
  /**
   * The most segments one `open` or `revive` may reach through a handle and the manifests it
   * names (a segment named twice counts twice); past it the call throws `ERR_SHM_NO_SPACE` before
   * opening more. Default 100000, more than any real container holds.
   */
  maxSegments: number
  /**
   * The most bytes of segments one `open` or `revive` may map (each segment counted once); past
   * it the call throws `ERR_SHM_NO_SPACE` before opening more. Default `Infinity`: bounded only by
   * this process's limits (memory cgroup, `RLIMIT_AS`, RAM), which every mapping is checked against.
   */
  maxBytes: number
}

/** Options of `share` and `alloc`. */
export interface ShareOptions extends Partial<Options> {
  /** `share` only: the kind of vector to make of an array, instead of inferring it. */
  kind?: Kind
  /** A user-chosen id for one vector: 1 to 25 characters of `A-Z a-z 0-9 . _ -`. Default: 80 random bits. */
  name?: string
  /** JSON-serialisable attributes stored with one vector (`dim`, names, units, ...). */
  attributes?: unknown
  /**
   * Hand the result out now for `n` opens (a whole number >= 1): once `n` other processes have
   * opened it (they count in the segment itself), nobody can open it any more and the owner lets
   * go of what it holds for it (descriptor, name), with no `free` and no garbage collection
   * needed; vectors over it keep working. `opens: 1` is the per-request idiom: share, send,
   * forget. For a container, every element (and the container's
   * handle, when taken) is handed out so.
   */
  opens?: number
}

/** Options of `handleOf`. */
export interface HandleOptions {
  /**
   * As `share`'s `opens`: the segment is released once `n` more opens by other processes have
   * happened. Only the owner's hand-outs are counted so; elsewhere `opens` changes nothing.
   */
  opens?: number
}

/** Options of `open` and `revive`. */
export interface OpenOptions {
  /** Override the sharer's copy-on-write choice for this process. */
  copyOnWrite?: boolean
  /**
   * `open` only: the kind of vector expected. A segment (or part) of another kind, or a container,
   * is refused with `ERR_SHM_WRONG_KIND` before anything is mapped, and TypeScript types the result
   * as that kind's class.
   */
  kind?: Kind
  /**
   * When this process maps the vector's pages (Linux; elsewhere pages are mapped at first touch
   * whatever is asked):
   * - `'background'`: `open` returns at once and a thread of the package maps the pages, front
   *   first in 2 MiB chunks, ahead of a reader's first pass; it stops when the vector is closed
   *   or collected. Such threads number one per core but one (1 to 4). Where a core is free, a
   *   first full read then runs at about the speed of a warm one.
   * - `true`: every page now, so that a first pass takes no page faults; `open` then takes about
   *   as long as those faults would have.
   * - `false` (the default): at first touch.
   *
   * Both ways read-fault the pages through the kernel (never a signal, and a copy-on-write
   * mapping is not copied). `'background'` is not the default because a receiver that reads a
   * few elements of a big vector would pay a thread and the page tables of pages it never reads;
   * on a machine whose cores are all busy it saves little. Populating (either way) allocates the
   * pages of a segment made with `reserve: false`.
   */
  populate?: boolean | 'background'
  /**
   * Read an ordinary private copy instead of mapping: for runtimes that forbid external buffers
   * (Electron), where mapping throws `ERR_SHM_EXTERNAL_BUFFERS`. The result is what `unshare`
   * would give.
   */
  copy?: boolean
  /**
   * Free the segment as it is opened (for a container, every element too): for a receiver that
   * takes sole ownership. Nobody can open it any more, this process's view keeps working, and the
   * owner lets go of what it holds for it promptly.
   */
  free?: boolean
  /**
   * `false` accepts a segment its creator made with `reserve: false` whose pages are not all
   * allocated yet. By default such a segment is refused with `ERR_SHM_BAD_HEADER`: reading a page
   * that `/dev/shm` has no room for kills the reader with SIGBUS, so the reader must ask for that
   * risk. A segment with holes that was made reserved (holes punched, or the file cut and regrown
   * by another writer) is refused whatever this says.
   */
  reserve?: boolean
  /** This call's `maxSegments` (see `setOptions`). */
  maxSegments?: number
  /** This call's `maxBytes` (see `setOptions`). */
  maxBytes?: number
}

const DEFAULTS: Options = {
  copyOnWrite: false,
  minLength: 0,
  mustWork: false,
  reserve: true,
  persist: false,
  dictionary: false,
  named: false,
  signals: true,
  warnHandouts: true,
  warnHandoutSegments: 1000,
  warnHandoutBytes: 2 ** 30,
  maxSegments: 100_000,
  maxBytes: Number.POSITIVE_INFINITY,
}

/** Checks an `opens` count: a whole number >= 1. */
export function checkOpens(n: unknown, fn: string): number | undefined {
  if (n === undefined) return undefined
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1) {
    throw coded(codes.OUT_OF_RANGE, `${fn}: opens must be a whole number >= 1, got ${String(n)}`, RangeError)
  }
  return n
}
const options: Options = { ...DEFAULTS }

function checkOption(key: string, value: unknown): void {
  if (!Object.prototype.hasOwnProperty.call(DEFAULTS, key)) {
    throw coded(codes.INVALID_ARG_VALUE, `unknown option ${JSON.stringify(key)}; options are ${Object.keys(DEFAULTS).join(', ')}`, TypeError)
  }
  if (key === 'maxSegments' || key === 'maxBytes') {
    checkLimit(key, value)
  } else if (key === 'minLength' || key === 'warnHandoutSegments' || key === 'warnHandoutBytes') {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
      throw coded(codes.OUT_OF_RANGE, `${key} must be a whole number >= 0, got ${String(value)}`, RangeError)
    }
  } else if (typeof value !== 'boolean') {
    throw coded(codes.INVALID_ARG_TYPE, `option ${key} must be a boolean, got ${typeof value}`, TypeError)
  }
}

/** Checks a budget option: a whole number >= 1, or `Infinity`. */
export function checkLimit(key: string, value: unknown): void {
  if (typeof value !== 'number' || !(Number.isSafeInteger(value) || value === Number.POSITIVE_INFINITY) || value < 1) {
    throw coded(codes.OUT_OF_RANGE, `${key} must be a whole number >= 1 (or Infinity), got ${String(value)}`, RangeError)
  }
}

/** Sets package options for this process; returns their previous values. */
export function setOptions(o: Partial<Options>): Partial<Options> {
  if (o === null || typeof o !== 'object') throw coded(codes.INVALID_ARG_TYPE, 'setOptions takes an object', TypeError)
  for (const [k, v] of Object.entries(o)) checkOption(k, v)
  const old: Partial<Options> = {}
  for (const [k, v] of Object.entries(o)) {
    ;(old as Record<string, unknown>)[k] = (options as unknown as Record<string, unknown>)[k]
    ;(options as unknown as Record<string, unknown>)[k] = v
  }
  return old
}

/** The package options in force in this process. */
export function getOptions(): Options {
  return { ...options }
}

export type Resolved = Options & ShareOptions

export function resolve(o: ShareOptions | undefined): Resolved {
  if (o === undefined) return { ...options }
  if (o === null || typeof o !== 'object') throw coded(codes.INVALID_ARG_TYPE, 'options must be an object', TypeError)
  for (const [k, v] of Object.entries(o)) {
    if (k === 'name' || k === 'attributes' || k === 'kind' || k === 'opens' || v === undefined) continue
    checkOption(k, v)
  }
  if (o.name !== undefined && typeof o.name !== 'string') {
    throw coded(codes.NAME, `name must be a string, got ${typeof o.name}`, TypeError)
  }
  checkOpens(o.opens, 'share')
  if (o.kind !== undefined && !isKind(o.kind)) {
    throw coded(codes.INVALID_ARG_VALUE, `unknown kind ${JSON.stringify(o.kind)}; kinds are ${[...Object.keys(CTORS), 'logical', 'string'].join(', ')}`, TypeError)
  }
  return { ...options, ...o }
}
