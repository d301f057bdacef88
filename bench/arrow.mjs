// An Arrow table of 1e7 rows and 5 columns (float64, float64 with nulls, int32 with nulls,
// dictionary strings with nulls, strings with nulls) handed to 4 forked workers, which each
// aggregate every column: a shared table (sharedobject handle) beside tableToIPC sent with
// serialization: 'advanced', and JSON of rows. Prints the parent's preparation time, the
// hand-over and aggregation time, and the extra memory: Σ PSS of parent + workers after the
// hand-over minus before, over the table's size.
// Run: node --expose-gc bench/arrow.mjs [--quick] [--rows=1e7] [--json-rows=1e6]
// Prints figures; asserts nothing.
import { fork } from 'node:child_process'
import { once } from 'node:events'
import fs from 'node:fs'
import { fileURLToPath } from 'node:url'
import * as A from 'apache-arrow'
import so from '@sharedobject/core'
import { record } from './report.mjs'
// A segment whose handle was handed out stays openable until it is freed (or its owner exits):
// free it, then give this process's mapping back.
const release = (v) => {
  so.free(v)
  return so.close(v)
}

const W = 4
const self = fileURLToPath(import.meta.url)
const gc = typeof globalThis.gc === 'function' ? globalThis.gc : () => {}
const settle = async () => {
  gc()
  await new Promise((r) => setTimeout(r, 50))
  gc()
}

// ---- the aggregation every worker runs, over a Table or over rows ----------------------------

const valid = (d, i) => d.nullCount === 0 || (d.nullBitmap[(d.offset + i) >> 3] & (1 << ((d.offset + i) & 7))) !== 0

/** Sums and counts over every column, reading the Arrow buffers directly. */
function aggregateTable(t) {
  const r = { n: t.numRows, sx: 0, sy: 0, nullY: 0, si: 0, d7: 0, sBytes: 0 }
  for (const d of t.getChild('x').data) for (let i = 0; i < d.length; i++) r.sx += d.values[i]
  for (const d of t.getChild('y').data) {
    for (let i = 0; i < d.length; i++) {
      if (valid(d, i)) r.sy += d.values[i]
      else r.nullY++
    }
  }
  for (const d of t.getChild('i').data) for (let i = 0; i < d.length; i++) if (valid(d, i)) r.si += d.values[i]
  for (const d of t.getChild('d').data) {
    const code = Array.from(d.dictionary).indexOf('cat7')
    for (let i = 0; i < d.length; i++) if (valid(d, i) && d.values[i] === code) r.d7++
  }
  for (const d of t.getChild('s').data) r.sBytes += d.valueOffsets[d.length] - d.valueOffsets[0]
  return r
}

/** The same over rows: what JSON gives a worker. */
function aggregateRows(rows) {
  const r = { n: rows.length, sx: 0, sy: 0, nullY: 0, si: 0, d7: 0, sBytes: 0 }
  for (const row of rows) {
    r.sx += row.x
    if (row.y === null) r.nullY++
    else r.sy += row.y
    if (row.i !== null) r.si += row.i
    if (row.d === 'cat7') r.d7++
    if (row.s !== null) r.sBytes += row.s.length
  }
  return r
}

