/** Handles, and opening what other processes shared. */
import { constants as bufferConstants } from 'node:buffer'

import { native, type CopyInfo } from './native'
import { Budget } from './budget'
import { codes, coded } from './errors'
import { CTORS, isKind, isNumericKind, type Kind, type NumericKind, type SharedVector, type Unshared, type VectorOf } from './kinds'
import { checkOpens, getOptions, type HandleOptions, type OpenOptions } from './options'
import { containerOpens, touch } from './handouts'
import { createOptions } from './create'
import { isShared } from './inspect'
import { SharedLogicalVector, SharedStringVector, layoutFromAux } from './vectors'
import { tableFromBytes } from './arrow'
import { isSyncKind, provideOpener, syncOf } from './sync'
import { MAX_DEPTH, cachedByKey, handOut, isContainer, isPlainObject, leaves, liveMeta, liveMetaOfBuffer, manifests, metaOf, recorded, remember, replacer, viewHandle, withJSON, type Meta } from './views'
import { vectorOf } from './values'
import { markerHandle } from './marker'
import type { Message, Opened } from './types'

function handleText(handle: unknown, fn: string): string {
  if (handle !== null && typeof handle === 'object' && typeof (handle as { $sharedobject?: unknown }).$sharedobject === 'string') {
    return (handle as { $sharedobject: string }).$sharedobject
  }
  if (typeof handle !== 'string') {
    throw coded(codes.INVALID_HANDLE, `${fn}: a handle is a string from handleOf(), got ${handle === null ? 'null' : typeof handle}`, TypeError)
  }
  if (handle.length > 200) throw coded(codes.INVALID_HANDLE, `${fn}: not a sharedobject handle (${handle.length} characters)`, TypeError)
  return handle
}

/**
 * A handle's part: `base#kind:byteOffset:length` names a TypedArray (`dataview`: a DataView, its
 * length in bytes) over part of a vector's data.
 */
interface Part {
  kind: NumericKind | 'dataview'
  byteOffset: number
  length: number
}

function splitHandle(h: string): { base: string; part?: Part } {
  const at = h.indexOf('#')
  if (at < 0) return { base: h }
  const m = /^([a-z0-9]+):(\d{1,16}):(\d{1,16})$/.exec(h.slice(at + 1))
  if (!m || !(isNumericKind(m[1]) || m[1] === 'dataview')) {
    throw coded(codes.INVALID_HANDLE, `not a sharedobject handle: ${JSON.stringify(h.slice(0, 60))}`, TypeError)
  }
  return { base: h.slice(0, at), part: { kind: m[1], byteOffset: Number(m[2]), length: Number(m[3]) } }
}

/** The view a part names over `buffer`, checked against the data's `byteLength`. */
function partView(buffer: ArrayBufferLike, byteLength: number, part: Part): ArrayBufferView {
  const size = part.kind === 'dataview' ? 1 : CTORS[part.kind].BYTES_PER_ELEMENT
  if (part.byteOffset % size !== 0 || part.byteOffset + part.length * size > byteLength) {
    throw coded(codes.INVALID_HANDLE, `open: the handle names a part outside the vector (${part.kind} at byte ${part.byteOffset}, ${part.length} elements)`, TypeError)
  }
  if (part.kind === 'dataview') return new DataView(buffer, part.byteOffset, part.length)
  return new CTORS[part.kind](buffer as ArrayBuffer, part.byteOffset, part.length)
}

/** Refuses a result that is not of the kind the caller asked for. */
function checkKind(want: Kind | undefined, got: string, handle: string): void {
  if (want !== undefined && want !== got) {
    throw coded(codes.WRONG_KIND, `open: ${JSON.stringify(handle.slice(0, 80))} holds ${got === 'list' ? 'a container' : got === 'dataview' ? 'a DataView' : `a ${got} vector`}, not ${want}`, TypeError)
  }
}

/** Parses a manifest's attributes: a container's shape with its leaves' handles. */
function manifestShape(attributes: string): unknown {
  try {
    return (JSON.parse(attributes) as { $container: unknown }).$container
  } catch {
    throw coded(codes.BAD_HEADER, 'open: a container manifest whose attributes are not valid JSON')
  }
}

