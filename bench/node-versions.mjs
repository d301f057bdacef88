// What the Node version changes, side by side in one run: hand-over of a float64 vector to 4
// forked receivers at 8, 80 and 400 MB (each receiver's close of it timed apart, and waited for
// before the next hand-over), and a receiver's first open() in a fresh process, on Node 26, 24,
// 22 and this process's; a vector posted to a worker thread beside a plain SharedArrayBuffer;
// and, on the newest Node, a receiver's first full read of 400 MB: cold (populate: false),
// populated (populate: true), populated in the background (populate: 'background'), and over a
// private copy. Run: node bench/node-versions.mjs [--quick] [--read (the read figures alone)]. Prints figures; asserts nothing.
//
// The other versions are official binaries from the npm registry (see nodes.mjs); when the
// registry cannot be reached, that column says so and is skipped.
import { execFileSync, fork } from 'node:child_process'
import { once } from 'node:events'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'

import { MAJORS, nodeOf, thisMajor } from './nodes.mjs'
import { record } from './report.mjs'
import { READER_FLAGS, summer } from './summer.mjs'

const self = fileURLToPath(import.meta.url)
const root = path.dirname(path.dirname(self))
const quick = process.argv.includes('--quick')
const SIZES = quick ? [1e6, 1e7] : [1e6, 1e7, 5e7]
const REPS = quick ? 3 : 7
const W = 4
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1]
const ms = (x) => (x === undefined ? '—' : x < 1 ? `${(x * 1000).toFixed(0)} µs` : `${x.toFixed(x < 10 ? 2 : 1)} ms`)
const mb = (n) => `${(n * 8) / 1e6} MB`

async function receiver() {
  const { default: so } = await import('@sharedobject/core')
  let closed = 0
  process.on('message', (m) => {
    if (m.op === 'take') {
      const t = performance.now()
      const x = so.revive(m).x
      const last = x[x.length - 1]
      const open = performance.now() - t
      // Reply first: closing a 400 MB mapping gives its pages back (and may start a collection),
      // which is this receiver's cleanup, not part of the hand-over. It is timed on its own, and
      // the parent waits for it (the next message's answer) before the next hand-over.
      process.send({ last, open })
      const c = performance.now()
      so.close(x)
      closed = performance.now() - c
    } else if (m.op === 'sync') {
      process.send({ closed })
    } else if (m.op === 'read') {
      // The reader of bench/summer.mjs: a new function per timed pass, warmed on a small array
      // of the kind it will read, so that every pass runs the same code.
      const like = so.alloc('float64', 4096)
      let sum = summer(like)
      let t = performance.now()
      const x = so.open(m.h, { populate: m.populate })
      const open = performance.now() - t
      t = performance.now()
      const s = sum(x)
      const read = performance.now() - t
      const copy = x.slice()
      sum = summer(new Float64Array(4096))
      t = performance.now()
      sum(copy)
      const priv = performance.now() - t
      so.close(like)
      so.close(x)
      process.send({ open, read, priv, s })
    } else process.disconnect()
  })
  process.send({ ready: true })
}

