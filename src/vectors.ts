/**
 * The two vector kinds that are not plain TypedArrays: logical (R's true / false / NA) and
 * string vectors, both over the mapped pages of a segment.
 */
import * as bufferModule from 'node:buffer'
import { inspect, type InspectOptionsStylized } from 'node:util'

import { codes, coded } from './errors'
import { native } from './native'

/** The error codes, under a name that `factor`'s `codes` argument does not hide. */
const errorCodes = codes

function checkIndex(i: number, length: number): number {
  if (!Number.isInteger(i) || i < 0 || i >= length) {
    throw coded(codes.OUT_OF_RANGE, `index ${String(i)} is out of range for a vector of length ${length}`, RangeError)
  }
  return i
}

/**
 * What a vector knows of its mapping: whether this thread closed it. A detached ArrayBuffer is
 * empty by itself; a SharedArrayBuffer cannot be detached, so its vectors ask this.
 */
export interface ViewState {
  readonly closed: boolean
}

const OPEN: ViewState = { closed: false }

/** How `util.inspect` shows NA: bare, styled as `undefined` is. */
const NA_SHOWN = { [inspect.custom]: (_depth: number, o: InspectOptionsStylized): string => o.stylize('NA', 'undefined') }

/**
 * A vector as `util.inspect` (and `console.log`) shows a TypedArray: `Name(length) [ ... ]`,
 * NA bare, at most `maxArrayLength` elements and then how many more.
 */
function inspectVector(name: string, length: number, get: (i: number) => unknown, depth: number, o: InspectOptionsStylized): string {
  if (depth < 0) return o.stylize(`[${name}]`, 'special')
  const max = o.maxArrayLength === null || o.maxArrayLength === undefined ? Infinity : Math.max(0, o.maxArrayLength)
  const shown = Math.min(length, max)
  const items: unknown[] = new Array(shown)
  for (let i = 0; i < shown; i++) {
    const v = get(i)
    items[i] = v === null ? NA_SHOWN : v
  }
  const rest = length - shown
  if (rest > 0) items.push({ [inspect.custom]: () => `... ${rest} more item${rest > 1 ? 's' : ''}` })
  return `${name}(${length}) ${inspect(items, { ...o, maxArrayLength: items.length })}`
}

/** The code of NA in a logical vector's storage; false is 0 and true is 1. */
export const NA_LOGICAL = -1

/** A logical vector: true, false or NA (null), one byte each in `codes`. */
export class SharedLogicalVector implements Iterable<boolean | null> {
  /** The raw storage: 0 false, 1 true, -1 NA. Writes through it are seen like any other. */
  readonly codes: Int8Array
  readonly #state: ViewState

  constructor(codes: Int8Array, state: ViewState = OPEN) {
    this.codes = codes
    this.#state = state
  }

  /** The buffer over the mapping: a SharedArrayBuffer where the runtime can make one. */
  get buffer(): ArrayBufferLike {
    return this.codes.buffer
  }

  get length(): number {
    return this.#state.closed ? 0 : this.codes.length
  }

  get(i: number): boolean | null {
    const c = this.codes[checkIndex(i, this.length)]
    return c === 1 ? true : c === 0 ? false : null
  }

  set(i: number, value: boolean | null): void {
    checkIndex(i, this.length)
    if (value !== true && value !== false && value !== null) {
      throw coded(codes.INVALID_ARG_TYPE, `a logical vector holds true, false or null, got ${typeof value}`, TypeError)
    }
    this.codes[i] = value === null ? NA_LOGICAL : value ? 1 : 0
  }

  *[Symbol.iterator](): Iterator<boolean | null> {
    for (let i = 0; i < this.length; i++) yield this.get(i)
  }

  toArray(): (boolean | null)[] {
    const c = this.length === 0 ? new Int8Array(0) : this.codes
    const out = new Array<boolean | null>(c.length)
    for (let i = 0; i < c.length; i++) out[i] = c[i] === 1 ? true : c[i] === 0 ? false : null
    return out
  }

  /** `SharedLogicalVector(3) [ true, false, NA ]`, as Node shows a TypedArray. */
  [inspect.custom](depth: number, o: InspectOptionsStylized): string {
    return inspectVector('SharedLogicalVector', this.length, (i) => this.get(i), depth, o)
  }

  /** How many elements are true (NA is not). */
  countTrue(): number {
    const c = this.length === 0 ? new Int8Array(0) : this.codes
    let n = 0
    for (let i = 0; i < c.length; i++) if (c[i] === 1) n++
    return n
  }

  /** How many elements are NA. */
  countNA(): number {
    const c = this.length === 0 ? new Int8Array(0) : this.codes
    let n = 0
    for (let i = 0; i < c.length; i++) if (c[i] !== 0 && c[i] !== 1) n++
    return n
  }
}

/** The layout words of a string segment, as its header stores them. */
export interface StringLayout {
  validity: number
  offsets: number
  values: number
  valuesLength: number
  /** Where the dictionary codes are; 0 without a dictionary. */
  codes: number
  dictionarySize: number
}

export const layoutFromAux = (aux: number[]): StringLayout => ({
  validity: aux[0],
  offsets: aux[1],
  values: aux[2],
  valuesLength: aux[3],
  codes: aux[4],
  dictionarySize: aux[5],
})

/** Buffer's own UTF-8 decoder without `toString`'s argument handling, where Node has it. */
const utf8Slice: (this: Buffer, start: number, end: number) => string =
  (Buffer.prototype as unknown as { utf8Slice?: (this: Buffer, s: number, e: number) => string }).utf8Slice ??
  function (this: Buffer, start: number, end: number) {
    return this.toString('utf8', start, end)
  }

