// Arrow: a table shared by Node is one segment that other Node processes, pyarrow, DuckDB and C
// read in place; shared vectors are seen as Arrow vectors; Arrow vectors are shared as ours.
import test from 'ava'
import { fork, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import * as A from 'apache-arrow'
import so from '@sharedobject/core'
import { spawnChild, sharedChild, run, fixture, isLinux, can, when } from './helpers.mjs'
import { pythonEnv } from '../scripts/python-env.mjs'

const child = sharedChild(test)

/** The column types the issue names, with nulls in every column but x. */
function frame(n = 1000) {
  return new A.Table({
    x: A.makeVector(Float64Array.from({ length: n }, (_, i) => i * 0.25)),
    i: A.vectorFromArray(Array.from({ length: n }, (_, i) => (i % 7 === 3 ? null : i - 500)), new A.Int32()),
    d: A.vectorFromArray(
      Array.from({ length: n }, (_, i) => (i % 11 === 5 ? null : ['red', 'green', 'blue'][i % 3])),
      new A.Dictionary(new A.Utf8(), new A.Int32()),
    ),
    s: A.vectorFromArray(Array.from({ length: n }, (_, i) => (i % 13 === 0 ? null : `row ${i} ç😀`)), new A.Utf8()),
    b: A.vectorFromArray(Array.from({ length: n }, (_, i) => (i % 5 === 0 ? null : i % 2 === 0)), new A.Bool()),
  })
}

/** Every column as plain values. */
const columns = (table) => Object.fromEntries(table.schema.fields.map((f) => [f.name, Array.from(table.getChild(f.name))]))

/** Every buffer behind a table's columns (validity, offsets, values, dictionaries). */
function buffersOf(table) {
  const out = []
  const walk = (d) => {
    for (const k of ['values', 'valueOffsets', 'nullBitmap']) if (d[k]?.byteLength) out.push(d[k])
    d.children.forEach(walk)
    if (d.dictionary) d.dictionary.data.forEach(walk)
  }
  for (const f of table.schema.fields) table.getChild(f.name).data.forEach(walk)
  return out
}

/**
 * What a reader sees of a table it opens: run in a child (sent as source). The table stays open
 * in `globalThis.kept` for later calls.
 */
function readTable(so, h) {
  const t = so.open(h)
  globalThis.kept.push(t)
  const bufs = []
  const walk = (d) => {
    for (const k of ['values', 'valueOffsets', 'nullBitmap']) if (d[k]?.byteLength) bufs.push(d[k])
    d.children.forEach(walk)
    if (d.dictionary) d.dictionary.data.forEach(walk)
  }
  for (const f of t.schema.fields) t.getChild(f.name).data.forEach(walk)
  const mapping = bufs[0].buffer
  return {
    kind: so.properties(t).kind,
    rows: t.numRows,
    columns: Object.fromEntries(t.schema.fields.map((f) => [f.name, Array.from(t.getChild(f.name))])),
    buffers: bufs.length,
    oneMapping: bufs.every((b) => b.buffer === mapping) && mapping.byteLength === so.properties(t).byteLength,
    aligned: bufs.every((b) => b.byteOffset % 64 === 0),
  }
}

test('share(table) is one arrow segment whose column buffers are 64-byte aligned views; handles, JSON, unshare and close work', (t) => {
  const table = frame()
  const shared = so.share(table)
  t.true(shared instanceof A.Table)
  t.true(so.isShared(shared))
  const p = so.properties(shared)
  t.like(p, { kind: 'arrow', length: 1000, ownData: true })
  const h = so.handleOf(shared)
  t.true(h.length < 100)
  t.is(JSON.stringify({ shared }), JSON.stringify({ shared: { $sharedobject: h } }))
  t.deepEqual(columns(shared), columns(table))

  const bufs = buffersOf(shared)
  t.is(bufs.length, 12, 'x: values; i, b: validity, values; s: validity, offsets, bytes; d: validity, codes, dictionary offsets and bytes')
  const mapping = bufs[0].buffer
  t.true(bufs.every((b) => b.buffer === mapping), 'every column buffer is a view of the segment')
  t.is(mapping.byteLength, p.byteLength)
  t.true(bufs.every((b) => b.byteOffset % 64 === 0), 'every buffer starts on a 64-byte boundary of the data')
  t.is(String.fromCharCode(...new Uint8Array(mapping, 0, 6)), 'ARROW1')

  const copy = so.unshare(shared)
  t.true(copy instanceof A.Table)
  t.false(so.isShared(copy))
  t.deepEqual(columns(copy), columns(table))
  t.true(buffersOf(copy).every((b) => b.buffer !== mapping))

  t.true(so.close(shared))
  t.false(so.isShared(shared))
  t.throws(() => so.handleOf(shared), { code: 'ERR_SHM_CLOSED' })
  const values = shared.getChild('x').data[0].values
  // A SharedArrayBuffer cannot be detached: its views keep their length and read zeros.
  if (can.sharedBuffers) t.true(values.every((v) => v === 0), 'a closed table reads zeros, never unmapped memory')
  else t.is(values.length, 0, 'a closed table reads as empty, never unmapped memory')
})

test.serial('four processes open a shared table in place, and see the owner’s writes', async (t) => {
  const table = so.share(frame())
  const h = so.handleOf(table)
  const readers = await Promise.all([1, 2, 3, 4].map(() => spawnChild()))
  t.teardown(() => Promise.all(readers.map((r) => r.exit())))
  const expected = { kind: 'arrow', rows: 1000, columns: columns(frame()), buffers: 12, oneMapping: true, aligned: true }
  const seen = await Promise.all(readers.map((r) => r.run((so, h, src) => new Function(`return ${src}`)()(so, h), h, readTable.toString())))
  for (const s of seen) t.deepEqual(s, expected)
  // The same pages: a write by the owner is what every reader reads next.
  table.getChild('x').data[0].values[7] = 1234.5
  const after = await Promise.all(readers.map((r) => r.run(() => globalThis.kept.at(-1).getChild('x').get(7))))
  t.deepEqual(after, [1234.5, 1234.5, 1234.5, 1234.5])
  so.close(table)
})

/** What DuckDB's query over the table must give: per colour, count, sum(x), count(s), sum(i), count of true b. */
function groupsOf(cols) {
  const groups = new Map()
  cols.d.forEach((d, r) => {
    const g = groups.get(d) ?? { n: 0, sx: 0, ns: 0, si: 0, nb: 0 }
    g.n++
    g.sx += cols.x[r]
    g.ns += cols.s[r] === null ? 0 : 1
    g.si += cols.i[r] ?? 0
    g.nb += cols.b[r] === true ? 1 : 0
    groups.set(d, g)
  })
  return ['blue', 'green', 'red', null].map((d) => [d, ...Object.values(groups.get(d))])
}

for (const [place, options, pathForm] of [
  ['an unnamed segment (a memfd)', {}, /^\/proc\/\d+\/fd\/\d+$/],
  ['a named segment', { named: true, attributes: { source: 'pyarrow test, wörld' } }, /^\/dev\/shm\/sobj\.[a-z0-9]+$/],
]) {
  when(can.python, test.serial)(`the path of ${place} is an Arrow file: pyarrow and polars open it as it is, mapped without a copy, and DuckDB queries it`, async (t) => {
    const table = frame()
    const shared = so.share(table, options)
    t.teardown(() => so.close(shared))
    const file = so.properties(shared).path
    t.regex(file, pathForm)
    const sql = 'select d, count(*) as n, sum(x) as sx, count(s) as ns, sum(i) as si, count_if(b) as nb from tbl group by d order by d nulls last'
    const { stdout } = await run(pythonEnv(), [fixture('arrow_read.py'), file, sql], { maxBuffer: 64 << 20 })
    const got = JSON.parse(stdout)
    const cols = columns(table)
    t.is(got.rows, 1000)
    t.deepEqual(got.types, { x: 'double', i: 'int32', d: 'dictionary<values=string, indices=int32, ordered=0>', s: 'string', b: 'bool' })
    t.deepEqual(got.by_path, cols, 'pyarrow.ipc.open_file(path)')
    t.deepEqual(got.columns, cols, 'pyarrow.ipc.open_file(pyarrow.memory_map(path))')
    t.deepEqual(got.polars, cols, `polars ${got.polars_version}: read_ipc(path, memory_map=True)`)
    t.is(got.size, fs.statSync(file).size, 'the whole file, up to its trailing "ARROW1", is the segment')
    t.is(got.buffers, 12)
    t.true(got.views, 'every buffer pyarrow reads lies inside the mapped segment')
    t.true(got.aligned, 'and starts 64-byte aligned')
    t.is(got.allocated, 0, 'pyarrow allocated nothing to read the table')
    t.true(got.polars_mapped, "polars' float64 column lies in a mapping of the segment's file")
    t.deepEqual(got.query, groupsOf(cols))
  })
}

test.serial('a table counts its opens in its header: handleOf(table, { opens: 1 }) lets go after one open by another process', async (t) => {
  const a = await spawnChild()
  const b = await spawnChild()
  t.teardown(() => Promise.all([a.exit(), b.exit()]))
  const table = so.share(frame(10))
  const h = so.handleOf(table, { opens: 1 })
  t.is(so.stats().byState.waitingForOpens.segments, 1)
  t.is(await a.run((so, h) => so.open(h).numRows, h), 10)
  // The owner learns of the open from the control word (a timer of the package polls it).
  const end = Date.now() + 10_000
  while (so.stats().byState.waitingForOpens.segments !== 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20))
  t.is(so.stats().byState.waitingForOpens.segments, 0, 'the open was counted')
  t.is((await t.throwsAsync(b.run((so, h) => so.open(h), h))).code, 'ERR_SHM_NOT_FOUND', 'its one open happened')
  t.deepEqual(columns(table), columns(frame(10)), 'the owner reads on')
  so.close(table)
})