/** Runs under one Node: its figures as JSON on stdout. */
async function measure() {
  const { default: so } = await import('@sharedobject/core')
  const out = { version: process.version, sharedBuffers: so.alloc('uint8', 1).buffer instanceof SharedArrayBuffer, handover: {}, close: {}, fresh: {} }
  const kids = await Promise.all(Array.from({ length: W }, async () => {
    const k = fork(self, ['--child'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    await once(k, 'message')
    return k
  }))
  const ask = (k, m) => new Promise((resolve) => { k.once('message', resolve); k.send(m) })
  const warm = so.alloc('float64', 16)
  await Promise.all(kids.map((k) => ask(k, { op: 'take', x: warm })))
  for (const n of SIZES) {
    const x = so.alloc('float64', n)
    x[n - 1] = n
    const times = []
    const closes = []
    for (let r = 0; r < REPS; r++) {
      const t = performance.now()
      const replies = await Promise.all(kids.map((k) => ask(k, { op: 'take', x })))
      times.push(performance.now() - t)
      if (replies.some((m) => m.last !== n)) throw new Error('a receiver read the wrong value')
      // Each receiver has closed the vector (its cleanup) before the next hand-over starts.
      closes.push(median((await Promise.all(kids.map((k) => ask(k, { op: 'sync' })))).map((m) => m.closed)))
    }
    out.handover[n] = median(times)
    out.close[n] = median(closes)
    // A fresh process's first open of the vector (after opening something small, so that loading
    // the package is not counted).
    const fresh = []
    for (let r = 0; r < REPS; r++) {
      const k = fork(self, ['--child'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
      await once(k, 'message')
      await ask(k, { op: 'take', x: warm })
      fresh.push((await ask(k, { op: 'take', x })).open)
      k.send({ op: 'exit' })
    }
    out.fresh[n] = median(fresh)
    so.free(x)
    so.close(x)
  }
  for (const k of kids) k.send({ op: 'exit' })
  console.log(JSON.stringify(out))
}

async function workerFigures(so) {
  const n = SIZES[SIZES.length - 1]
  const code = `const { parentPort } = require('node:worker_threads'); parentPort.on('message', (m) => { const v = m.x ?? new Float64Array(m.sab); parentPort.postMessage(v[v.length - 1]) })`
  const w = new Worker(code, { eval: true })
  const post = (m) => new Promise((resolve) => { w.once('message', resolve); w.postMessage(m) })
  const x = so.alloc('float64', n)
  const sab = new SharedArrayBuffer(n * 8)
  const res = {}
  for (const [name, msg] of [['vector', { x }], ['sab', { sab }]]) {
    await post(msg)
    const t = []
    for (let r = 0; r < REPS; r++) {
      const s = performance.now()
      await post(msg)
      t.push(performance.now() - s)
    }
    res[name] = median(t)
  }
  await w.terminate()
  so.free(x)
  so.close(x)
  return { n, ...res, shared: x.buffer instanceof SharedArrayBuffer }
}

async function readFigures(so) {
  const n = SIZES[SIZES.length - 1]
  const k = fork(self, ['--child'], { execArgv: READER_FLAGS, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  await once(k, 'message')
  const ask = (m) => new Promise((resolve) => { k.once('message', resolve); k.send(m) })
  const rows = { cold: [], populated: [], background: [] }
  const rowOf = { false: 'cold', true: 'populated', background: 'background' }
  for (let r = 0; r < Math.min(REPS, 5); r++) {
    // A new segment for each way, so no page is mapped in the receiver yet; all filled in place
    // before the first is read, so that no garbage of the parent's is collected meanwhile.
    const ways = [false, true, 'background']
    const xs = ways.map(() => so.alloc('float64', n).fill(1))
    for (const [i, populate] of ways.entries()) rows[rowOf[populate]].push(await ask({ op: 'read', h: so.handleOf(xs[i]), populate }))
    for (const x of xs) {
      so.free(x)
      so.close(x)
    }
  }
  k.send({ op: 'exit' })
  const pick = (xs, f) => median(xs.map((x) => x[f]))
  return { n, coldRead: pick(rows.cold, 'read'), coldOpen: pick(rows.cold, 'open'), popOpen: pick(rows.populated, 'open'), popRead: pick(rows.populated, 'read'), bgOpen: pick(rows.background, 'open'), bgRead: pick(rows.background, 'read'), bgTotal: pick(rows.background.map((x) => ({ t: x.open + x.read })), 't'), priv: pick([...rows.cold, ...rows.populated, ...rows.background], 'priv') }
}

async function main() {
  const { default: so } = await import('@sharedobject/core')
  if (process.argv.includes('--read')) return printRead(await readFigures(so))
  console.log(`Node versions: hand-over to ${W} forked receivers (send the handle, open, read the last element); median of ${REPS}`)
  const cols = []
  for (const major of [...new Set([...MAJORS, thisMajor()])]) {
    const n = nodeOf(major)
    if (!n.bin) {
      console.log(`  Node ${major}: skipped: ${n.why}`)
      continue
    }
    try {
      cols.push(JSON.parse(execFileSync(n.bin, [self, '--measure', ...(quick ? ['--quick'] : [])], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })))
    } catch (e) {
      console.log(`  Node ${major}: failed: ${e.message.split('\n')[0]}`)
    }
  }
  if (cols.length) {
    console.log(`  ${'N'.padEnd(18)}${cols.map((c) => `${c.version} (${c.sharedBuffers ? 'SharedArrayBuffer' : 'ArrayBuffer'})`.padStart(34)).join('')}`)
    for (const n of SIZES) console.log(`  hand-over ${mb(n).padEnd(8)}${cols.map((c) => ms(c.handover[n]).padStart(34)).join('')}`)
    for (const n of SIZES) console.log(`  close after ${mb(n).padEnd(6)}${cols.map((c) => ms(c.close[n]).padStart(34)).join('')}`)
    for (const n of SIZES) console.log(`  fresh open ${mb(n).padEnd(7)}${cols.map((c) => ms(c.fresh[n]).padStart(34)).join('')}`)
    for (const c of cols) {
      const a = c.fresh[SIZES[0]]
      const b = c.fresh[SIZES[SIZES.length - 1]]
      console.log(`  ${c.version}: a fresh process opens ${mb(SIZES[SIZES.length - 1])} in ${ms(b)}, ${(b / a).toFixed(2)}× ${mb(SIZES[0])} (target on Node 26: ≤ 3× and < 3 ms)`)
      const h0 = c.handover[SIZES[0]]
      for (const n of SIZES) {
        record({ node: c.version, figure: `node-versions: hand-over to ${W} processes, ${mb(n)}`, value: c.handover[n], unit: 'ms', reference: h0, referenceName: mb(SIZES[0]), ratio: c.handover[n] / h0 })
        record({ node: c.version, figure: `node-versions: a fresh process's first open, ${mb(n)}`, value: c.fresh[n], unit: 'ms', reference: a, referenceName: mb(SIZES[0]), ratio: c.fresh[n] / a })
      }
    }
  }
  const w = await workerFigures(so)
  console.log(`\nWorker threads (${process.version}): postMessage to a worker, which reads the last element; ${mb(w.n)}`)
  console.log(`  a shared vector ${ms(w.vector)}${w.shared ? '' : ' (an ArrayBuffer here: copied)'}   a plain SharedArrayBuffer ${ms(w.sab)}   ratio ${(w.vector / w.sab).toFixed(2)}×`)
  // The first read on the newest Node, whose figures the targets are for.
  const newest = nodeOf(MAJORS[0])
  if (newest.bin && newest.bin !== process.execPath) {
    execFileSync(newest.bin, [self, '--read', ...(quick ? ['--quick'] : [])], { cwd: root, stdio: 'inherit' })
  } else {
    printRead(await readFigures(so))
  }
}

function printRead(r) {
  console.log(`\nFirst full read of ${mb(r.n)} in a receiver (${process.version}): a sum at memory speed (bench/summer.mjs${READER_FLAGS.length ? `; ${READER_FLAGS.join(' ')}` : ''})`)
  console.log(`  cold: open ${ms(r.coldOpen)} + read ${ms(r.coldRead)} = ${ms(r.coldOpen + r.coldRead)} (${(r.coldRead / r.priv).toFixed(2)}× a private copy's read)`)
  console.log(`  populated: open ${ms(r.popOpen)} + read ${ms(r.popRead)} = ${ms(r.popOpen + r.popRead)} (read ${(r.popRead / r.priv).toFixed(2)}× a private copy's)`)
  console.log(`  background: open ${ms(r.bgOpen)} + read ${ms(r.bgRead)} = ${ms(r.bgTotal)} (${(r.bgTotal / r.priv).toFixed(2)}× a private copy's read; target ≤ 1.6×)`)
  console.log(`  a private copy: read ${ms(r.priv)}`)
  record({ figure: `first open + full read of ${mb(r.n)} in a receiver, vs a warm private copy's read`, value: r.coldOpen + r.coldRead, unit: 'ms', reference: r.priv, referenceName: 'private copy', ratio: (r.coldOpen + r.coldRead) / r.priv })
  record({ figure: `first open + full read of ${mb(r.n)} in a receiver, populated in the background, vs a warm private copy's read`, value: r.bgTotal, unit: 'ms', reference: r.priv, referenceName: 'private copy', ratio: r.bgTotal / r.priv, target: '≤ 1.6×' })
}

if (process.argv.includes('--child')) await receiver()
else if (process.argv.includes('--measure')) await measure()
else await main()
