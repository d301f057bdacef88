/**
 * Apache Arrow: tables shared as Arrow IPC files whose column buffers openers view in place,
 * shared vectors seen as Arrow vectors, and Arrow vectors shared as ours.
 *
 * apache-arrow is an optional peer dependency: nothing here loads it until an Arrow value is
 * shared, a table is opened or `toArrow` is called, and values are recognised by their shape
 * without it.
 */
import fs from 'node:fs'
import path from 'node:path'
import type * as Arrow from 'apache-arrow'
import type { ArrayBufferViewInput } from 'apache-arrow/util/buffer'
import type { Message } from 'apache-arrow/ipc/metadata/message'

import { native } from './native'
import { fnv, verifiedChunks } from './arrowcheck'
import { codes, coded } from './errors'
import { numericKindOf, type NumericKind, type NumericVector, type SharedVector } from './kinds'
import type { Resolved } from './options'
import { createOptions, created } from './create'
import { SharedLogicalVector, SharedStringVector, layoutToAux, stringLayout, stringSections, type StringLayout } from './vectors'
import { arrowBuffers, handOut, liveMeta, metaOf, type Meta } from './views'

type ArrowModule = typeof Arrow

/** Every message and buffer of a table's IPC file starts on this boundary of the data. */
const ALIGN = 64
/** The segment header's fixed size (crates/core/src/header.rs): the attributes follow it. */
const HEADER_SIZE = 128

/**
 * Where a table segment's data starts: after the header and the attributes, on a 64-byte boundary
 * (the rule of `Header::data_offset_for`). The segment is the Arrow file, so the footer's offsets
 * count from the segment's start, this many bytes before the data.
 */
const dataOffsetOf = (attributes: string | undefined): number => up(HEADER_SIZE + Buffer.byteLength(attributes ?? '', 'utf8'))

// ---- loading apache-arrow ------------------------------------------------------------------

/*
 * apache-arrow ships a CommonJS and an ES module build, and a Table of one is not an instance
 * of the other's classes, which its writer checks. So a value is written with the build that made
 * it, and what this package makes (opened tables, toArrow) comes from the build the program
 * loaded: the CommonJS one if it required it, else the ES module one (the same instance as the
 * program's `import`, where require() can load ES modules), else CommonJS.
 */
let entryFile: string | undefined
let cjs: ArrowModule | undefined
/** Whether this module, not the program, was first to require the CommonJS build. */
let cjsOurs = false
let esm: ArrowModule | null | undefined

function entry(): string {
  try {
    return (entryFile ??= require.resolve('apache-arrow'))
  } catch (cause) {
    const e = coded(
      codes.NO_ARROW,
      'this needs apache-arrow, an optional peer dependency of @sharedobject/core that is not installed: npm i apache-arrow',
    )
    e.cause = cause
    throw e
  }
}

function loadCjs(): ArrowModule {
  if (!cjs) {
    const file = entry()
    cjsOurs = require.cache[file] === undefined
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    cjs = require(file) as ArrowModule
  }
  return cjs
}

function loadEsm(): ArrowModule | undefined {
  if (esm === undefined) {
    const file = entry().replace(/\.js$/, '.mjs')
    esm = null
    if (file.endsWith('.mjs') && fs.existsSync(file)) {
      try {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        esm = require(file) as ArrowModule
      } catch {
        // This Node.js cannot require() an ES module: the CommonJS build serves.
      }
    }
  }
  return esm ?? undefined
}

const programUsesCjs = (): boolean => require.cache[entry()] !== undefined && !cjsOurs

/** The apache-arrow build for what this package makes. */
function arrow(): ArrowModule {
  return programUsesCjs() ? loadCjs() : (loadEsm() ?? loadCjs())
}

/** The apache-arrow build whose classes made `value`. */
function buildOf(value: object, fn: string): ArrowModule {
  const loaders = programUsesCjs() ? [loadCjs, loadEsm] : [loadEsm, loadCjs]
  for (const load of loaders) {
    const A = load()
    if (A && (value instanceof A.Table || value instanceof A.RecordBatch || value instanceof A.Vector)) return A
  }
  throw coded(
    codes.INVALID_ARG_TYPE,
    `${fn}: this Arrow value comes from another copy of apache-arrow than ${path.dirname(entry())}; ` +
      'install one version only (npm dedupe) so that both share it',
    TypeError,
  )
}

// ---- recognising Arrow values without loading apache-arrow ---------------------------------