/** A named 10-row table, freed after the test: its handle, its file and the file's bytes. */
function namedTable(t) {
  const shared = so.share(frame(10), { named: true })
  const file = so.properties(shared).path
  t.teardown(() => {
    so.free(shared)
    so.close(shared)
  })
  return { h: so.handleOf(shared), file, bytes: fs.readFileSync(file) }
}

when(can.shmFiles, test.serial)('the segment file starts with "ARROW1\\0\\0" and ends with "ARROW1"; a version 1 table (the header first) is ERR_SHM_BAD_HEADER', async (t) => {
  const { h, file, bytes } = namedTable(t)
  t.is(bytes.subarray(0, 8).toString('latin1'), 'ARROW1\0\0')
  t.is(bytes.subarray(bytes.length - 6).toString('latin1'), 'ARROW1')
  t.is(bytes.readUInt16LE(8), 2, 'format version 2')
  const old = Buffer.from(bytes)
  old.write('SHAREDOB', 0, 'latin1')
  old.writeUInt16LE(1, 8)
  fs.writeFileSync(file, old)
  const err = await t.throwsAsync(child.run((so, h) => so.open(h), h))
  t.is(err.code, 'ERR_SHM_BAD_HEADER')
  t.regex(err.message, /version 1/)
  fs.writeFileSync(file, bytes)
  t.is(await child.run((so, h) => so.open(h).numRows, h), 10, 'the file as written opens')
})