/** What opening one handle gave: a value, or a manifest's shape still to walk. */
type OpenResult = { value: unknown; key: string } | { shape: unknown; key: string; manifestLength: number }

/**
 * Opens one handle after charging it to the call's budget; a manifest comes back as its shape.
 * With `free`, a receiver that takes sole ownership frees what it opened (a container's
 * manifest and, as the walk reaches them, every element).
 */
function openOne(h: string, opts: OpenOptions | undefined, budget: Budget, top: boolean): OpenResult {
  const opened = openOneHere(h, opts, budget, top)
  if (opts?.free) native.freeHandle(splitHandle(h).base)
  return opened
}

function openOneHere(h: string, opts: OpenOptions | undefined, budget: Budget, top: boolean): OpenResult {
  const { base, part } = splitHandle(h)
  if (opts === undefined && part === undefined) {
    const plain = openPlain(base, budget)
    if (plain !== undefined) return plain
  }
  const cow = opts?.copyOnWrite
  // The header alone, read without mapping, tells what the handle would cost. The segment stays
  // open for the native open below, which takes it; every other way out drops it.
  const found = native.locate(base, cow, !opts?.copy)
  try {
    return openFound(found, h, base, part, opts, budget, top)
  } finally {
    native.forgetLocated()
  }
}

/**
 * A whole handle opened with no options, in one native call; undefined where that call leaves
 * it to the long way (over the budget or the engine's buffer size, which that way reports, or a
 * buffer of this thread's over a mapping closed meanwhile).
 */
function openPlain(base: string, budget: Budget): OpenResult | undefined {
  const meta = plainMeta(base, budget.bytesLeft)
  if (meta === undefined) return undefined
  budget.charge(meta.key, meta.byteLength)
  return resultOf(meta, undefined, budget)
}

/** This thread's view of a whole handle from `native.openPlain`; undefined where it declined. */
function plainMeta(base: string, bytesLeft: number): Meta | undefined {
  const r = native.openPlain(base, bytesLeft, bufferConstants.MAX_LENGTH)
  if (r === null) return undefined
  return 'segment' in r ? recorded(r) : liveMetaOfBuffer(r)
}

/**
 * `open(h)` of a whole handle with no options, as a channel's receiver and most callers open:
 * the native open and the value, with none of the long way's machinery (its budget holds one
 * segment within `maxBytes`, which the native call checks). A process opens a handle once in a
 * while and finds none of that code warm: the long way cost a 400 MB hand-over to a waiting
 * process about a fifth of its time. Undefined where the long way must go on: a container's
 * manifest (mapped now, and found again there), a segment the native call declines.
 */
function openQuick(h: string): SharedVector | object | undefined {
  const o = getOptions()
  if (o.maxSegments < 1) return undefined
  const meta = plainMeta(h, o.maxBytes)
  return meta === undefined || meta.kind === 'list' ? undefined : valueOf(meta, undefined)
}

function openFound(
  found: ReturnType<typeof native.locate>,
  h: string,
  base: string,
  part: ReturnType<typeof splitHandle>['part'],
  opts: OpenOptions | undefined,
  budget: Budget,
  top: boolean,
): OpenResult {
  const cow = opts?.copyOnWrite
  if (top) checkKind(opts?.kind, part?.kind ?? found.kind, base)
  budget.charge(found.key, found.byteLength)
  if (found.byteLength > bufferConstants.MAX_LENGTH) {
    throw coded(codes.OUT_OF_RANGE, `open: the segment holds ${found.byteLength} bytes, more than this Node.js can view as one buffer (${bufferConstants.MAX_LENGTH})`, RangeError)
  }
  if (opts?.copy) {
    const c = native.readCopy(base, bufferConstants.MAX_LENGTH)
    if (top) checkKind(opts.kind, part?.kind ?? c.kind, h)
    if (c.kind === 'list') {
      budget.chargeManifest(c.attributes.length)
      return { shape: manifestShape(c.attributes), key: found.key, manifestLength: c.attributes.length }
    }
    return { value: copyOf(c, part, h), key: found.key }
  }
  const cached = cachedByKey(found.key)
  const populate = opts?.populate ?? false
  if (cached && populate !== false) native.populate(cached.key, populate === 'background')
  const meta = cached ?? remember(native.open(base, cow, populate === true, opts?.reserve === false, populate === 'background'))
  if (top) checkKind(opts?.kind, part?.kind ?? meta.kind, meta.handle)
  return resultOf(meta, part, budget)
}

