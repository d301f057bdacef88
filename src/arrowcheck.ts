/**
 * Arrow metadata verified, not trusted. A table segment's IPC file is written by whoever can
 * write the segment; its 32-bit hash is a check against accidents, not against a writer who
 * recomputes it, and apache-arrow's reader trusts its flatbuffers (crafted ones made it spin or
 * run out of heap). So every message's metadata (and the footer) is copied into private memory,
 * verified there in full, and only that private copy reaches apache-arrow, as a stream of
 * chunks: private metadata, then a view of the shared body, message by message. A writer that
 * changes the segment after the check changes data, never the metadata that was checked.
 *
 * The verifier is hand-written TypeScript (a bounded walk over Arrow's Message, Schema, Field,
 * RecordBatch, DictionaryBatch and Footer tables), not a Rust flatbuffers verifier: the bytes are
 * parsed by apache-arrow in JavaScript anyway, and this keeps the rules beside the reader that
 * relies on them. Every offset is checked against the private copy, nesting is at most
 * `MAX_NESTING` deep, every table visit is counted, and every buffer must lie in its message's
 * body, which must lie in the file: time and memory are linear in the metadata's size.
 */
import { codes, coded } from './errors'

const ALIGN = 64
/** Bytes 8 to 11 of the padding after "ARROW1": FNV-1a of the metadata, against accidents. */
const HASH_AT = 8
const FNV_BASIS = 0x811c9dc5
const FNV_PRIME = 0x01000193
export const fnv = (h: number, b: Uint8Array): number => {
  for (let i = 0; i < b.length; i++) h = Math.imul(h ^ b[i], FNV_PRIME)
  return h
}

/** The deepest nesting of fields (a list of structs of lists ...) accepted. */
export const MAX_NESTING = 64
/** The most flatbuffer tables one file's metadata may hold. */
const MAX_TABLES = 1 << 20
/** The most rows in one record batch (apache-arrow indexes with 32-bit integers). */
const MAX_ROWS = 2 ** 31 - 1

const bad = (why: string) => coded(codes.BAD_HEADER, `the segment's Arrow IPC file is corrupt: ${why}`)
const MAGIC = [0x41, 0x52, 0x52, 0x4f, 0x57, 0x31] // "ARROW1"
const magicAt = (b: Uint8Array, at: number): boolean => MAGIC.every((c, i) => b[at + i] === c)

// ---- a bounded flatbuffer reader ----------------------------------------------------------

/** What a field of a table holds. */
type FieldSpec =
  | { k: 'scalar'; size: number }
  | { k: 'string' }
  | { k: 'table'; t: TableName }
  | { k: 'structs'; size: number } // a vector of scalars or structs of `size` bytes
  | { k: 'tables'; t: TableName }
  | { k: 'union'; types: Record<number, TableName> }

type TableName =
  | 'Empty' | 'Scalar1' | 'Int' | 'FloatingPoint' | 'Decimal' | 'Time' | 'Timestamp' | 'Union' | 'KeyValue'
  | 'DictionaryEncoding' | 'Field' | 'Schema' | 'BodyCompression' | 'RecordBatch' | 'DictionaryBatch' | 'Message' | 'Footer'
const s = (size: number): FieldSpec => ({ k: 'scalar', size })
const str: FieldSpec = { k: 'string' }
const tab = (t: TableName): FieldSpec => ({ k: 'table', t })
const vec = (size: number): FieldSpec => ({ k: 'structs', size })
const tabs = (t: TableName): FieldSpec => ({ k: 'tables', t })

/** Arrow's Type union: every type table and what it holds. */
const TYPE_UNION: Record<number, TableName> = {
  1: 'Empty', 2: 'Int', 3: 'FloatingPoint', 4: 'Empty', 5: 'Empty', 6: 'Empty', 7: 'Decimal', 8: 'Scalar1', 9: 'Time',
  10: 'Timestamp', 11: 'Scalar1', 12: 'Empty', 13: 'Empty', 14: 'Union', 15: 'Scalar1', 16: 'Scalar1', 17: 'Scalar1',
  18: 'Scalar1', 19: 'Empty', 20: 'Empty', 21: 'Empty', 22: 'Empty', 23: 'Empty', 24: 'Empty', 25: 'Empty', 26: 'Empty',
}
export const TYPE_NULL = 1