export type ArrowShape = 'table' | 'batch' | 'vector'

const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object'

/** Whether `value` looks like an apache-arrow Table, RecordBatch or Vector; loads nothing. */
export function arrowShape(value: unknown): ArrowShape | undefined {
  if (!isObj(value) || Array.isArray(value) || ArrayBuffer.isView(value)) return undefined
  const proto = Object.getPrototypeOf(value)
  if (proto === Object.prototype || proto === null) return undefined
  if (typeof value.getChild === 'function' && isObj(value.schema) && Array.isArray(value.schema.fields) && typeof value.numRows === 'number') {
    return Array.isArray(value.batches) ? 'table' : 'batch'
  }
  if (isObj(value.type) && typeof value.type.typeId === 'number' && Array.isArray(value.data) && typeof value.get === 'function') return 'vector'
  return undefined
}

// ---- writing a table with 64-byte aligned buffers ------------------------------------------

const up = (n: number): number => Math.ceil(n / ALIGN) * ALIGN
const asBytes = (v: ArrayBufferView): Uint8Array => (v instanceof Uint8Array ? v : new Uint8Array(v.buffer, v.byteOffset, v.byteLength))

type AlignedWriter = Arrow.RecordBatchFileWriter & { chunks: Uint8Array[]; body: boolean[]; base: number }
const writers = new WeakMap<ArrowModule, new () => AlignedWriter>()

/**
 * apache-arrow's file writer pads buffers to 8 bytes. This one starts every message and every
 * body buffer on a 64-byte boundary (the IPC format allows any multiple of 8 and readers follow
 * the offsets in the metadata), counts positions from `base` (where the data lies in the
 * segment, so that the footer's blocks point into the segment as a file), and keeps the chunks
 * instead of concatenating them, so that they are copied once, into the segment.
 */