/** What an open gave, as the walk takes it: a value, or a manifest's shape still to walk. */
function resultOf(meta: Meta, part: Part | undefined, budget: Budget): OpenResult {
  if (meta.kind === 'list') {
    budget.chargeManifest(meta.attributes.length)
    return { shape: manifestShape(meta.attributes), key: meta.key, manifestLength: meta.attributes.length }
  }
  return { value: valueOf(meta, part), key: meta.key }
}

/** The value a mapping that is no manifest gives: a vector, a table, a synchronisation object, or a part of a vector. */
function valueOf(meta: Meta, part: Part | undefined): SharedVector | object {
  if (isSyncKind(meta.kind)) return syncOf(meta)
  if (!isKind(meta.kind) && meta.kind !== 'arrow') {
    throw coded(codes.BAD_HEADER, `open: the segment holds ${meta.kind} data, not a vector; use mapSharedMemory for developer segments`)
  }
  return part ? withJSON(partView(meta.buffer, meta.byteLength, part)) : vectorOf(meta)
}

/** The manifests a value was reached through, innermost first: a manifest inside itself is refused. */
interface Chain {
  key: string
  up: Chain | undefined
}

/** One value still to walk, and where its result goes. */
interface Task {
  value: unknown
  depth: number
  chain: Chain | undefined
  put: (v: unknown) => void
}

function setKey(out: Record<string, unknown>, k: string, v: unknown): void {
  // A key "__proto__" from JSON is an ordinary key here, never the object's prototype.
  Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true })
}

/**
 * Walks `root`, opening every `{"$sharedobject": handle}` in it and every manifest those name,
 * with an explicit stack (no recursion, so no nesting can overflow the JavaScript stack), every
 * handle charged to `budget` before it is opened, and the nesting, manifests included, bounded by
 * `MAX_DEPTH`.
 */
function walk(root: unknown, opts: OpenOptions | undefined, budget: Budget, fn: string, topHandle?: string, topOpened?: OpenResult): unknown {
  let result: unknown
  const stack: Task[] = []
  // A handle named again in one call is charged again but opened once.
  const done = new Map<string, OpenResult>()
  const open1 = (h: string, t: Task, top: boolean, opened?: OpenResult): void => {
    let got = done.get(h)
    if (opened) {
      // Opened (and charged) by the caller already.
      got = opened
      done.set(h, got)
    } else if (got) {
      budget.again(got)
    } else {
      got = openOne(top ? h : handleText(h, fn), opts, budget, top)
      done.set(h, got)
    }
    if ('value' in got) return t.put(got.value)
    for (let c = t.chain; c; c = c.up) {
      if (c.key === got.key) throw coded(codes.BAD_HEADER, `${fn}: a container manifest that contains itself`)
    }
    stack.push({ value: got.shape, depth: t.depth + 1, chain: { key: got.key, up: t.chain }, put: t.put })
  }
  const root1: Task = { value: root, depth: 0, chain: undefined, put: (v) => (result = v) }
  if (topHandle !== undefined) open1(topHandle, root1, true, topOpened)
  else stack.push(root1)
  for (let t = stack.pop(); t; t = stack.pop()) {
    const v = t.value
    if (v === null || typeof v !== 'object') {
      t.put(v)
      continue
    }
    if (t.depth > MAX_DEPTH) {
      if (t.chain) throw coded(codes.BAD_HEADER, `${fn}: container manifests nest deeper than ${MAX_DEPTH} levels; no container shared by this package does`)
      throw coded(codes.OUT_OF_RANGE, `${fn}: the message nests deeper than ${MAX_DEPTH} levels`, RangeError)
    }
    const marked = markerHandle(v)
    if (marked !== undefined) {
      open1(marked, t, false)
      continue
    }
    if (metaOf(v) || (!Array.isArray(v) && !isPlainObject(v))) {
      t.put(v)
      continue
    }
    if (!Array.isArray(v) && isHandleObject(v)) {
      open1(v.$sharedobject, t, false)
      continue
    }
    const depth = t.depth + 1
    if (Array.isArray(v)) {
      const out: unknown[] = new Array(v.length)
      t.put(out)
      for (let i = v.length - 1; i >= 0; i--) stack.push({ value: v[i], depth, chain: t.chain, put: (x) => (out[i] = x) })
    } else {
      const out: Record<string, unknown> = {}
      t.put(out)
      const entries = Object.entries(v)
      for (const [k] of entries) setKey(out, k, undefined)
      for (let i = entries.length - 1; i >= 0; i--) {
        const [k, x] = entries[i]
        stack.push({ value: x, depth, chain: t.chain, put: (y) => (out[k] = y) })
      }
    }
  }
  return result
}