/** Arrow's Schema.fbs, Message.fbs and File.fbs, field by field (in field-id order). */
const TABLES: Record<TableName, FieldSpec[]> = {
  Empty: [],
  Scalar1: [s(1)], // one scalar (checked to lie in the table): a unit, byteWidth, listSize, keysSorted
  Int: [s(4), s(1)],
  FloatingPoint: [s(2)],
  Decimal: [s(4), s(4), s(4)],
  Time: [s(2), s(4)],
  Timestamp: [s(2), str],
  Union: [s(2), vec(4)],
  KeyValue: [str, str],
  DictionaryEncoding: [s(8), tab('Int'), s(1), s(2)],
  Field: [str, s(1), s(1), { k: 'union', types: TYPE_UNION }, tab('DictionaryEncoding'), tabs('Field'), tabs('KeyValue')],
  Schema: [s(2), tabs('Field'), tabs('KeyValue'), vec(8)],
  BodyCompression: [s(1), s(1)],
  RecordBatch: [s(8), vec(16), vec(16), tab('BodyCompression'), vec(8)],
  DictionaryBatch: [s(8), tab('RecordBatch'), s(1)],
  Message: [s(2), s(1), { k: 'union', types: { 1: 'Schema', 2: 'DictionaryBatch', 3: 'RecordBatch' } }, s(8), tabs('KeyValue')],
  Footer: [s(2), tab('Schema'), vec(24), vec(24), tabs('KeyValue')],
}

/** A flatbuffer in private memory, verified before any field is read. */
class Flat {
  private tables = 0
  readonly dv: DataView
  constructor(readonly b: Uint8Array) {
    this.dv = new DataView(b.buffer, b.byteOffset, b.byteLength)
  }

  private need(at: number, size: number, what: string): void {
    if (!(at >= 0 && size >= 0 && at + size <= this.b.length)) throw bad(`${what} at ${at} runs outside its metadata`)
  }

  /** Where field `i` of the table at `t` is, or 0 when absent. The table is verified already. */
  field(t: number, i: number): number {
    const vt = t - this.dv.getInt32(t, true)
    const vsize = this.dv.getUint16(vt, true)
    const at = 4 + 2 * i
    if (at + 2 > vsize) return 0
    const o = this.dv.getUint16(vt + at, true)
    return o === 0 ? 0 : t + o
  }
  /** The target of the offset stored at `p`. */
  deref(p: number): number {
    return p + this.dv.getUint32(p, true)
  }
  u8(t: number, i: number, dflt = 0): number {
    const p = this.field(t, i)
    return p ? this.dv.getUint8(p) : dflt
  }
  i64(t: number, i: number): bigint {
    const p = this.field(t, i)
    return p ? this.dv.getBigInt64(p, true) : 0n
  }
  /** The table field `i` points to, or 0. */
  sub(t: number, i: number): number {
    const p = this.field(t, i)
    return p ? this.deref(p) : 0
  }
  /** The element count and first element of the vector field `i` points to. */
  vector(t: number, i: number): { n: number; at: number } {
    const p = this.field(t, i)
    if (!p) return { n: 0, at: 0 }
    const v = this.deref(p)
    return { n: this.dv.getUint32(v, true), at: v + 4 }
  }