/**
 * Recomputes the metadata hash of the table data `d` (bytes 8 to 11: FNV-1a of every byte from 64
 * on outside the message bodies), as a same-user writer who wants the reader to parse can.
 */
function rehash(d) {
  let h = 0x811c9dc5
  const mix = (from, to) => {
    for (let i = from; i < to; i++) h = Math.imul(h ^ d[i], 0x01000193)
  }
  let pos = 64
  for (;;) {
    const len = d.readInt32LE(pos + 4)
    if (len === 0) break
    const table = pos + 8 + d.readUInt32LE(pos + 8)
    const vtable = table - d.readInt32LE(table)
    const o = d.readUInt16LE(vtable) >= 12 ? d.readUInt16LE(vtable + 10) : 0
    mix(pos, pos + 8 + len)
    pos += 8 + len + (o ? Number(d.readBigInt64LE(table + o)) : 0)
  }
  mix(pos, d.length)
  d.writeUInt32LE(h >>> 0, 8)
}

when(can.shmFiles, test.serial)('a footer whose blocks are not the messages verified is ERR_SHM_BAD_HEADER, its hash recomputed or not', async (t) => {
  const { h, file, bytes } = namedTable(t)
  const base = Number(bytes.readBigUInt64LE(32))
  const forged = Buffer.from(bytes)
  const d = forged.subarray(base)
  // Readers of the path follow the footer: its first block (the message at byte 64 of the data)
  // now names the bytes 64 further on, which apache-arrow's stream never reads.
  const fb = d.length - 10 - d.readInt32LE(d.length - 10) // the Footer flatbuffer
  const root = fb + d.readUInt32LE(fb)
  const vtable = root - d.readInt32LE(root)
  const field = root + d.readUInt16LE(vtable + 4 + 2 * 2) // field 2: the dictionary blocks
  const blocks = field + d.readUInt32LE(field)
  t.true(d.readUInt32LE(blocks) >= 1)
  t.is(d.readBigInt64LE(blocks + 4), BigInt(base + 64), 'the footer names the first message by its offset in the segment')
  d.writeBigInt64LE(BigInt(base + 128), blocks + 4)
  fs.writeFileSync(file, forged)
  t.regex((await t.throwsAsync(child.run((so, h) => so.open(h), h), { code: 'ERR_SHM_BAD_HEADER' })).message, /metadata differ/)
  rehash(d)
  fs.writeFileSync(file, forged)
  t.regex((await t.throwsAsync(child.run((so, h) => so.open(h), h), { code: 'ERR_SHM_BAD_HEADER' })).message, /footer's block 0 is not the message at byte 64/)
  t.regex((await t.throwsAsync(child.run((so, h) => so.open(h, { copy: true }), h), { code: 'ERR_SHM_BAD_HEADER' })).message, /footer's block 0/, 'a copy too')
  const again = Buffer.from(bytes)
  rehash(again.subarray(base))
  t.deepEqual(again, bytes, 'the rehash reproduces what the writer wrote')
  fs.writeFileSync(file, bytes)
  t.is(await child.run((so, h) => so.open(h).numRows, h), 10, 'the file as written opens')
})

const gcc = isLinux && spawnSync('gcc', ['--version'], { stdio: 'ignore' }).status === 0
;(gcc ? test : test.skip)('a C program finds the table’s Arrow IPC file with sharedobject.h alone', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sobj-arrow-c-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const exe = path.join(dir, 'arrow_file')
  await run('gcc', ['-std=c99', '-Wall', '-Wextra', '-Werror', '-pedantic', so.pkgconfig('PKG_CPPFLAGS'), fixture('arrow_file.c'), '-o', exe])
  const shared = so.share(frame(10))
  t.teardown(() => so.close(shared))
  const { stdout } = await run(exe, [so.properties(shared).path])
  const file = so.properties(shared).path
  t.deepEqual(JSON.parse(stdout), { kind: 15, rows: 10, bytes: fs.statSync(file).size, aligned: true, magic: 'ARROW1' }, 'the file is the whole segment')
  const x = so.share(Float64Array.of(1))
  t.teardown(() => so.close(x))
  const err = await t.throwsAsync(run(exe, [so.properties(x).path]))
  t.deepEqual(JSON.parse(err.stdout), { error: -16 }, 'SOBJ_E_INDEX: not an arrow segment')
})

test.serial('tables travel in containers, by JSON and by handle; free removes the name and the owner reads on', async (t) => {
  const c = so.share({ t: frame(10), w: Float64Array.of(1, 2), meta: { name: 'prices' } })
  t.true(c.t instanceof A.Table && so.isShared(c.t))
  const describe = (so, c) => ({ cols: Object.fromEntries(c.t.schema.fields.map((f) => [f.name, Array.from(c.t.getChild(f.name))])), w: Array.from(c.w), name: c.meta.name })
  const expected = { cols: columns(frame(10)), w: [1, 2], name: 'prices' }
  t.deepEqual(await child.run((so, msg, src) => new Function(`return ${src}`)()(so, so.revive(JSON.parse(msg))), JSON.stringify(c), describe.toString()), expected)
  t.deepEqual(await child.run((so, h, src) => new Function(`return ${src}`)()(so, so.open(h)), so.handleOf(c), describe.toString()), expected)
  t.like(so.properties(c), { t: { kind: 'arrow', length: 10 }, w: { kind: 'float64' } })
  const h = so.handleOf(c.t)
  const freed = so.free(c.t)
  // Where a name lasts while any process holds the segment (Windows), the child keeps it.
  if (can.removeNames) {
    t.true(freed)
    const err = await child.run((so, h) => {
      try {
        so.open(h)
      } catch (e) {
        return e.code
      }
    }, h)
    t.is(err, 'ERR_SHM_NOT_FOUND')
  }
  t.deepEqual(columns(c.t), columns(frame(10)), 'the owner’s view outlives the name')
  t.true(so.close(c))
  t.false(so.isShared(c))
})

test('a record batch is shared as a record batch and opens as a table', (t) => {
  const batch = frame(20).batches[0]
  const shared = so.share(batch)
  t.true(shared instanceof A.RecordBatch)
  t.true(so.isShared(shared))
  t.is(so.properties(shared).kind, 'arrow')
  const opened = so.open(so.handleOf(shared))
  t.true(opened instanceof A.Table)
  t.deepEqual(columns(opened), columns(frame(20)))
  t.true(so.unshare(shared) instanceof A.RecordBatch)
  so.close(shared)
})

test.serial('copy-on-write tables: an opener’s writes stay its own', async (t) => {
  const shared = so.share(frame(10), { copyOnWrite: true })
  t.deepEqual(columns(shared), columns(frame(10)))
  const seen = await child.run((so, h) => {
    const t = so.open(h)
    t.getChild('x').data[0].values[1] = -1
    return { cow: so.properties(t).copyOnWrite, x1: t.getChild('x').get(1) }
  }, so.handleOf(shared))
  t.deepEqual(seen, { cow: true, x1: -1 })
  t.is(shared.getChild('x').get(1), 0.25)
  so.close(shared)
})

test('open(h, { copy: true }) gives an ordinary table', (t) => {
  const shared = so.share(frame(30))
  const copy = so.open(so.handleOf(shared), { copy: true })
  t.true(copy instanceof A.Table)
  t.false(so.isShared(copy))
  t.deepEqual(columns(copy), columns(frame(30)))
  so.close(shared)
})

test.serial('a corrupt Arrow file is ERR_SHM_BAD_HEADER for an opener, and the segment stays', async (t) => {
  const shared = so.share(frame(10))
  const h = so.handleOf(shared)
  const bytes = new Uint8Array(shared.getChild('x').data[0].values.buffer)
  const open = (so, h) => {
    try {
      return so.open(h).numRows
    } catch (e) {
      return e.code
    }
  }
  const n = bytes.length
  // The leading magic, the first message's metadata, the trailing magic, the footer's length,
  // and the footer itself.
  for (const [from, to, v] of [[0, 6, 0], [80, 84, 0x55], [n - 6, n, 0], [n - 10, n - 6, 0xff], [n - 200, n - 10, 7]]) {
    const saved = bytes.slice(from, to)
    bytes.fill(v, from, to)
    t.is(await child.run(open, h), 'ERR_SHM_BAD_HEADER', `bytes ${from} to ${to}`)
    bytes.set(saved, from)
  }
  t.is(await child.run(open, h), 10)
  so.close(shared)
})

test('toArrow: numeric vectors become Arrow vectors over the same memory', (t) => {
  const cases = [
    ['float64', 'Float64', [1.5, -2, 3]],
    ['float32', 'Float32', [1.5, -2, 3]],
    ['int8', 'Int8', [1, -2, 3]],
    ['uint8', 'Uint8', [1, 2, 255]],
    ['uint8clamped', 'Uint8', [1, 2, 255]],
    ['int16', 'Int16', [1, -2, 3]],
    ['uint16', 'Uint16', [1, 2, 65535]],
    ['int32', 'Int32', [1, -2, 3]],
    ['uint32', 'Uint32', [1, 2, 2 ** 32 - 1]],
    ['int64', 'Int64', [1n, -2n, 3n]],
    ['uint64', 'Uint64', [1n, 2n, 2n ** 64n - 1n]],
  ]
  for (const [kind, type, values] of cases) {
    const v = so.share(values, { kind })
    const a = so.toArrow(v)
    t.is(String(a.type), type, kind)
    t.is(a.length, 3)
    t.is(a.nullCount, 0)
    t.deepEqual(Array.from(a), values, kind)
    t.is(a.data[0].values.buffer, v.buffer, `${kind}: a view of the segment`)
    v[0] = kind.endsWith('64') && kind !== 'float64' ? 9n : 9
    t.is(a.get(0), v[0], `${kind}: writes are seen`)
    so.close(v)
  }
  t.deepEqual(Array.from(so.toArrow(Float64Array.of(1, NaN))), [1, NaN], 'NaN stays a value; unshared arrays work too')
})

test('toArrow: string vectors become Utf8 over the same offsets, bytes and validity; dictionary ones a Dictionary', (t) => {
  const values = ['a', null, 'ü😀', '', 'a']
  const v = so.share(values)
  const a = so.toArrow(v)
  t.is(String(a.type), 'Utf8')
  t.is(a.nullCount, 1)
  t.deepEqual(Array.from(a), values)
  const d = a.data[0]
  t.true(d.values.buffer === v.buffer && d.valueOffsets.buffer === v.buffer && d.nullBitmap.buffer === v.buffer)

  const dv = so.share(values, { dictionary: true })
  const da = so.toArrow(dv)
  t.is(String(da.type), 'Dictionary<Int32, Utf8>')
  t.is(da.nullCount, 1)
  t.deepEqual(Array.from(da), values)
  t.true(da.data[0].values.buffer === dv.buffer, 'the codes are the indices')
  t.deepEqual(Array.from(da.data[0].dictionary), ['a', 'ü😀', ''])
  t.true(da.data[0].dictionary.data[0].values.buffer === dv.buffer)
  dv.set(1, 'a')
  t.is(da.get(1), 'a', 'set() on the dictionary vector shows through')

  // Arrow's own readers take it: through IPC and back.
  t.deepEqual(Array.from(A.tableFromIPC(A.tableToIPC(new A.Table({ s: a, d: da }))).getChild('d')), ['a', 'a', 'ü😀', '', 'a'])
  so.close(v)
  t.throws(() => so.toArrow(v), { code: 'ERR_SHM_CLOSED' })
  so.close(dv)
})

test('toArrow: a logical vector becomes a Bool vector of its own; its codes view in place as Int8', (t) => {
  const v = so.share([true, null, false, true])
  const a = so.toArrow(v)
  t.is(String(a.type), 'Bool')
  t.is(a.nullCount, 1)
  t.deepEqual(Array.from(a), [true, null, false, true])
  t.not(a.data[0].values.buffer, v.buffer, 'Arrow packs booleans in bits: a copy')
  const codes = so.toArrow(v.codes)
  t.is(String(codes.type), 'Int8')
  t.is(codes.data[0].values.buffer, v.buffer)
  t.deepEqual(Array.from(codes), [1, -1, 0, 1])
  t.throws(() => so.toArrow({ length: 1 }), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
  so.close(v)
})

test('share(arrowVector) gives the vector of ours its type maps to', (t) => {
  const f = so.share(A.vectorFromArray([1.5, null, 3], new A.Float64()))
  t.true(f instanceof Float64Array && so.isShared(f))
  t.deepEqual(Array.from(f), [1.5, NaN, 3], 'null becomes NaN, R’s NA of a double')
  const i = so.share(A.vectorFromArray([1, 2, 3], new A.Int16()))
  t.true(i instanceof Int16Array && so.isShared(i))
  const big = so.share(A.vectorFromArray([1n, 2n], new A.Int64()))
  t.true(big instanceof BigInt64Array)
  const b = so.share(A.vectorFromArray([true, null, false]))
  t.true(b instanceof so.SharedLogicalVector)
  t.deepEqual(b.toArray(), [true, null, false])

  const chunked = A.vectorFromArray(['x', null], new A.Utf8()).concat(A.vectorFromArray(['yy', 'zzz'], new A.Utf8()))
  t.is(chunked.data.length, 2)
  const s = so.share(chunked)
  t.true(s instanceof so.SharedStringVector && !s.dictionary)
  t.deepEqual(s.toArray(), ['x', null, 'yy', 'zzz'])
  const dict = so.share(A.vectorFromArray(['q', 'r', null, 'q'], new A.Dictionary(new A.Utf8(), new A.Int8())))
  t.true(dict.dictionary)
  t.deepEqual(dict.toArray(), ['q', 'r', null, 'q'])
  t.deepEqual(Array.from(so.toArrow(s)), ['x', null, 'yy', 'zzz'], 'and back')

  t.throws(() => so.share(A.vectorFromArray([1, null], new A.Int32())), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_VALUE' })
  const list = A.vectorFromArray([[1], [2, 3]], new A.List(new A.Field('item', new A.Int32())))
  t.is(so.share(list), list, 'a type no vector of ours holds stays as it is')
  t.throws(() => so.share(list, { mustWork: true }), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
  so.close({ f, i, big, b, s, dict })
})

test('apache-arrow is loaded only when used, and its absence is a clear ERR_SHM_NO_ARROW', async (t) => {
  const shared = so.share(frame(5))
  t.teardown(() => so.close(shared))
  const { stdout } = await run(process.execPath, ['--require', fixture('hide-arrow.cjs'), fixture('arrow-absent.mjs'), so.handleOf(shared)])
  t.deepEqual(JSON.parse(stdout), {
    seen: { x: [1, 2], tag: ['a', null], plain: { a: 1, b: 'text', c: [1, 'x'] }, shared: true, props: 'float64', unshared: [7] },
    attemptsBefore: [],
    toArrow: 'ERR_SHM_NO_ARROW',
    open: 'ERR_SHM_NO_ARROW',
  })
})

test.serial('a CommonJS program gets tables of its own apache-arrow build, and shares its tables with ES modules', async (t) => {
  const shared = so.share(frame(10))
  t.teardown(() => so.close(shared))
  const proc = fork(fixture('arrow-cjs.cjs'), [so.handleOf(shared)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const [got] = await once(proc, 'message')
  t.like(got, { instance: true, rows: 10, s: columns(frame(10)).s })
  const theirs = so.open(got.handle)
  t.true(theirs instanceof A.Table, 'this ES module’s build')
  t.deepEqual(Array.from(A.tableFromIPC(A.tableToIPC(theirs)).getChild('v')), [0.5, 1.5, 2.5])
  so.close(theirs)
  proc.send('done')
  await once(proc, 'exit')
})
