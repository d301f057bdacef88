/**
 * The two vector kinds that are not plain TypedArrays: logical (R's true / false / NA) and
 * string vectors, both over the mapped pages of a segment.
 */
import { inspect, type InspectOptionsStylized } from 'node:util'

import { codes, coded } from './errors'

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
export function encodeStrings(values: readonly unknown[], dictionary: boolean): { bytes: Uint8Array; aux: number[] } {
  const n = values.length
  const strings: (string | null)[] = new Array(n)
  for (let i = 0; i < n; i++) {
    const v = values[i]
    if (v === null || v === undefined) strings[i] = null
    else if (typeof v === 'string') strings[i] = v
    else throw coded(codes.INVALID_ARG_TYPE, `a string vector holds strings or null; element ${i} is ${typeof v}`, TypeError)
  }
  if (!dictionary) return layOut(n, strings, undefined)
  const unique: string[] = []
  const seen = new Map<string, number>()
  const codesOf = new Int32Array(n)
  for (let i = 0; i < n; i++) {
    const s = strings[i]
    if (s === null) {
      codesOf[i] = -1
      continue
    }
    let c = seen.get(s)
    if (c === undefined) {
      c = unique.length
      seen.set(s, c)
      unique.push(s)
    }
    codesOf[i] = c
  }
  return layOut(n, unique, codesOf)
}

/**
 * The data region of `n` strings: `entries` are the strings themselves (no dictionary; null is
 * NA) or the dictionary, with `codesOf` giving each element's entry (-1 for NA).
 */
function layOut(n: number, entries: readonly (string | null)[], codesOf: Int32Array | undefined): { bytes: Uint8Array; aux: number[] } {
  const k = entries.length
  let valuesLength = 0
  for (let i = 0; i < k; i++) if (entries[i] !== null) valuesLength += Buffer.byteLength(entries[i]!, 'utf8')
  const layout = stringLayout(n, k, valuesLength, codesOf !== undefined)
  const buf = Buffer.alloc(layout.values + valuesLength)
  const validity = buf.subarray(0, Math.ceil(n / 8))
  if (codesOf) {
    for (let i = 0; i < n; i++) if (codesOf[i] >= 0) validity[i >> 3] |= 1 << (i & 7)
    new Int32Array(buf.buffer, buf.byteOffset + layout.codes, n).set(codesOf)
  } else {
    for (let i = 0; i < n; i++) if (entries[i] !== null) validity[i >> 3] |= 1 << (i & 7)
  }
  const offsets = new Int32Array(buf.buffer, buf.byteOffset + layout.offsets, k + 1)
  let pos = 0
  for (let i = 0; i < k; i++) {
    offsets[i] = pos
    const s = entries[i]
    if (s !== null && s.length > 0) pos += buf.write(s, layout.values + pos, 'utf8')
  }
  offsets[k] = pos
  return { bytes: buf, aux: layoutToAux(layout) }
}

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
export const encodeFactor = (f: Factor): { bytes: Uint8Array; aux: number[] } => layOut(f.codes.length, f.levels, f.codes)

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
    return this.#buffer.byteLength === 0 || this.#state.closed ? 0 : this.#length
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
    if (this.#buffer.byteLength === 0 || this.#state.closed) throw coded(codes.CLOSED, 'the string vector was closed in this process')
  }

  /** The entry (element or dictionary slot) behind element i, or -1 for NA. */
  #entry(i: number): number {
    // Hot path: one comparison proves i is a whole number in range; anything else is checked slowly.
    if (i >>> 0 !== i || i >= this.#length || this.#offsets.length === 0 || this.#state.closed) {
      this.#live()
      checkIndex(i, this.#length)
    }
    if (this.#codes) return this.#codes[i]
    return this.#validity[i >> 3] & (1 << (i & 7)) ? i : -1
  }

  #decode(e: number): string {
    const start = this.#offsets[e]
    const end = this.#offsets[e + 1]
    if (!(e + 1 < this.#offsets.length && start >= 0 && end >= start && end <= this.#values.length)) {
      throw coded(codes.BAD_HEADER, `string vector offsets ${start}..${end} are corrupt`)
    }
    return utf8Slice.call(this.#values, start, end)
  }

  get(i: number): string | null {
    const e = this.#entry(i)
    if (e < 0) return null
    if (!this.#codes) return this.#decode(e)
    // Dictionary strings never change: decode each once.
    const s = (this.#decoded ??= this.#dictionaryStrings())[e]
    if (s === undefined) throw coded(codes.BAD_HEADER, `string vector code ${e} is past its dictionary`)
    return s
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
    const out = new Array<string | null>(this.#length)
    for (let i = 0; i < this.#length; i++) out[i] = this.get(i)
    return out
  }

  /** `SharedStringVector(3) [ 'a', 'b', NA ]`, as Node shows a TypedArray. */
  [inspect.custom](depth: number, o: InspectOptionsStylized): string {
    return inspectVector('SharedStringVector', this.length, (i) => this.get(i), depth, o)
  }

  /** The unique strings of a dictionary vector, in code order. */
  #dictionaryStrings(): string[] {
    const k = this.#offsets.length - 1
    const out = new Array<string>(k)
    for (let e = 0; e < k; e++) out[e] = this.#decode(e)
    return out
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
      for (let i = 0; i < this.#length; i++) if (!(this.#validity[i >> 3] & (1 << (i & 7)))) return i
      return -1
    }
    const target = Buffer.from(s, 'utf8')
    const len = target.length
    const off = this.#offsets
    for (let i = 0; i < this.#length; i++) {
      if (off[i + 1] - off[i] !== len || !(this.#validity[i >> 3] & (1 << (i & 7)))) continue
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