/** Buffer's own UTF-16 (little endian) decoder without `toString`'s argument handling, where Node has it. */
const ucs2Slice: (this: Buffer, start: number, end: number) => string =
  (Buffer.prototype as unknown as { ucs2Slice?: (this: Buffer, s: number, e: number) => string }).ucs2Slice ??
  function (this: Buffer, start: number, end: number) {
    return this.toString('utf16le', start, end)
  }

/** Buffer's own Latin-1 decoder: for bytes known to be ASCII, a copy with nothing to decode. */
const latin1Slice: (this: Buffer, start: number, end: number) => string =
  (Buffer.prototype as unknown as { latin1Slice?: (this: Buffer, s: number, e: number) => string }).latin1Slice ??
  function (this: Buffer, start: number, end: number) {
    return this.toString('latin1', start, end)
  }

/** Whether bytes are all ASCII, by Node's own check where it has it. */
const isAscii: ((b: Uint8Array) => boolean) | undefined = (bufferModule as { isAscii?: (b: Uint8Array) => boolean }).isAscii

/** Strings are decoded in blocks of at most this many, and this many bytes (but one string). */
const DECODE_BLOCK = 1024
const DECODE_BYTES = 64 * 1024
/**
 * `toArray` decodes blocks of at most this many bytes (and `get` in order grows its blocks up to
 * it): a block of a million short strings decodes in half the time of 64 KiB ones.
 */
const BULK_BYTES = 2 * 1024 * 1024
/**
 * ASCII bytes are copied into one string of at most this many bytes, and strings are cut from
 * it (`toArray`'s texts, and the window reads in order go through). Just under 1,031,913 bytes,
 * past which Node copies a decoded string into memory of its own outside the engine's heap:
 * pages fresh from the allocator each time, about 3,000 page faults to read 10^6 short strings
 * (a quarter of `toArray`'s time in a child that reads vector after vector), where the engine's
 * heap reuses its pages.
 */
const TEXT_BYTES = 1_000_000

/**
 * Where the strings of a non-ASCII block end in its texts (see `#decodeBlock`), for blocks of
 * fewer strings than this; a bigger block (toArray's, of strings of a few bytes) gets its own.
 */
const UNITS = 65536
let units: Int32Array | undefined

/** Whether entry `e` is valid (not NA) in a validity bitmap; every entry is where there is none. */
function valid(validity: Uint8Array | undefined, e: number): boolean {
  return validity === undefined || (validity[e >> 3] & (1 << (e & 7))) !== 0
}

/** Strings are cut from their texts in calls of this many, so that the engine optimizes each call's loop as a whole function. */
const CUT = 8192

/**
 * Cuts strings `from` to `to` out of `text`, a string vector's ASCII values from byte `a` on
 * (`size` bytes), into `out` from `at`; NA (per `validity`, all valid where it is undefined) as
 * null. The first starts at `s` in `text`; entry `last` ends at `size`. Each other end is read
 * once and checked: an offset another process rewrote is a coded error. Returns where the next
 * string starts.
 */
function cutAscii(text: string, off: Int32Array, validity: Uint8Array | undefined, from: number, to: number, a: number, s: number, last: number, size: number, out: (string | null)[], at: number): number {
  for (let e = from; e < to; e++) {
    const t = e === last ? size : off[e + 1] - a
    if (!(t >= s && t <= size)) throw corrupt(e, s + a, t + a)
    out[at++] = valid(validity, e) ? text.substring(s, t) : null
    s = t
  }
  return s
}

/**
 * Cuts the strings `k` to `to` of a non-ASCII block decoded by `utf8Split` (entry `from` first)
 * into `out` from `at`: from `lat`, the Latin-1 text, where `ends` has where one ends in it, and
 * from `wide`, the UTF-16 text, where it has the complement of that; NA as null. `starts` has
 * where the next string starts in each text, and is moved on.
 */
function cutSplit(lat: string, wide: string, ends: Int32Array, validity: Uint8Array | undefined, from: number, k: number, to: number, starts: Int32Array, out: (string | null)[], at: number): void {
  let u = starts[0]
  let v = starts[1]
  for (; k < to; k++) {
    const x = ends[k]
    const ok = valid(validity, from + k)
    if (x >= 0) {
      out[at++] = ok ? lat.substring(u, x) : null
      u = x
    } else {
      const y = ~x
      out[at++] = ok ? wide.substring(v, y) : null
      v = y
    }
  }
  starts[0] = u
  starts[1] = v
}
const splitStarts = new Int32Array(2)

/** `get`'s blocks grow up to this many strings (and {@link BULK_BYTES}). */
const BLOCK_MAX = 1 << 18

/**
 * The two texts of a non-ASCII block (`utf8Split`): Latin-1, one byte a character, and UTF-16,
 * two; kept for the next block, at most 3 × {@link BULK_BYTES}.
 */
let latin1Out: Buffer | undefined
let wideOut: Buffer | undefined

function splitScratch(bytes: number): [Buffer, Buffer] {
  if (latin1Out === undefined || wideOut === undefined || latin1Out.length < bytes) {
    const size = Math.max(bytes, DECODE_BYTES)
    latin1Out = Buffer.allocUnsafeSlow(size)
    wideOut = Buffer.allocUnsafeSlow(2 * size)
  }
  return [latin1Out, wideOut]
}

const align64 = (n: number): number => Math.ceil(n / 64) * 64
const MAX_VALUES = 2 ** 31 - 1

/**
 * Where the sections of `n` strings go in the data region: the validity bitmap, the dictionary
 * codes (with a dictionary), `entries + 1` offsets and `valuesLength` bytes of UTF-8, each
 * 64-byte aligned. The data takes `values + valuesLength` bytes.
 */