function alignedWriter(A: ArrowModule): new () => AlignedWriter {
  let W = writers.get(A)
  if (W) return W
  class AlignedFileWriter extends A.RecordBatchFileWriter {
    chunks: Uint8Array[] = []
    /** Whether each chunk is part of a message body. */
    body: boolean[] = []
    /** Where the first chunk lands in the segment. */
    base = 0
    #inBody = false
    protected override _write(chunk: ArrayBufferViewInput): this {
      if (this._started) {
        if (!ArrayBuffer.isView(chunk)) throw new TypeError('the Arrow writer wrote something that is not bytes')
        const b = asBytes(chunk)
        if (b.byteLength > 0) {
          this.chunks.push(b)
          this.body.push(this.#inBody)
          this._position += b.byteLength
        }
      }
      return this
    }
    protected override _writeSchema(): this {
      // "ARROW1" padded to 64 instead of 8, so that the first message starts aligned; the
      // padding's bytes 8 to 11 get the metadata hash once the file is complete. Arrow readers
      // of the segment never look here: the segment's own first bytes are their magic.
      this._position = this.base
      return this._writeMagic()._writePadding(ALIGN - 6)
    }
    protected override _writeMessage<T extends Arrow.MessageHeader>(message: Message<T>): this {
      return super._writeMessage(message, ALIGN)
    }
    protected override _assembleRecordBatch(batch: Arrow.RecordBatch | Arrow.Vector) {
      const r = super._assembleRecordBatch(batch)
      let at = 0
      r.buffers.forEach((b, i) => {
        at = up(at)
        r.bufferRegions[i].offset = at
        r.bufferRegions[i].length = b.byteLength
        at += b.byteLength
      })
      r.byteLength = up(at)
      return r
    }
    protected override _writeBodyBuffers(buffers: ArrayBufferView[]): this {
      const start = this._position
      const pad = (): this => this._writePadding(up(this._position - start) - (this._position - start))
      this.#inBody = true
      for (const b of buffers) {
        if (b.byteLength === 0) continue
        pad()._write(b)
      }
      pad()
      this.#inBody = false
      return this
    }
  }
  W = AlignedFileWriter as unknown as new () => AlignedWriter
  writers.set(A, W)
  return W
}

/*
 * The file carries a 32-bit FNV-1a hash of its metadata (every byte from 64 on that is not in a
 * message body) in bytes 8 to 11 of the padding after the leading "ARROW1", which Arrow readers
 * skip: a fast check against accidents. Against a writer who recomputes it, the reader verifies
 * the metadata in full (see arrowcheck.ts).
 */
const HASH_AT = 8
const FNV_BASIS = 0x811c9dc5

/**
 * The IPC file of `table` as chunks, every buffer 64-byte aligned from the first byte, for a
 * segment whose data starts `base` bytes in.
 */
function ipcChunks(A: ArrowModule, table: Arrow.Table, base: number): { chunks: Uint8Array[]; byteLength: number } {
  const w = new (alignedWriter(A))()
  w.base = base
  w.writeAll(table)
  const { chunks, body } = w
  let h = FNV_BASIS
  let at = 0
  chunks.forEach((c, i) => {
    if (!body[i]) h = fnv(h, c.subarray(Math.max(0, ALIGN - at)))
    at += c.byteLength
  })
  if (chunks[0].byteLength + chunks[1].byteLength !== ALIGN) throw new Error('apache-arrow wrote the file in an unforeseen way')
  const lead = new Uint8Array(ALIGN)
  lead.set(chunks[0])
  new DataView(lead.buffer).setUint32(HASH_AT, h >>> 0, true)
  chunks.splice(0, 2, lead)
  return { chunks, byteLength: at }
}

// ---- tables over shared memory -------------------------------------------------------------

// Handed out, as a vector's JSON is: the owner keeps the segment openable for the receiver
// even if its own table is collected before the message is read (on Windows a segment exists
// only while someone holds it).
function tableJSON(this: object): { $sharedobject: string } {
  return { $sharedobject: handOut(liveMeta(this, 'toJSON')) }
}

/** Makes `t` (a table or batch over `buffer`) answer for its segment: handles, JSON, close, free. */
function adopt<T extends object>(t: T, buffer: ArrayBuffer): T {
  arrowBuffers.set(t, buffer)
  Object.defineProperty(t, 'toJSON', { value: tableJSON, configurable: true, writable: true, enumerable: false })
  return t
}

function readTable(A: ArrowModule, bytes: Uint8Array, rows: number, base: number | undefined): Arrow.Table {
  // Verified metadata in private memory, bodies over the segment: apache-arrow sees nothing else.
  const chunks = verifiedChunks(bytes, base)
  let table: Arrow.Table
  try {
    table = A.tableFromIPC(chunks)
  } catch (e) {
    throw coded(codes.BAD_HEADER, `the segment's Arrow IPC file is corrupt: ${(e as Error).message}`)
  }
  if (table.numRows !== rows) {
    throw coded(codes.BAD_HEADER, `the segment's Arrow IPC file holds ${table.numRows} rows; its header says ${rows}`)
  }
  return table
}

/** The table a segment of kind arrow holds, its column buffers views of the mapping. */
export function tableOf(meta: Meta): Arrow.Table {
  const table = readTable(arrow(), new Uint8Array(meta.buffer, 0, meta.byteLength), meta.length, dataOffsetOf(meta.attributes))
  return adopt(table, meta.buffer as ArrayBuffer)
}

/**
 * An ordinary table from the bytes of a table segment: `open(h, { copy: true })`. With the
 * segment's attributes the footer's offsets are checked against where the data lay; without,
 * only against each other.
 */
export function tableFromBytes(data: Uint8Array, rows: number, attributes?: string): Arrow.Table {
  // A buffer of our own, aligned, that no mapping backs.
  return readTable(arrow(), new Uint8Array(data), rows, attributes === undefined ? undefined : dataOffsetOf(attributes))
}

/** `unshare(table)`: an ordinary table over a private copy of the segment's file. */
export function unshareTable<T>(table: T): T {
  const meta = liveMeta(table, 'unshare')
  const A = buildOf(table as object, 'unshare')
  const copy = readTable(A, new Uint8Array(meta.buffer, 0, meta.byteLength).slice(), meta.length, dataOffsetOf(meta.attributes))
  return (arrowShape(table) === 'batch' && copy.batches.length === 1 ? copy.batches[0] : copy) as T
}

function shareTable(value: Arrow.Table | Arrow.RecordBatch, shape: ArrowShape, o: Resolved): Arrow.Table | Arrow.RecordBatch {
  const A = buildOf(value, 'share')
  const table = shape === 'batch' ? new A.Table(value as Arrow.RecordBatch) : (value as Arrow.Table)
  if (table.numRows < o.minLength && o.name === undefined) return value
  const opts = createOptions('arrow', table.numRows, o)
  const { chunks, byteLength } = ipcChunks(A, table, dataOffsetOf(opts.attributes))
  opts.byteLength = byteLength
  const fill = (into: Uint8Array): Uint8Array => {
    let at = 0
    for (const c of chunks) {
      into.set(c, at)
      at += c.byteLength
    }
    return into
  }
  let info
  if (o.copyOnWrite) {
    // The owner's own view is private then: the bytes must reach the segment through create.
    info = native.create(opts, fill(new Uint8Array(byteLength)))
  } else {
    info = native.create(opts, undefined)
    fill(new Uint8Array(info.buffer, 0, byteLength))
  }
  const meta = created(info)
  const shared = tableOf(meta)
  if (shape === 'batch' && shared.batches.length === 1) return adopt(shared.batches[0], meta.buffer as ArrayBuffer)
  return shared
}

// ---- Arrow vectors shared as ours ----------------------------------------------------------

/** The bit of row `i` in an Arrow validity bitmap (all valid when there is none). */
const validAt = (d: Arrow.Data, i: number): boolean => {
  const bits = d.nullBitmap
  if (d.nullCount === 0 || !bits || bits.length === 0) return true
  const j = d.offset + i
  return (bits[j >> 3] & (1 << (j & 7))) !== 0
}

interface Utf8Chunks {
  n: number
  valuesLength: number
  chunks: { data: Arrow.Data; offsets: ArrayLike<number | bigint>; values: Uint8Array }[]
}

function utf8Chunks(v: Arrow.Vector): Utf8Chunks {
  let valuesLength = 0
  const chunks = v.data.map((d) => {
    const offsets = d.valueOffsets as unknown as ArrayLike<number | bigint>
    const values = (d.values as Uint8Array | undefined) ?? new Uint8Array(0)
    if (d.length > 0) valuesLength += Number(offsets[d.length]) - Number(offsets[0])
    return { data: d, offsets, values }
  })
  return { n: v.length, valuesLength, chunks }
}

/** Writes the strings of Utf8 chunks as our offsets and UTF-8 bytes. */
function writeEntries(u: Utf8Chunks, buf: Uint8Array, layout: StringLayout): void {
  const offsets = new Int32Array(buf.buffer, buf.byteOffset + layout.offsets, u.n + 1)
  let entry = 0
  let pos = 0
  for (const { data, offsets: off, values } of u.chunks) {
    if (data.length === 0) continue
    const first = Number(off[0])
    for (let i = 0; i < data.length; i++) offsets[entry++] = pos + Number(off[i]) - first
    const last = Number(off[data.length])
    buf.set(values.subarray(first, last), layout.values + pos)
    pos += last - first
  }
  offsets[entry] = pos
}

function shareStrings(v: Arrow.Vector, A: ArrowModule, o: Resolved, shareValue: ShareValue): SharedStringVector | undefined {
  const n = v.length
  let layout: StringLayout
  let buf: Uint8Array
  if (v.type.typeId === A.Type.Dictionary) {
    const dictionary = v.data[0]?.dictionary
    const valueType = (v.type as Arrow.Dictionary).dictionary.typeId
    if (valueType !== A.Type.Utf8 && valueType !== A.Type.LargeUtf8) return undefined
    if (!dictionary || v.data.some((d) => d.dictionary !== dictionary)) {
      // Batches with dictionaries of their own: one dictionary is made of their strings.
      return shareValue(v.toArray() as (string | null)[], { ...o, dictionary: true }) as SharedStringVector
    }
    const u = utf8Chunks(dictionary)
    layout = stringLayout(n, u.n, u.valuesLength, true)
    buf = new Uint8Array(layout.values + u.valuesLength)
    writeEntries(u, buf, layout)
    const usable = (e: number): boolean => e >= 0 && e < u.n && dictionary.isValid(e)
    const codesOut = new Int32Array(buf.buffer, layout.codes, n)
    let row = 0
    for (const d of v.data) {
      const keys = d.values as unknown as ArrayLike<number | bigint>
      for (let i = 0; i < d.length; i++, row++) {
        const e = Number(keys[i])
        if (validAt(d, i) && usable(e)) {
          codesOut[row] = e
          buf[layout.validity + (row >> 3)] |= 1 << (row & 7)
        } else codesOut[row] = -1
      }
    }
  } else {
    if (o.dictionary) return shareValue(v.toArray() as (string | null)[], o) as SharedStringVector
    const u = utf8Chunks(v)
    layout = stringLayout(n, n, u.valuesLength, false)
    buf = new Uint8Array(layout.values + u.valuesLength)
    writeEntries(u, buf, layout)
    let row = 0
    for (const d of v.data) for (let i = 0; i < d.length; i++, row++) if (validAt(d, i)) buf[layout.validity + (row >> 3)] |= 1 << (row & 7)
  }
  const info = native.create(createOptions('string', n, o, { byteLength: buf.length, aux: layoutToAux(layout) }), buf)
  const meta = created(info)
  return new SharedStringVector(meta.buffer as ArrayBuffer, meta.length, layout)
}

/** An Arrow vector as one of our vectors, or undefined when no kind of ours holds its type. */
function shareVector(v: Arrow.Vector, o: Resolved, shareValue: ShareValue): SharedVector | undefined {
  const A = buildOf(v, 'share')
  if (o.kind !== undefined) return shareValue(Array.from(v.toArray() as ArrayLike<unknown>), o) as unknown as SharedVector
  const { typeId } = v.type
  if (typeId === A.Type.Float) {
    const precision = (v.type as Arrow.Float).precision
    if (precision === A.Precision.HALF) return undefined
    const Ctor = precision === A.Precision.SINGLE ? Float32Array : Float64Array
    const values = new Ctor(v.length)
    values.set(v.toArray() as Float64Array)
    // R's NA of a double is NaN: Arrow's nulls become NaN.
    if (v.nullCount > 0) for (let i = 0; i < v.length; i++) if (!v.isValid(i)) values[i] = NaN
    return shareValue(values, o) as SharedVector
  }
  if (typeId === A.Type.Int) {
    const t = v.type as Arrow.Int
    if (v.nullCount > 0) {
      throw coded(
        codes.INVALID_ARG_VALUE,
        `share: this ${String(t)} Arrow vector has nulls, which integer vectors cannot hold; share it inside a Table, which keeps them`,
        TypeError,
      )
    }
    return shareValue(v.toArray() as NumericVector, o) as SharedVector
  }
  if (typeId === A.Type.Bool) {
    const c = new Int8Array(v.length)
    for (let i = 0; i < v.length; i++) {
      const b = v.get(i) as boolean | null
      c[i] = b === null ? -1 : b ? 1 : 0
    }
    return shareValue(new SharedLogicalVector(c), o) as SharedVector
  }
  if (typeId === A.Type.Utf8 || typeId === A.Type.LargeUtf8 || typeId === A.Type.Dictionary) return shareStrings(v, A, o, shareValue)
  return undefined
}

/**
 * How an Arrow vector that maps to no layout of ours directly (another type asked for, nulls in
 * floats, booleans) is shared once converted: the caller's own `share`, handed in, so that this
 * module of one kind of value never imports the verb.
 */
export type ShareValue = (value: unknown, o: Resolved) => unknown

/**
 * Shares an Arrow value: a Table (or RecordBatch) as one segment holding its IPC file, given back
 * as a Table (RecordBatch) over the shared memory; a Vector as the vector of ours its type maps to.
 * Values of other Arrow types stay as they are, or throw with `mustWork`.
 */
export function shareArrow(value: unknown, shape: ArrowShape, o: Resolved, shareValue: ShareValue): unknown {
  if (shape !== 'vector') {
    if (o.kind !== undefined) throw coded(codes.INVALID_ARG_TYPE, 'share: kind belongs to vectors, not to Arrow tables', TypeError)
    return shareTable(value as Arrow.Table, shape, o)
  }
  const v = value as Arrow.Vector
  if (v.length < o.minLength && o.name === undefined) return value
  const shared = shareVector(v, o, shareValue)
  if (shared !== undefined) return shared
  if (o.mustWork) {
    throw coded(
      codes.INVALID_ARG_TYPE,
      `share: an Arrow vector of type ${String(v.type)} has no vector kind here; share a Table holding it, which keeps every Arrow type`,
      TypeError,
    )
  }
  return value
}

// ---- our vectors seen as Arrow vectors -----------------------------------------------------

function countNulls(validity: Uint8Array, n: number): number {
  let valid = 0
  for (let i = 0; i < n; i++) if (validity[i >> 3] & (1 << (i & 7))) valid++
  return n - valid
}

function arrowType(A: ArrowModule, kind: NumericKind): Arrow.DataType {
  switch (kind) {
    case 'float64':
      return new A.Float64()
    case 'float32':
      return new A.Float32()
    case 'int8':
      return new A.Int8()
    case 'uint8':
    case 'uint8clamped':
      return new A.Uint8()
    case 'int16':
      return new A.Int16()
    case 'uint16':
      return new A.Uint16()
    case 'int32':
      return new A.Int32()
    case 'uint32':
      return new A.Uint32()
    case 'int64':
      return new A.Int64()
    case 'uint64':
      return new A.Uint64()
  }
}

/**
 * An Arrow vector over the same memory as `vector`, with no copy: a numeric vector becomes the
 * Arrow vector of its type (NaN stays a value, not a null), a string vector a Utf8 vector over
 * its offsets, bytes and validity, a dictionary string vector a Dictionary(Utf8, Int32) over its
 * codes and unique strings. A logical vector is the one copy: Arrow packs booleans in bits, so
 * it becomes a Bool vector of its own (NA as null); `toArrow(v.codes)` views the codes in place
 * as an Int8 vector instead.
 */
export function toArrow(vector: Float64Array): Arrow.Vector<Arrow.Float64>
export function toArrow(vector: Float32Array): Arrow.Vector<Arrow.Float32>
export function toArrow(vector: Int8Array): Arrow.Vector<Arrow.Int8>
export function toArrow(vector: Uint8Array | Uint8ClampedArray): Arrow.Vector<Arrow.Uint8>
export function toArrow(vector: Int16Array): Arrow.Vector<Arrow.Int16>
export function toArrow(vector: Uint16Array): Arrow.Vector<Arrow.Uint16>
export function toArrow(vector: Int32Array): Arrow.Vector<Arrow.Int32>
export function toArrow(vector: Uint32Array): Arrow.Vector<Arrow.Uint32>
export function toArrow(vector: BigInt64Array): Arrow.Vector<Arrow.Int64>
export function toArrow(vector: BigUint64Array): Arrow.Vector<Arrow.Uint64>
export function toArrow(vector: SharedLogicalVector): Arrow.Vector<Arrow.Bool>
export function toArrow(vector: SharedStringVector): Arrow.Vector<Arrow.Utf8 | Arrow.Dictionary<Arrow.Utf8, Arrow.Int32>>
export function toArrow(vector: SharedVector): Arrow.Vector
export function toArrow(vector: SharedVector): Arrow.Vector {
  if (metaOf(vector)) liveMeta(vector, 'toArrow')
  const kind = numericKindOf(vector)
  if (kind) {
    const A = arrow()
    const v = vector as NumericVector
    const values = kind === 'uint8clamped' ? new Uint8Array(v.buffer, v.byteOffset, v.length) : v
    return A.makeVector(A.makeData({ type: arrowType(A, kind) as Arrow.Float64, data: values as Float64Array, length: v.length, nullCount: 0 }))
  }
  if (vector instanceof SharedStringVector) {
    const A = arrow()
    const n = vector.length
    const s = stringSections(vector)
    const nullCount = countNulls(s.validity, n)
    if (!s.codes) {
      return A.makeVector(A.makeData({ type: new A.Utf8(), length: n, nullCount, nullBitmap: s.validity, valueOffsets: s.offsets, data: s.values }))
    }
    const k = s.offsets.length - 1
    const dictionary = A.makeVector(A.makeData({ type: new A.Utf8(), length: k, nullCount: 0, valueOffsets: s.offsets, data: s.values }))
    return A.makeVector(
      A.makeData({ type: new A.Dictionary(new A.Utf8(), new A.Int32()), length: n, nullCount, nullBitmap: s.validity, data: s.codes, dictionary }),
    )
  }
  if (vector instanceof SharedLogicalVector) {
    const A = arrow()
    const c = vector.codes
    const n = c.length
    const bits = new Uint8Array(Math.ceil(n / 8))
    const valid = new Uint8Array(Math.ceil(n / 8))
    let nulls = 0
    for (let i = 0; i < n; i++) {
      if (c[i] === 1) bits[i >> 3] |= 1 << (i & 7)
      if (c[i] === 0 || c[i] === 1) valid[i >> 3] |= 1 << (i & 7)
      else nulls++
    }
    return A.makeVector(A.makeData({ type: new A.Bool(), length: n, nullCount: nulls, nullBitmap: nulls ? valid : undefined, data: bits }))
  }
  throw coded(codes.INVALID_ARG_TYPE, 'toArrow: takes a numeric, logical or string vector', TypeError)
}