/** A handle as `handleOf` gives it, or as a shared vector serialises to JSON. */
export type Handle = string | { $sharedobject: string }

/**
 * Maps a vector (or a container) shared by any process, from its handle or its JSON form. With
 * `kind`, the result is that kind of vector (and TypeScript types it so), or a
 * `ERR_SHM_WRONG_KIND` error; with `copy`, an ordinary private copy; with `free`, the segment
 * (for a container, every element too) is freed as it is opened, for a receiver that takes sole
 * ownership: nobody can open it again, the result keeps working, and the owner lets go of it
 * promptly. Without `kind` it is an {@link Opened}: narrow it with `instanceof`,
 * `ArrayBuffer.isView` or `Array.isArray`.
 */
export function open<K extends Kind>(handle: Handle, opts: OpenOptions & { kind: K; copy: true }): Unshared<VectorOf<K>>
export function open<K extends Kind>(handle: Handle, opts: OpenOptions & { kind: K; copy?: false }): VectorOf<K>
export function open(handle: Handle, opts?: OpenOptions): Opened
export function open(handle: Handle, opts?: OpenOptions): SharedVector | object {
  touch()
  if (opts === undefined && typeof handle === 'string' && handle.length <= 200 && handle.indexOf('#') < 0) {
    const v = openQuick(handle)
    if (v !== undefined) return v
  }
  const h = handleText(handle, 'open')
  if (opts !== undefined && (opts === null || typeof opts !== 'object')) throw coded(codes.INVALID_ARG_TYPE, 'open: options must be an object', TypeError)
  const cow = opts?.copyOnWrite
  if (cow !== undefined && typeof cow !== 'boolean') {
    throw coded(codes.INVALID_ARG_TYPE, 'open: copyOnWrite must be a boolean', TypeError)
  }
  const populate = opts?.populate
  if (populate !== undefined && typeof populate !== 'boolean' && populate !== 'background') {
    throw coded(codes.INVALID_ARG_TYPE, "open: populate must be a boolean or 'background'", TypeError)
  }
  if (opts?.reserve !== undefined && typeof opts.reserve !== 'boolean') {
    throw coded(codes.INVALID_ARG_TYPE, 'open: reserve must be a boolean', TypeError)
  }
  if (opts?.kind !== undefined && !isKind(opts.kind)) {
    throw coded(codes.INVALID_ARG_VALUE, `open: unknown kind ${JSON.stringify(opts.kind)}; kinds are ${[...Object.keys(CTORS), 'logical', 'string'].join(', ')}`, TypeError)
  }
  const free = opts?.free
  if (free !== undefined && typeof free !== 'boolean') {
    throw coded(codes.INVALID_ARG_TYPE, 'open: free must be a boolean', TypeError)
  }
  const budget = new Budget('open', opts)
  // A vector (not a container's manifest) needs none of the walk's bookkeeping.
  const first = openOne(h, opts, budget, true)
  if ('value' in first) return first.value as SharedVector | object
  return walk(undefined, opts, budget, 'open', h, first) as SharedVector | object
}