export function stringLayout(n: number, entries: number, valuesLength: number, dictionary: boolean): StringLayout {
  if (valuesLength > MAX_VALUES) {
    throw coded(codes.OUT_OF_RANGE, `the strings take ${valuesLength} bytes of UTF-8; one string vector holds at most ${MAX_VALUES}`, RangeError)
  }
  const layout: StringLayout = { validity: 0, offsets: 0, values: 0, valuesLength, codes: 0, dictionarySize: dictionary ? entries : 0 }
  // The validity bitmap takes at least one 64-byte block, so a dictionary never starts at 0.
  let at = align64(Math.max(1, Math.ceil(n / 8)))
  if (dictionary) {
    layout.codes = at
    at = align64(at + 4 * n)
  }
  layout.offsets = at
  layout.values = align64(at + 4 * (entries + 1))
  return layout
}

export const layoutToAux = (l: StringLayout): number[] => [l.validity, l.offsets, l.values, l.valuesLength, l.codes, l.dictionarySize]

/**
 * Lays out strings the way Arrow does (validity bitmap, int32 offsets, UTF-8 bytes), or with a
 * dictionary of unique strings and one int32 code per element (-1 for NA). Returns the bytes of
 * the data region and its layout words.
 */
export function encodeStrings(values: readonly unknown[], dictionary: boolean): { bytes: Uint8Array; aux: number[] }
/** With `lenient`, an element that is not a string or NA gives undefined instead of an error. */
export function encodeStrings(values: readonly unknown[], dictionary: boolean, lenient: boolean): { bytes: Uint8Array; aux: number[] } | undefined
export function encodeStrings(values: readonly unknown[], dictionary: boolean, lenient = false): { bytes: Uint8Array; aux: number[] } | undefined {
  const n = values.length
  if (!dictionary) return layOut(n, values, undefined, lenient)
  const unique: string[] = []
  const seen = new Map<string, number>()
  const codesOf = new Int32Array(n)
  for (let i = 0; i < n; i++) {
    const s = values[i]
    if (s === null || s === undefined) {
      codesOf[i] = -1
      continue
    }
    if (typeof s !== 'string') {
      if (lenient) return undefined
      throw notAString(i, s)
    }
    let c = seen.get(s)
    if (c === undefined) {
      c = unique.length
      seen.set(s, c)
      unique.push(s)
    }
    codesOf[i] = c
  }
  return layOut(n, unique, codesOf, false)!
}

const notAString = (i: number, v: unknown): Error =>
  coded(codes.INVALID_ARG_TYPE, `a string vector holds strings or null; element ${i} is ${typeof v}`, TypeError)

/** Buffer's own UTF-8 encoder without `write`'s argument handling, where Node has it. */
const utf8Write: (this: Buffer, s: string, offset: number) => number =
  (Buffer.prototype as unknown as { utf8Write?: (this: Buffer, s: string, o: number) => number }).utf8Write ??
  function (this: Buffer, s: string, offset: number) {
    return this.write(s, offset, 'utf8')
  }

/**
 * Strings up to this many UTF-16 units are encoded by a loop here, longer ones by Buffer's
 * encoder: for short strings the call into the runtime costs more than the loop.
 */
const SHORT = 40

/**
 * Writes the UTF-8 of `s` (at most 3 bytes per UTF-16 unit; a lone surrogate becomes U+FFFD, as
 * `TextEncoder` does) at `pos`, where `b` has room; returns the position after it.
 */
function writeShort(b: Uint8Array, pos: number, s: string): number {
  const len = s.length
  for (let j = 0; j < len; j++) {
    let c = s.charCodeAt(j)
    if (c < 0x80) {
      b[pos++] = c
    } else if (c < 0x800) {
      b[pos++] = 0xc0 | (c >> 6)
      b[pos++] = 0x80 | (c & 0x3f)
    } else {
      if (c >= 0xd800 && c < 0xe000) {
        const d = j + 1 < len ? s.charCodeAt(j + 1) : 0
        if (c < 0xdc00 && d >= 0xdc00 && d < 0xe000) {
          j++
          c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00)
          b[pos++] = 0xf0 | (c >> 18)
          b[pos++] = 0x80 | ((c >> 12) & 0x3f)
          b[pos++] = 0x80 | ((c >> 6) & 0x3f)
          b[pos++] = 0x80 | (c & 0x3f)
          continue
        }
        c = 0xfffd
      }
      b[pos++] = 0xe0 | (c >> 12)
      b[pos++] = 0x80 | ((c >> 6) & 0x3f)
      b[pos++] = 0x80 | (c & 0x3f)
    }
  }
  return pos
}

/**
 * The bytes units `from` to `to` of `s` take in UTF-8 when encoded alone: a surrogate pair is 4,
 * a lone surrogate 3 (U+FFFD), as `utf8Write` and `writeShort` write them. Read from one flat
 * string (a joined block): reading each string itself would flatten every rope among them.
 */
function utf8Length(s: string, from: number, to: number): number {
  let n = to - from
  for (let j = from; j < to; j++) {
    const c = s.charCodeAt(j)
    if (c < 0x80) continue
    if (c < 0x800) {
      n += 1
      continue
    }
    n += 2
    if (c < 0xdc00 && c >= 0xd800 && j + 1 < to) {
      const d = s.charCodeAt(j + 1)
      if (d >= 0xdc00 && d < 0xe000) j++
    }
  }
  return n
}

/** Strings are encoded in blocks of this many: joined, one block is one call into the encoder. */
const BLOCK = 256

/**
 * A buffer for `layOut` to encode strings into before they are copied into their segment: over a
 * SharedArrayBuffer, whose memory the engine does not count as its own. An ArrayBuffer of the
 * 110 MB that 10^7 short strings take made the engine start a full collection on the spot
 * (external memory it had not seen grow so much), which marked the caller's whole heap, the
 * strings being shared included: 150-260 ms of a share of 500-600. The segment's size, reported
 * once it is made, still tells the engine about the memory, once.
 */