  /** Verifies the table at `t` and everything it reaches, `depth` tables deep. */
  verify(t: number, name: TableName, depth: number): void {
    if (depth > MAX_NESTING * 2 + 8) throw bad(`its metadata nest deeper than ${MAX_NESTING} fields`)
    if (++this.tables > MAX_TABLES) throw bad(`its metadata hold more than ${MAX_TABLES} tables`)
    this.need(t, 4, name)
    const vt = t - this.dv.getInt32(t, true)
    this.need(vt, 4, `${name}'s vtable`)
    const vsize = this.dv.getUint16(vt, true)
    const tsize = this.dv.getUint16(vt + 2, true)
    if (vsize < 4 || vsize % 2 !== 0 || tsize < 4) throw bad(`${name}'s vtable is malformed`)
    this.need(vt, vsize, `${name}'s vtable`)
    this.need(t, tsize, name)
    const specs: FieldSpec[] = TABLES[name]
    // Fields past the ones known here (a newer writer's) are checked to lie in the table only.
    for (let i = 0; 4 + 2 * i + 2 <= vsize; i++) {
      const o = this.dv.getUint16(vt + 4 + 2 * i, true)
      if (o === 0) continue
      const spec = specs[i]
      const size = spec === undefined ? 1 : spec.k === 'scalar' ? spec.size : 4
      if (o + size > tsize) throw bad(`a field of ${name} runs outside it`)
      if (spec === undefined || spec.k === 'scalar') continue
      const p = t + o
      const target = this.deref(p)
      switch (spec.k) {
        case 'string': {
          this.need(target, 4, 'a string')
          this.need(target + 4, this.dv.getUint32(target, true) + 1, 'a string')
          break
        }
        case 'table':
          this.verify(target, spec.t, depth + 1)
          break
        case 'structs': {
          this.need(target, 4, 'a vector')
          const n = this.dv.getUint32(target, true)
          this.need(target + 4, n * spec.size, 'a vector')
          break
        }
        case 'tables': {
          this.need(target, 4, 'a vector')
          const n = this.dv.getUint32(target, true)
          this.need(target + 4, n * 4, 'a vector')
          for (let k = 0; k < n; k++) this.verify(this.deref(target + 4 + 4 * k), spec.t, depth + 1)
          break
        }
        case 'union': {
          // The union's type is the field before it.
          const type = this.u8(t, i - 1)
          const member = spec.types[type]
          if (member === undefined) throw bad(`${name} holds a ${type === 0 ? 'missing' : `an unknown (${type})`} type`)
          this.verify(target, member, depth + 1)
          break
        }
      }
    }
  }

  /** Verifies a whole buffer whose root is a `name` table. */
  root(name: TableName): number {
    this.need(0, 4, 'the root offset')
    const t = this.deref(0)
    this.verify(t, name, 0)
    return t
  }
}

// ---- what the verified metadata say ---------------------------------------------------------

/** A schema field, as far as the record batches depend on it. */
interface FieldInfo {
  type: number
  dictionary: bigint | undefined
  children: FieldInfo[]
}

/** The fields in vector field `i` of the table at `t` (a Schema's fields, a Field's children). */
function fieldsOf(f: Flat, t: number, i: number, depth: number): FieldInfo[] {
  if (depth > MAX_NESTING) throw bad(`its fields nest deeper than ${MAX_NESTING} levels`)
  const { n, at } = f.vector(t, i)
  const out: FieldInfo[] = []
  for (let k = 0; k < n; k++) {
    const ft = f.deref(at + 4 * k)
    const dict = f.sub(ft, 4)
    out.push({ type: f.u8(ft, 2), dictionary: dict ? f.i64(dict, 0) : undefined, children: fieldsOf(f, ft, 5, depth + 1) })
  }
  return out
}

/** The field types a record batch's nodes follow, in order (pre-order; a dictionary field is its indices alone). */
function nodeTypes(fields: FieldInfo[], out: number[]): number[] {
  for (const field of fields) {
    if (field.dictionary !== undefined) {
      out.push(2) // the indices, an Int
      continue
    }
    out.push(field.type)
    nodeTypes(field.children, out)
  }
  return out
}

function findDictionary(fields: FieldInfo[], id: bigint): FieldInfo | undefined {
  for (const field of fields) {
    if (field.dictionary === id) return field
    const inner = findDictionary(field.children, id)
    if (inner) return inner
  }
  return undefined
}

/** Checks a RecordBatch table against the node types it must follow and its body's size. */
function checkBatch(f: Flat, rb: number, types: number[], bodyLength: number): void {
  const rows = f.i64(rb, 0)
  if (rows < 0n || rows > BigInt(MAX_ROWS)) throw bad(`a record batch of ${rows} rows`)
  if (f.sub(rb, 3)) throw bad('a compressed record batch (this package writes none)')
  const nodes = f.vector(rb, 1)
  if (nodes.n !== types.length) throw bad(`a record batch with ${nodes.n} field nodes where its schema has ${types.length}`)
  // A node of any type but Null has its values in the body: at most 8 per byte (bits), plus slack.
  const most = BigInt(bodyLength) * 8n + 512n
  for (let k = 0; k < nodes.n; k++) {
    const length = f.dv.getBigInt64(nodes.at + 16 * k, true)
    const nulls = f.dv.getBigInt64(nodes.at + 16 * k + 8, true)
    const cap = types[k] === TYPE_NULL ? BigInt(MAX_ROWS) : most < BigInt(MAX_ROWS) ? most : BigInt(MAX_ROWS)
    if (length < 0n || length > cap || nulls < 0n || nulls > length) throw bad(`a field node of ${length} values (${nulls} null)`)
  }
  const buffers = f.vector(rb, 2)
  for (let k = 0; k < buffers.n; k++) {
    const offset = f.dv.getBigInt64(buffers.at + 16 * k, true)
    const length = f.dv.getBigInt64(buffers.at + 16 * k + 8, true)
    if (offset < 0n || length < 0n || offset + length > BigInt(bodyLength)) throw bad(`a buffer (${length} bytes at ${offset}) outside its message's body`)
  }
}