// A channel hands what it carried by handle to this verb (the kinds below it never import it).
provideOpener((h) => open(h))

/** A private copy of a vector read by `readCopy`. */
function copyOf(c: CopyInfo, part: Part | undefined, h: string): unknown {
  if (c.kind === 'arrow') return tableFromBytes(c.data, c.length, c.attributes)
  if (!isKind(c.kind)) {
    throw coded(codes.BAD_HEADER, `open: the segment holds ${c.kind} data, not a vector; use mapSharedMemory for developer segments (${JSON.stringify(h.slice(0, 60))})`)
  }
  // An aligned buffer of our own, so that every element type can view it.
  const ab = new Uint8Array(c.data).buffer
  if (c.kind === 'logical') return new SharedLogicalVector(new Int8Array(ab)).toArray()
  if (c.kind === 'string') return new SharedStringVector(ab, c.length, layoutFromAux(c.aux)).toArray()
  if (part) return partView(ab, c.data.length, part)
  return new CTORS[c.kind](ab, 0, c.length)
}

/**
 * The short ASCII handle of a shared vector (or of a TypedArray over part of one), to send over
 * any channel. For a container, the handle of a small segment that records its shape and its
 * leaves' handles. Taking a handle keeps the segment openable for as long as its owner lives
 * or until some process frees it, whatever garbage collection does. With `{ opens: n }`, the
 * owner instead releases it once `n` more opens by other processes have happened (for a
 * container: its handle and every element); vectors over it keep working.
 */
export function handleOf(value: unknown, opts?: HandleOptions): string {
  touch()
  if (opts !== undefined && (opts === null || typeof opts !== 'object')) throw coded(codes.INVALID_ARG_TYPE, 'handleOf: options must be an object', TypeError)
  const opens = checkOpens(opts?.opens, 'handleOf')
  if (isContainer(value)) {
    if (opens !== undefined) {
      leaves(value, (leaf) => {
        const m = metaOf(leaf)
        if (m && !m.closed) handOut(m, opens)
      }, 'handleOf')
    }
    const known = manifests.get(value)
    if (known && !known.closed) return handOut(known, opens)
    if (!isShared(value)) throw coded(codes.NOT_SHARED, 'handleOf: the container holds no shared vector', TypeError)
    // JSON.stringify of the container takes (and hands out) every leaf's handle.
    const shape = JSON.stringify({ $container: value }, replacer)
    const o = { ...getOptions(), attributes: undefined, name: undefined, persist: false }
    const meta = remember(native.create({ ...createOptions('list', 0, o, { byteLength: 0 }), attributes: shape }, undefined))
    manifests.set(value, meta)
    const n = opens ?? containerOpens.get(value)
    containerOpens.delete(value)
    return handOut(meta, n)
  }
  const meta = liveMeta(value, 'handleOf')
  if (opens !== undefined) handOut(meta, opens)
  if (ArrayBuffer.isView(value)) return viewHandle(value, meta)
  return handOut(meta)
}

function isHandleObject(v: object): v is { $sharedobject: string } {
  const keys = Object.keys(v)
  return keys.length === 1 && keys[0] === '$sharedobject' && typeof (v as { $sharedobject: unknown }).$sharedobject === 'string'
}

/**
 * Walks a received message and opens every `{"$sharedobject": handle}` in it (and every shared
 * vector that crossed a `serialization: 'advanced'` channel as its handle after `install()`).
 * Arrays and plain objects are rebuilt; everything else is returned as it is. Generic over the
 * shape: `revive<T>(message)` checks that the message is a {@link Message} of `T` (a message of
 * type `any`, as `process.on('message')` gives, is accepted) and returns a `T`.
 */
export function revive<T = unknown>(message: Message<T>, opts?: Omit<OpenOptions, 'kind'>): T {
  // A message holds vectors of any kind: `kind` would refuse all but one.
  if (opts !== null && typeof opts === 'object' && 'kind' in opts) opts = { ...opts, kind: undefined } as OpenOptions
  return walk(message, opts, new Budget('revive', opts), 'revive') as T
}