function encodeBuffer(size: number): Buffer {
  // A smaller one is an ordinary Buffer: too small for the engine to collect because of it.
  return size >= 1 << 20 && typeof SharedArrayBuffer === 'function' ? Buffer.from(new SharedArrayBuffer(size)) : Buffer.allocUnsafe(size)
}

/**
 * The data region of `n` strings: `entries` are the strings themselves (no dictionary; null or
 * undefined is NA) or the dictionary, with `codesOf` giving each element's entry (-1 for NA).
 *
 * One pass over the strings writes the bitmap, the offsets and the UTF-8 into one buffer laid
 * out as the segment will be (then copied into it once). The strings are read once: a second
 * pass costs as much as the first, a cache miss per string. A block of strings is joined and
 * encoded at once: when it comes out one byte per UTF-16 unit it was ASCII and the offsets are
 * the lengths; otherwise the offsets are each string's UTF-8 length, counted, unless a surrogate
 * pair formed across two strings (the counts then fall short of what was written): the block's
 * strings are then encoded one by one, and the next blocks' too for a while. The buffer is sized
 * from a sample of the strings and grows when it must.
 */
function layOut(n: number, entries: readonly unknown[], codesOf: Int32Array | undefined, lenient: boolean): { bytes: Uint8Array; aux: number[] } | undefined {
  const k = entries.length
  const layout = stringLayout(n, k, 0, codesOf !== undefined)
  const at = layout.values
  // Sized for the whole vector as if every string were like a sample of them spread over it (not
  // the first ones: ids and counters grow longer as they go): a copy to grow it costs more than
  // the pages of a generous guess, which are never touched.
  let sample = 0
  const first = Math.min(k, BLOCK)
  for (let j = 0; j < first; j++) {
    const s = entries[Math.floor((j * k) / first)]
    if (typeof s === 'string') sample += Buffer.byteLength(s, 'utf8')
  }
  let cap = at + Math.min(MAX_VALUES, Math.ceil((sample / Math.max(1, first)) * k * 1.25) + 3 * sample + 1024)
  let buf = encodeBuffer(cap)
  let offsets = new Int32Array(buf.buffer, buf.byteOffset + layout.offsets, k + 1)
  let pos = at
  let skip = 0
  for (let i0 = 0; i0 < k; i0 += BLOCK) {
    const i1 = Math.min(k, i0 + BLOCK)
    let blockUnits = 0
    let bits = 0
    for (let i = i0; i < i1; i++) {
      const s = entries[i]
      if (typeof s === 'string') {
        blockUnits += s.length
        bits |= 1 << (i & 7)
      } else if (s !== null && s !== undefined) {
        if (lenient) return undefined
        throw notAString(i, s)
      }
      if ((i & 7) === 7 || i === i1 - 1) {
        if (!codesOf) buf[i >> 3] = bits
        bits = 0
      }
    }
    // With room for the worst case, the encoder cannot stop short: as many bytes as units is ASCII.
    if (cap - pos < 3 * blockUnits) {
      const need = pos + 3 * blockUnits
      if (need - at > MAX_VALUES) {
        // Refused with the exact size, and only when the exact size is too large.
        let exact = pos - at
        for (let i = i0; i < i1; i++) if (typeof entries[i] === 'string') exact += Buffer.byteLength(entries[i] as string, 'utf8')
        stringLayout(n, k, exact, false)
      }
      // As much again as the strings so far take per element, for all of them, or twice the buffer.
      const projected = at + Math.ceil(((pos - at) / Math.max(1, i0)) * k * 1.25)
      cap = Math.max(need, Math.min(Math.max(projected, cap + (cap >> 1)), 2 * cap, at + MAX_VALUES + 3 * blockUnits))
      const grown = encodeBuffer(cap)
      grown.set(buf.subarray(0, pos))
      buf = grown
      offsets = new Int32Array(buf.buffer, buf.byteOffset + layout.offsets, k + 1)
    }
    if (skip === 0) {
      const joined = (i1 - i0 === k ? entries : entries.slice(i0, i1)).join('')
      const written = utf8Write.call(buf, joined, pos)
      if (written === blockUnits) {
        for (let i = i0; i < i1; i++) {
          offsets[i] = pos - at
          const s = entries[i]
          if (typeof s === 'string') pos += s.length
        }
        continue
      }
      // Not ASCII: each string's length in UTF-8, counted here. Where they add up to what was
      // written, no surrogate pair formed across two strings, and the block stands as written.
      let end = pos
      let u = 0
      for (let i = i0; i < i1; i++) {
        offsets[i] = end - at
        const s = entries[i]
        if (typeof s === 'string') {
          end += utf8Length(joined, u, u + s.length)
          u += s.length
        }
      }
      if (end - pos === written) {
        pos = end
        continue
      }
      skip = 8
    } else {
      skip--
    }
    for (let i = i0; i < i1; i++) {
      offsets[i] = pos - at
      const s = entries[i]
      if (typeof s === 'string') pos = s.length <= SHORT ? writeShort(buf, pos, s) : pos + utf8Write.call(buf, s, pos)
    }
  }
  offsets[k] = pos - at
  const final = stringLayout(n, k, pos - at, codesOf !== undefined)
  // Zeros between the sections (and the dictionary's bitmap and codes): nothing of this
  // process's memory may reach the segment.
  if (codesOf) {
    buf.fill(0, 0, layout.codes)
    for (let i = 0; i < n; i++) if (codesOf[i] >= 0) buf[i >> 3] |= 1 << (i & 7)
    new Int32Array(buf.buffer, buf.byteOffset + layout.codes, n).set(codesOf)
    buf.fill(0, layout.codes + 4 * n, layout.offsets)
  } else {
    buf.fill(0, Math.ceil(n / 8), layout.offsets)
  }
  buf.fill(0, layout.offsets + 4 * (k + 1), at)
  return { bytes: buf.subarray(0, pos), aux: layoutToAux(final) }
}