/** A message of the file: where it starts, its metadata's length (with its 8-byte prefix), its body's. */
interface Block {
  offset: bigint
  meta: number
  body: bigint
}

/**
 * The footer's blocks must be the messages the walk verified, in order, their offsets counted from
 * the segment's start (`base` is where `b` begins in it; inferred from the first block when the
 * bytes are a copy): readers of the segment's path (pyarrow, polars) follow the footer, and must
 * find there what apache-arrow reads here.
 */
function checkBlocks(blocks: Map<number, Block[]>, walked: Map<number, Block[]>, base: number | undefined): void {
  const first = walked.get(2)?.[0] ?? walked.get(3)?.[0]
  const firstBlock = walked.get(2)?.length ? blocks.get(2)?.[0] : blocks.get(3)?.[0]
  const shift = base !== undefined ? BigInt(base) : first && firstBlock ? firstBlock.offset - first.offset : 0n
  if (shift < 0n || shift % BigInt(ALIGN) !== 0n) throw bad('the footer names its blocks from an unaligned start')
  for (const kind of [2, 3]) {
    const want = walked.get(kind) ?? []
    const got = blocks.get(kind) ?? []
    if (got.length !== want.length) throw bad(`the footer names ${got.length} ${kind === 2 ? 'dictionary' : 'record'} batches, the file holds ${want.length}`)
    want.forEach((w, k) => {
      const g = got[k]
      if (g.offset !== w.offset + shift || g.meta !== w.meta || g.body !== w.body) throw bad(`the footer's block ${k} is not the message at byte ${w.offset}`)
    })
  }
}

/**
 * Verifies the IPC file in `b` (the data of a table segment, which starts `base` bytes into the
 * segment: the footer's offsets count from there) and returns it as stream chunks for
 * apache-arrow: each message's metadata as a private, verified copy, each body as a view of `b`,
 * then the end-of-stream marker.
 */