if (process.argv[2] === 'child') {
  // What a worker received stays alive (globalThis.kept) until the parent says drop.
  let rows = []
  process.on('message', (m) => {
    const t0 = performance.now()
    if (m.op === 'drop') {
      globalThis.kept = null
      rows = []
      settle().then(() => process.send({ ok: true }))
      return
    }
    if (m.op === 'rows') {
      // JSON arrives in batches: one message could not hold 1e7 rows (V8's string limit).
      for (const row of m.rows) rows.push(row)
      if (!m.last) return
      globalThis.kept = rows
      const r = aggregateRows(rows)
      settle().then(() => process.send({ r, ms: performance.now() - t0 }))
      return
    }
    const t = m.op === 'shared' ? so.open(m.h) : A.tableFromIPC(m.bytes)
    const ready = performance.now() - t0
    globalThis.kept = t
    const r = aggregateTable(t)
    settle().then(() => process.send({ r, ready, ms: performance.now() - t0 }))
  })
  process.send('ready')
} else {
  const args = Object.fromEntries(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=')))
  const quick = 'quick' in args
  const N = Number(args.rows ?? (quick ? 1e6 : 1e7))
  const JSON_N = Number(args['json-rows'] ?? Math.min(N, 1e6))
  const mb = (b) => `${(b / 1048576).toFixed(0)} MB`
  const ms = (x) => (x < 10 ? `${x.toFixed(2)} ms` : x < 10000 ? `${x.toFixed(0)} ms` : `${(x / 1000).toFixed(1)} s`)
  const pss = (pid) => Number(/^Pss:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))[1]) * 1024

  /** The table, built from its buffers: vectorFromArray of 1e7 JS strings would take minutes. */
  function makeTable(n) {
    const bits = (f) => {
      const b = new Uint8Array(Math.ceil(n / 8))
      for (let i = 0; i < n; i++) if (f(i)) b[i >> 3] |= 1 << (i & 7)
      return b
    }
    const x = Float64Array.from({ length: n }, (_, i) => i * 0.5)
    const y = Float64Array.from({ length: n }, (_, i) => (i % 1000) / 7)
    const iv = Int32Array.from({ length: n }, (_, i) => (i % 100000) - 50000)
    const codes = Int32Array.from({ length: n }, (_, i) => i % 1000)
    const cats = A.vectorFromArray(Array.from({ length: 1000 }, (_, c) => `cat${c}`), new A.Utf8())
    const offsets = new Int32Array(n + 1)
    const chunks = []
    let pos = 0
    for (let i = 0; i < n; i++) {
      offsets[i] = pos
      if (i % 10 !== 9) {
        const s = `s${i}`
        chunks.push(s)
        pos += s.length
      }
    }
    offsets[n] = pos
    const values = Buffer.from(chunks.join(''), 'latin1')
    const nulls = (k) => (i) => i % k !== k - 1
    const make = (type, props) => A.makeVector(A.makeData({ type, length: n, ...props }))
    return new A.Table({
      x: make(new A.Float64(), { data: x, nullCount: 0 }),
      y: make(new A.Float64(), { data: y, nullBitmap: bits(nulls(7)), nullCount: -1 }),
      i: make(new A.Int32(), { data: iv, nullBitmap: bits(nulls(11)), nullCount: -1 }),
      d: make(new A.Dictionary(new A.Utf8(), new A.Int32()), { data: codes, nullBitmap: bits(nulls(13)), nullCount: -1, dictionary: cats }),
      s: make(new A.Utf8(), { valueOffsets: offsets, data: values, nullBitmap: bits(nulls(10)), nullCount: -1 }),
    })
  }

  const start = async (serialization) => {
    const kids = Array.from({ length: W }, () => fork(self, ['child'], { serialization, execArgv: ['--expose-gc'] }))
    await Promise.all(kids.map((k) => once(k, 'message')))
    return kids
  }
  const stop = (kids) => Promise.all(kids.map((k) => (k.disconnect(), once(k, 'exit'))))
  const answers = (kids) => Promise.all(kids.map((k) => once(k, 'message').then(([m]) => m)))

  /** One transport: preparation in the parent, then hand-over and aggregation, then memory. */
  async function measure(name, table, serialization, prepare, send) {
    const kids = await start(serialization)
    const pids = [process.pid, ...kids.map((k) => k.pid)]
    await settle()
    const before = pids.reduce((s, p) => s + pss(p), 0)
    let t0 = performance.now()
    const prepared = prepare(table)
    const prep = performance.now() - t0
    t0 = performance.now()
    const replies = answers(kids)
    for (const k of kids) send(k, prepared)
    const got = await replies
    const total = performance.now() - t0
    await settle()
    const after = pids.reduce((s, p) => s + pss(p), 0)
    await Promise.all(kids.map((k) => (k.send({ op: 'drop' }), once(k, 'message'))))
    await stop(kids)
    return { name, prep, total, ready: Math.max(...got.map((g) => g.ready ?? g.ms)), extra: after - before, r: got[0].r, prepared }
  }

  const report = (m, size) =>
    console.log(
      `  ${m.name.padEnd(26)} prepare ${ms(m.prep).padStart(8)}   hand-over + aggregate ${ms(m.total).padStart(8)}   ` +
        `(slowest worker ready ${ms(m.ready).padStart(8)})   extra PSS ${mb(m.extra).padStart(8)} = ${(m.extra / size).toFixed(2)}×`,
    )

  console.log(`Arrow: a ${N.toExponential(0)}-row, 5-column table to ${W} forked workers that aggregate every column`)
  const table = makeTable(N)
  const size = A.tableToIPC(table, 'file').byteLength
  console.log(`  table: ${mb(size)} as an Arrow IPC file; extra PSS is Σ over parent + workers, after minus before, ÷ that size`)
  const results = []

  const shared = await measure('shared table (handle)', table, 'json', (t) => so.share(t), (k, t) => k.send({ op: 'shared', h: so.handleOf(t) }))
  report(shared, size)
  results.push(shared)
  release(shared.prepared)
  await settle()

  const advanced = await measure('tableToIPC + advanced', table, 'advanced', (t) => A.tableToIPC(t), (k, bytes) => k.send({ op: 'ipc', bytes }))
  advanced.prepared = null
  report(advanced, size)
  results.push(advanced)
  await settle()

  const small = JSON_N === N ? table : table.slice(0, JSON_N)
  const smallSize = JSON_N === N ? size : A.tableToIPC(small, 'file').byteLength
  const BATCH = 250000
  const json = await measure(
    `JSON rows${JSON_N === N ? '' : ` (${JSON_N.toExponential(0)} rows)`}`,
    small,
    'json',
    (t) => t.toArray().map((row) => row.toJSON()),
    (k, rows) => {
      for (let at = 0; at < rows.length; at += BATCH) k.send({ op: 'rows', rows: rows.slice(at, at + BATCH), last: at + BATCH >= rows.length })
    },
  )
  json.prepared = null
  report(json, smallSize)
  if (JSON_N !== N) console.log(`  (JSON at ${JSON_N.toExponential(0)} rows: at ${N.toExponential(0)} it takes minutes and gigabytes per worker; --json-rows=${N} runs it)`)

  record({ figure: `table of ${N.toExponential(0)} rows to ${W} processes, hand-over + aggregate, vs tableToIPC + advanced`, value: shared.total, unit: 'ms', reference: advanced.total, referenceName: 'tableToIPC + advanced', ratio: shared.total / advanced.total })
  record({ figure: `table of ${N.toExponential(0)} rows to ${W} processes, extra PSS ÷ table size`, value: shared.extra / size, unit: '×', reference: advanced.extra / size, referenceName: 'tableToIPC + advanced', ratio: shared.extra / advanced.extra })
  const same = JSON.stringify(shared.r) === JSON.stringify(advanced.r)
  console.log(`  shared and tableToIPC workers computed ${same ? 'the same' : 'DIFFERENT'} aggregates: ${JSON.stringify(shared.r)}`)
  console.log(
    `  shared vs tableToIPC + advanced: hand-over + aggregate ${(advanced.total / shared.total).toFixed(1)}× faster, ` +
      `extra memory ${(shared.extra / size).toFixed(2)}× vs ${(advanced.extra / size).toFixed(2)}× the table`,
  )
  if (!same) process.exitCode = 1
}