const corrupt = (e: number, start: number, end: number): Error => coded(codes.BAD_HEADER, `string vector entry ${e} has corrupt offsets ${start}..${end}`)

/** Makes a Factor; set by the class, whose constructor `factor` alone may call. */
let makeFactor: (codes: Int32Array, levels: readonly string[]) => Factor

/**
 * R-style factor input for `share`: one integer code per element and the levels they index.
 * Made by {@link factor}; `share(factor(codes, levels))` gives a dictionary `SharedStringVector`
 * whose `codes` and `levels` are these.
 */
export class Factor {
  /** One code per element: 0-based indexes into `levels`, -1 for NA. */
  readonly codes: Int32Array
  /** The distinct strings the codes index. */
  readonly levels: readonly string[]

  /** Use {@link factor}, which checks its input. */
  private constructor(codes: Int32Array, levels: readonly string[]) {
    this.codes = codes
    this.levels = levels
  }

  get length(): number {
    return this.codes.length
  }

  static {
    makeFactor = (c, l) => new Factor(c, l)
  }
}


/**
 * Factor input for `share`, as R holds a factor: `codes` (0-based indexes into `levels`, -1 for
 * NA; R's own codes are 1-based, so pass `codes - 1`) and `levels` (distinct strings).
 * `share(so.factor(codes, levels))` lays the strings out once, copies the codes once, and gives
 * a dictionary `SharedStringVector` (inside containers too). Codes out of range, levels that
 * are not strings or repeat, are coded errors.
 *
 * @example
 * const f = so.share(so.factor(Int32Array.of(0, 1, -1, 0), ['low', 'high']))
 * f.toArray() // ['low', 'high', null, 'low']
 */
export function factor(codes: ArrayLike<number>, levels: readonly string[]): Factor {
  if (codes === null || typeof codes !== 'object' || typeof codes.length !== 'number') {
    throw coded(errorCodes.INVALID_ARG_TYPE, 'factor: codes must be an Int32Array or an array of integers', TypeError)
  }
  if (!Array.isArray(levels)) throw coded(errorCodes.INVALID_ARG_TYPE, 'factor: levels must be an array of strings', TypeError)
  const seen = new Set<string>()
  levels.forEach((l, i) => {
    if (typeof l !== 'string') throw coded(errorCodes.INVALID_ARG_TYPE, `factor: levels[${i}] is ${l === null ? 'null' : typeof l}, not a string`, TypeError)
    if (seen.has(l)) throw coded(errorCodes.INVALID_ARG_VALUE, `factor: level ${JSON.stringify(l.slice(0, 40))} appears twice; levels are distinct`, TypeError)
    seen.add(l)
  })
  const c = codes instanceof Int32Array ? codes : Int32Array.from(codes)
  const k = levels.length
  for (let i = 0; i < c.length; i++) {
    const v = c[i]
    if (v < -1 || v >= k || (!(codes instanceof Int32Array) && c[i] !== codes[i])) {
      throw coded(errorCodes.OUT_OF_RANGE, `factor: codes[${i}] is ${String(codes[i])}; a code is a whole number from 0 to ${k - 1} (the levels), or -1 for NA`, RangeError)
    }
  }
  return makeFactor(c, [...levels])
}

/** The data region of a factor: its levels as the dictionary, its codes as they are. */
export const encodeFactor = (f: Factor): { bytes: Uint8Array; aux: number[] } => layOut(f.codes.length, f.levels, f.codes, false)!

/** The sections of a string vector, as views of its buffer: what `toArrow` hands to Arrow. */
export interface StringSections {
  validity: Uint8Array
  offsets: Int32Array
  values: Uint8Array
  codes: Int32Array | undefined
}

/** The sections of a live string vector; set by the class, which alone can reach them. */
export let stringSections: (v: SharedStringVector) => StringSections

/**
 * An immutable vector of strings over shared memory. Elements are decoded when read; `bytes(i)`
 * gives the UTF-8 without a copy. With a dictionary, `set(i, s)` may point an element at a
 * string the dictionary already holds.
 */
export class SharedStringVector implements Iterable<string | null> {
  readonly #buffer: ArrayBufferLike
  readonly #state: ViewState
  readonly #length: number
  readonly #validity: Uint8Array
  readonly #offsets: Int32Array
  readonly #values: Buffer
  readonly #codes: Int32Array | undefined
  #lookup: Map<string, number> | undefined
  #decoded: string[] | undefined
  /** The block of strings `get` decoded last, for reads in order; one block at most. */
  #block: (string | null)[] = []
  #blockFrom = 0
  #blockTo = 0
  /**
   * The next block's bounds: {@link DECODE_BLOCK} strings and {@link DECODE_BYTES} at first, 4
   * times as many for each block that goes on from the one before, up to {@link BLOCK_MAX}
   * strings and {@link BULK_BYTES}, as the ASCII window grows.
   */
  #blockStrings = DECODE_BLOCK
  #blockBytes = DECODE_BYTES
  /** The index `get` read last: a read of the next one decodes a block. */
  #last = -2
  /** ASCII bytes `#windowFrom` to `#windowTo` of the values as one string, for reads in order. */
  #window: string | undefined
  #windowFrom = 0
  #windowTo = 0
  /** Values before this byte were found not all ASCII: no window is tried before it. */
  #noWindowTo = 0
  /** The next window's size: small for a few reads in order, growing as they go on. */
  #windowBytes = DECODE_BYTES
  #levels: SharedStringVector | undefined