export function verifiedChunks(b: Uint8Array, base?: number): Uint8Array[] {
  const n = b.length
  if (n < ALIGN + 8 + 10 || !magicAt(b, 0) || !magicAt(b, n - 6)) throw bad('it does not start and end with "ARROW1"')
  const dv = new DataView(b.buffer, b.byteOffset, n)
  const expected = dv.getUint32(HASH_AT, true)
  // The footer first: this writer puts the schema there only, as the file format allows.
  const footerLength = dv.getInt32(n - 10, true)
  const end = n - 10 - footerLength - 8 // where the end-of-stream marker must be
  if (footerLength <= 0 || footerLength % 8 !== 0 || end < ALIGN) throw bad('the footer does not end the file')
  const tail = b.slice(end, n)
  const footer = new Flat(tail.subarray(8, 8 + footerLength))
  const ft = footer.root('Footer')
  // The footer's blocks: field 2 the dictionary batches, field 3 the record batches.
  const blocks = new Map<number, Block[]>()
  for (const [i, kind] of [[2, 2], [3, 3]]) {
    const list = footer.vector(ft, i)
    const out: Block[] = []
    for (let k = 0; k < list.n; k++) {
      const at = list.at + 24 * k
      out.push({ offset: footer.dv.getBigInt64(at, true), meta: footer.dv.getInt32(at + 8, true), body: footer.dv.getBigInt64(at + 16, true) })
    }
    blocks.set(kind, out)
  }
  const schemaAt = footer.sub(ft, 1)
  if (!schemaAt) throw bad('no schema')
  const schemaMessage = messageOfSchema(footer.b, schemaAt)
  const sm = new Flat(schemaMessage.subarray(8))
  const fields = fieldsOf(sm, sm.sub(sm.root('Message'), 2), 1, 0)
  const types = nodeTypes(fields, [])
  const chunks: Uint8Array[] = [schemaMessage]
  const walked = new Map<number, Block[]>([[2, []], [3, []]])
  let h = FNV_BASIS
  let pos = ALIGN
  while (pos < end) {
    if (pos + 8 > end || dv.getInt32(pos, true) !== -1) throw bad(`no message at byte ${pos}`)
    const len = dv.getInt32(pos + 4, true)
    if (len <= 0 || len % 8 !== 0 || pos + 8 + len > end) throw bad(`the message at byte ${pos} runs past the end`)
    // The copy is what is verified and what apache-arrow reads: later writes to the segment cannot reach it.
    const copy = b.slice(pos, pos + 8 + len)
    h = fnv(h, copy)
    const f = new Flat(copy.subarray(8))
    const m = f.root('Message')
    const version = f.field(m, 0) ? f.dv.getInt16(f.field(m, 0), true) : 0
    if (version < 3 || version > 4) throw bad(`a message of metadata version ${version} (V4 and V5 are read)`)
    const bodyLength = f.i64(m, 3)
    if (bodyLength < 0n || BigInt(pos + 8 + len) + bodyLength > BigInt(end)) throw bad(`the message at byte ${pos} has a body past the end`)
    const body = Number(bodyLength)
    const kind = f.u8(m, 1)
    const header = f.sub(m, 2)
    if (!header) throw bad(`the message at byte ${pos} has no header`)
    if (kind === 3) {
      checkBatch(f, header, types, body)
    } else if (kind === 2) {
      const id = f.i64(header, 0)
      const field = findDictionary(fields, id)
      if (!field) throw bad(`a dictionary (id ${id}) that no field uses`)
      const rb = f.sub(header, 1)
      if (!rb) throw bad('a dictionary batch without data')
      checkBatch(f, rb, nodeTypes([{ ...field, dictionary: undefined }], []), body)
    } else {
      throw bad(`a message of type ${kind} among the record batches`)
    }
    walked.get(kind)?.push({ offset: BigInt(pos), meta: 8 + len, body: bodyLength })
    chunks.push(copy)
    if (body > 0) chunks.push(b.subarray(pos + 8 + len, pos + 8 + len + body))
    pos += 8 + len + body
  }
  if (pos !== end || dv.getInt32(end, true) !== -1 || dv.getInt32(end + 4, true) !== 0) throw bad('the messages do not end where the footer begins')
  h = fnv(h, tail)
  if (h >>> 0 !== expected) throw bad('its metadata differ from what was written')
  checkBlocks(blocks, walked, base)
  chunks.push(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]))
  return chunks
}

/**
 * A schema message for the stream apache-arrow reads, made around the footer's verified Schema
 * table (at `schemaAt` in `footer`): a small Message table (version V5, header Schema) placed
 * before a copy of the footer, its header offset pointing forward into it.
 */
function messageOfSchema(footer: Uint8Array, schemaAt: number): Uint8Array {
  const T = 16 // the Message table; its vtable at 4, the root offset at 0
  const F = 32 // the footer's copy
  const size = F + footer.length
  const out = new Uint8Array(8 + ((size + 7) & ~7))
  const dv = new DataView(out.buffer)
  dv.setInt32(0, -1, true)
  dv.setInt32(4, out.length - 8, true)
  const m = new DataView(out.buffer, 8)
  m.setUint32(0, T, true)
  // vtable: its size, the table's size, then fields 0 (version), 1 (header type), 2 (header)
  m.setUint16(4, 10, true)
  m.setUint16(6, 12, true)
  m.setUint16(8, 4, true)
  m.setUint16(10, 6, true)
  m.setUint16(12, 8, true)
  m.setInt32(T, T - 4, true)
  m.setInt16(T + 4, 4, true) // MetadataVersion V5
  m.setUint8(T + 6, 1) // MessageHeader Schema
  m.setUint32(T + 8, F + schemaAt - (T + 8), true)
  out.set(footer, 8 + F)
  return out
}