  /** Made by the package (`share`, `open`); `allValid` views a dictionary as its levels. */
  constructor(buffer: ArrayBufferLike, length: number, layout: StringLayout, state: ViewState = OPEN, allValid = false) {
    this.#buffer = buffer
    this.#state = state
    this.#length = length
    const entries = layout.codes ? layout.dictionarySize : length
    // Every section was checked against the data region's size before this view was made.
    this.#validity = allValid ? new Uint8Array(Math.ceil(length / 8)).fill(0xff) : new Uint8Array(buffer, layout.validity, Math.ceil(length / 8))
    this.#offsets = new Int32Array(buffer, layout.offsets, entries + 1)
    this.#values = Buffer.from(buffer, layout.values, layout.valuesLength)
    this.#codes = layout.codes ? new Int32Array(buffer, layout.codes, length) : undefined
  }

  static {
    stringSections = (v) => {
      v.#live()
      return { validity: v.#validity, offsets: v.#offsets, values: v.#values, codes: v.#codes }
    }
  }

  /** The buffer over the mapping: a SharedArrayBuffer where the runtime can make one. */
  get buffer(): ArrayBufferLike {
    return this.#buffer
  }

  /** Whether unique strings are stored once, with a code per element. */
  get dictionary(): boolean {
    return this.#codes !== undefined
  }

  get length(): number {
    // The offsets always hold at least one entry: none left means the buffer was detached (a
    // typed array's length is read inline, a SharedArrayBuffer's byteLength is not).
    return this.#offsets.length === 0 || this.#state.closed ? 0 : this.#length
  }

  /**
   * A dictionary vector's codes: one int32 per element, the 0-based index of its string in
   * `levels`, -1 for NA (R's factor codes, less one). A view of the shared memory itself, no
   * copy: every process sees writes to it. Write codes below `levels.length` (use `set(i, null)`
   * for NA, which also keeps the validity bitmap that Arrow readers use). Undefined without a
   * dictionary.
   */
  get codes(): Int32Array | undefined {
    return this.#codes
  }

  /**
   * A dictionary vector's distinct strings, in code order, as a string vector over the same
   * shared memory (R's `levels`); undefined without a dictionary. Like a subarray it is a view of
   * the segment: closing it closes the vector. `JSON.stringify` gives its strings.
   */
  get levels(): SharedStringVector | undefined {
    if (!this.#codes) return undefined
    this.#live()
    if (!this.#levels) {
      const k = this.#offsets.length - 1
      const layout: StringLayout = {
        validity: 0,
        offsets: this.#offsets.byteOffset,
        values: this.#values.byteOffset,
        valuesLength: this.#values.length,
        codes: 0,
        dictionarySize: 0,
      }
      const levels = new SharedStringVector(this.#buffer, k, layout, this.#state, true)
      Object.defineProperty(levels, 'toJSON', { value: levels.toArray.bind(levels), configurable: true, writable: true, enumerable: false })
      this.#levels = levels
    }
    return this.#levels
  }

  #live(): void {
    if (this.#offsets.length === 0 || this.#state.closed) throw coded(codes.CLOSED, 'the string vector was closed in this process')
  }

  /** The entry (element or dictionary slot) behind element i, or -1 for NA. */
  #entry(i: number): number {
    // Hot path: one comparison proves i is a whole number in range; anything else is checked slowly.
    if (i >>> 0 !== i || i >= this.#length || this.#offsets.length === 0 || this.#state.closed) {
      this.#live()
      checkIndex(i, this.#length)
    }
    if (this.#codes) return this.#codes[i]
    return valid(this.#validity, i) ? i : -1
  }

  #decode(e: number): string {
    const start = this.#offsets[e]
    const end = this.#offsets[e + 1]
    if (!(e + 1 < this.#offsets.length && start >= 0 && end >= start && end <= this.#values.length)) {
      throw coded(codes.BAD_HEADER, `string vector offsets ${start}..${end} are corrupt`)
    }
    return utf8Slice.call(this.#values, start, end)
  }

  /**
   * Decodes entries `from` to at most `to` (fewer where their bytes pass DECODE_BYTES, never
   * none) into `out` from `at`, NA as null; returns the end. Offsets are checked as they are
   * read, each once: bad ones are a coded error, whatever another process writes meanwhile. The
   * bytes of an ASCII block are copied as one string and cut; other blocks are decoded natively
   * into a Latin-1 text and a UTF-16 one (`utf8Split`), each string cut from the one it fits;
   * a block with a string that is not UTF-8 on its own, string by string.
   */
  #decodeBlock(from: number, to: number, out: (string | null)[], at: number, allValid: boolean, maxBytes = DECODE_BYTES): number {
    const off = this.#offsets
    const values = this.#values
    const size = values.length
    if (to + 1 > off.length) to = off.length - 1
    const a = off[from]
    if (!(a >= 0 && a <= size) || from >= to) {
      out[at] = this.#validAt(from, allValid) ? this.#decode(from) : null
      return from + 1
    }
    let end = this.#blockEnd(from, to, a, maxBytes)
    let b = off[end]
    if (!(b >= a && b <= size)) throw corrupt(from, a, b)
    if (end - from > 1 && isAscii?.(values.subarray(a, b))) {
      if (b - a > TEXT_BYTES) {
        end = this.#blockEnd(from, end, a, TEXT_BYTES)
        b = off[end]
        if (!(b >= a && b <= size)) throw corrupt(from, a, b)
      }
      const text = latin1Slice.call(values, a, b)
      const validity = allValid ? undefined : this.#validity
      let s = 0
      for (let e = from; e < end; e += CUT) s = cutAscii(text, off, validity, e, Math.min(end, e + CUT), a, s, end - 1, b - a, out, at + e - from)
      return end
    }
    // Decoded natively into two texts, Latin-1 (one byte a character, as the engine keeps such
    // strings) and UTF-16 for the strings that need it, each cut from its own.
    if (end - from > 1) {
      const n = end - from
      const ends = n < UNITS ? (units ??= new Int32Array(UNITS)) : new Int32Array(n + 1)
      const [lat, wide] = splitScratch(b - a)
      const l = native.utf8Split(values, off, from, end, a, b, lat, wide, ends)
      if (l <= -2) {
        const bad = -2 - l
        throw corrupt(bad, bad === from ? a : off[bad], bad + 1 === end ? b : off[bad + 1])
      }
      if (l >= 0) {
        const latText = l > 0 ? latin1Slice.call(lat, 0, l) : ''
        const w = ends[n]
        const wideText = w > 0 ? ucs2Slice.call(wide, 0, 2 * w) : ''
        const validity = allValid ? undefined : this.#validity
        splitStarts.fill(0)
        for (let k = 0; k < n; k += CUT) cutSplit(latText, wideText, ends, validity, from, k, Math.min(n, k + CUT), splitStarts, out, at + k)
        return end
      }
      // A string that is not UTF-8 on its own: each decodes alone, with replacement characters.
    }
    for (let e = from; e < end; e++) out[at++] = this.#validAt(e, allValid) ? this.#decode(e) : null
    return end
  }

  /**
   * Where a block from entry `from` (its bytes from `a`) ends: at `to`, or at the last entry
   * whose end is within `maxBytes` of `a` (never before `from + 1`). Offsets rise, so a binary
   * search finds it; where it finds an end out of bounds (offsets that do not rise), a scan
   * stops at the first bad one.
   */
  #blockEnd(from: number, to: number, a: number, maxBytes: number): number {
    const off = this.#offsets
    let lo = from + 1
    let hi = to
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1
      if (off[mid] - a <= maxBytes) lo = mid
      else hi = mid - 1
    }
    const b = off[lo]
    if ((b >= a && b - a <= maxBytes) || lo === from + 1) return lo
    let end = from + 1
    let t = off[end]
    while (end < to && t - a <= maxBytes && t >= a) t = off[++end]
    return end > from + 1 && (t - a > maxBytes || t < a) ? end - 1 : end
  }

  #validAt(e: number, allValid: boolean): boolean {
    return valid(allValid ? undefined : this.#validity, e)
  }

  get(i: number): string | null {
    const e = this.#entry(i)
    if (e < 0) return null
    if (!this.#codes) {
      // Reads in order cut strings from an ASCII window, or decode a block at a time; any
      // other read decodes one string.
      const cut = this.#fromWindow(e)
      if (cut !== undefined) {
        this.#last = i
        return cut
      }
      if (i >= this.#blockFrom && i < this.#blockTo) {
        this.#last = i
        return this.#block[i - this.#blockFrom]
      }
      if (i !== this.#last + 1) {
        this.#last = i
        return this.#decode(e)
      }
      this.#last = i
      if (this.#openWindow(e)) {
        const cut = this.#fromWindow(e)
        if (cut !== undefined) return cut
      }
      // Reading on from the last block: a bigger one (fewer calls: 2 MiB blocks of non-ASCII
      // strings read in 0.9 times the time of 1 MB ones).
      const on = i === this.#blockTo && this.#blockTo > this.#blockFrom
      this.#blockStrings = on ? Math.min(BLOCK_MAX, 4 * this.#blockStrings) : DECODE_BLOCK
      this.#blockBytes = on ? Math.min(BULK_BYTES, 4 * this.#blockBytes) : DECODE_BYTES
      const to = Math.min(this.#length, i + this.#blockStrings)
      // A new array of the block's size: one emptied and filled again grows by copies.
      this.#block = new Array<string | null>(to - i)
      this.#blockFrom = i
      this.#blockTo = this.#decodeBlock(i, to, this.#block, 0, false, this.#blockBytes)
      return this.#block[0]
    }
    // Dictionary strings never change: decode each once.
    const s = (this.#decoded ??= this.#dictionaryStrings())[e]
    if (s === undefined) throw coded(codes.BAD_HEADER, `string vector code ${e} is past its dictionary`)
    return s
  }

  /**
   * Entry e cut from the read window, or undefined when the window does not hold all of it. Its
   * offsets are checked against the window, so that offsets another process rewrites can only
   * give other strings.
   */
  #fromWindow(e: number): string | undefined {
    const w = this.#window
    if (w === undefined || e + 1 >= this.#offsets.length) return undefined
    const s = this.#offsets[e]
    const t = this.#offsets[e + 1]
    const from = this.#windowFrom
    return s >= from && t <= this.#windowTo && t >= s ? w.substring(s - from, t - from) : undefined
  }

  /**
   * Copies the values from entry e's first byte into the read window when they are all ASCII;
   * returns whether it did. The first window of a vector is 64 KiB and each next one 4 times as
   * big, up to {@link TEXT_BYTES}: a few reads in order copy little, a long run of them is cut
   * from texts the engine's heap makes without fresh pages.
   */
  #openWindow(e: number): boolean {
    const from = this.#offsets[e]
    const values = this.#values
    if (!(from >= this.#noWindowTo && from < values.length && e + 1 < this.#offsets.length) || isAscii === undefined) return false
    const to = Math.min(values.length, from + this.#windowBytes)
    this.#windowBytes = Math.min(TEXT_BYTES, 4 * this.#windowBytes)
    this.#window = undefined
    if (!isAscii(values.subarray(from, to))) {
      this.#noWindowTo = to
      return false
    }
    this.#window = latin1Slice.call(values, from, to)
    this.#windowFrom = from
    this.#windowTo = to
    this.#block.length = 0
    this.#blockTo = this.#blockFrom
    return true
  }

  /** The UTF-8 bytes of element i as a view of shared memory (no copy), or null for NA. */
  bytes(i: number): Uint8Array | null {
    const e = this.#entry(i)
    if (e < 0) return null
    const start = this.#offsets[e]
    const end = this.#offsets[e + 1]
    // Offsets and codes come from shared memory that any process may write: check them.
    if (!(e + 1 < this.#offsets.length && start >= 0 && end >= start && end <= this.#values.length)) {
      throw coded(codes.BAD_HEADER, `string vector entry ${e} has corrupt offsets ${start}..${end}`)
    }
    return new Uint8Array(this.#buffer, this.#values.byteOffset + start, end - start)
  }

  *[Symbol.iterator](): Iterator<string | null> {
    for (let i = 0; i < this.#length; i++) yield this.get(i)
  }

  toArray(): (string | null)[] {
    this.#live()
    const n = this.#length
    const out = new Array<string | null>(n)
    if (this.#codes) {
      const d = (this.#decoded ??= this.#dictionaryStrings())
      const c = this.#codes
      for (let i = 0; i < n; i++) {
        const e = c[i]
        if (e < 0) {
          out[i] = null
          continue
        }
        const s = d[e]
        if (s === undefined) throw coded(codes.BAD_HEADER, `string vector code ${e} is past its dictionary`)
        out[i] = s
      }
      return out
    }
    for (let i = 0; i < n; ) i = this.#decodeBlock(i, n, out, i, false, BULK_BYTES)
    return out
  }

  /** `SharedStringVector(3) [ 'a', 'b', NA ]`, as Node shows a TypedArray. */
  [inspect.custom](depth: number, o: InspectOptionsStylized): string {
    return inspectVector('SharedStringVector', this.length, (i) => this.get(i), depth, o)
  }

  /** The unique strings of a dictionary vector, in code order. */
  #dictionaryStrings(): string[] {
    const k = this.#offsets.length - 1
    const out = new Array<string | null>(k)
    for (let e = 0; e < k; ) e = this.#decodeBlock(e, Math.min(k, e + DECODE_BLOCK), out, e, true)
    return out as string[]
  }

  #codeOf(s: string): number {
    if (!this.#lookup) {
      this.#lookup = new Map()
      ;(this.#decoded ??= this.#dictionaryStrings()).forEach((d, c) => this.#lookup!.set(d, c))
    }
    return this.#lookup.get(s) ?? -1
  }

  /** The first index of `s` (or of NA for null), or -1. Compares bytes; decodes nothing. */
  indexOf(s: string | null): number {
    this.#live()
    if (s !== null && typeof s !== 'string') return -1
    if (this.#codes) {
      const c = s === null ? -1 : this.#codeOf(s)
      if (s !== null && c < 0) return -1
      for (let i = 0; i < this.#length; i++) if (this.#codes[i] === c || (c < 0 && this.#codes[i] < 0)) return i
      return -1
    }
    if (s === null) {
      for (let i = 0; i < this.#length; i++) if (!valid(this.#validity, i)) return i
      return -1
    }
    const target = Buffer.from(s, 'utf8')
    const len = target.length
    const off = this.#offsets
    for (let i = 0; i < this.#length; i++) {
      if (off[i + 1] - off[i] !== len || !valid(this.#validity, i)) continue
      if (this.#values.compare(target, 0, len, off[i], off[i + 1]) === 0) return i
    }
    return -1
  }

  includes(s: string | null): boolean {
    return this.indexOf(s) >= 0
  }

  /**
   * Sets element i to `s`, which a dictionary vector must already hold (or null for NA). Strings
   * are otherwise immutable: their bytes are laid out once.
   */
  set(i: number, s: string | null): void {
    this.#live()
    if (!this.#codes) {
      throw coded(codes.READ_ONLY, 'string vectors are immutable; share with { dictionary: true } to set elements to strings already present', TypeError)
    }
    checkIndex(i, this.#length)
    if (s !== null && typeof s !== 'string') {
      throw coded(codes.INVALID_ARG_TYPE, `a string vector holds strings or null, got ${typeof s}`, TypeError)
    }
    const c = s === null ? -1 : this.#codeOf(s)
    if (s !== null && c < 0) {
      throw coded(codes.INVALID_ARG_VALUE, `${JSON.stringify(s.slice(0, 40))} is not in this vector's dictionary; only strings already present can be set`, TypeError)
    }
    this.#codes[i] = c
    if (c < 0) this.#validity[i >> 3] &= ~(1 << (i & 7))
    else this.#validity[i >> 3] |= 1 << (i & 7)
  }
}

/**
 * One instance of each vector class, kept for the life of the module over a few bytes of private
 * memory. The engine's hidden classes of a class's instances live only while some instance does,
 * and optimised code that depends on them is thrown away when the collector takes them: a
 * process that opens, reads and closes string vectors again and again (a worker given one per
 * task) lost them at every collection, and after three or four rounds its `get(i)` loop ran 3 to
 * 4 times slower (1e6 non-ASCII strings: 310-370 ms instead of 80-110), as the engine gives up
 * re-optimising code deoptimised that often.
 */
export const keptShapes: readonly object[] = [
  new SharedStringVector(new ArrayBuffer(16), 0, { validity: 0, offsets: 0, values: 8, valuesLength: 0, codes: 0, dictionarySize: 0 }),
  new SharedLogicalVector(new Int8Array(0)),
]
