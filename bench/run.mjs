// Benchmarks of sharedobject against the other ways of giving a big float64 vector to forked
// children. Run: node --expose-gc bench/run.mjs [--quick] [--sizes=1e6,1e7,5e7]
//
// Every figure is the median of a few repetitions, printed beside the reference it is judged
// against, measured in the same run. Nothing here asserts a time: targets are printed, not
// enforced. Children are started and waiting before anything is timed, so process start-up is
// never part of a figure.
import { execFileSync, fork, spawn } from 'node:child_process'
import { once } from 'node:events'
import { constants as bufferConstants } from 'node:buffer'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import readline from 'node:readline'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'

// Must stay ahead of the package's import: see shm-before.mjs.
import { SHM_DIR, shmBefore, shmEntries } from './shm-before.mjs'
import { record } from './report.mjs'
import { READER_FLAGS, summer } from './summer.mjs'
import so from '@sharedobject/core'
// A segment whose handle was handed out stays openable until it is freed (or its owner exits):
// free it, then give this process's mapping back.
const release = (v) => {
  so.free(v)
  return so.close(v)
}

const CHILD = fileURLToPath(new URL('./child.mjs', import.meta.url))
const W = 4 // children, as in the spec's scenario
// Our temporary files carry our pid, so the /dev/shm check at the end can tell them apart.
const TMP_PREFIX = `sobj-bench-${process.pid}`
const FILE_PATH = `${SHM_DIR}/${TMP_PREFIX}.f64`
const FALLOCATE_PATH = `${SHM_DIR}/${TMP_PREFIX}.fallocate`
const STA_KEY = `/${TMP_PREFIX}.sta` // shm-typed-array's POSIX name, i.e. /dev/shm/<name>

// ---------------------------------------------------------------------------------------------
// Options

function usage(msg) {
  if (msg) console.error(`bench: ${msg}`)
  console.error('usage: node --expose-gc bench/run.mjs [--quick] [--sizes=1e6,1e7,5e7]')
  process.exit(2)
}

const args = { quick: false, sizes: null }
for (const a of process.argv.slice(2)) {
  if (a === '--quick') args.quick = true
  else if (a.startsWith('--sizes=')) {
    args.sizes = a
      .slice('--sizes='.length)
      .split(',')
      .map((s) => Number(s))
    if (!args.sizes.length || args.sizes.some((n) => !Number.isSafeInteger(n) || n < 1)) usage(`bad --sizes: ${a}`)
  } else if (a === '--help' || a === '-h') usage()
  else usage(`unknown argument ${a}`)
}
const SIZES = (args.sizes ?? (args.quick ? [1e6] : [1e6, 1e7, 5e7])).sort((a, b) => a - b)
const NMAX = SIZES[SIZES.length - 1]
const REPS = args.quick ? 3 : 5
// Figures of a few milliseconds are the noisiest and the cheapest to repeat.
const FAST_REPS = args.quick ? 7 : 15
/**
 * Milliseconds every receiver of a timed hand-over has been asleep when the parent sends: workers
 * wait for work, and a process that woke a moment ago finds its caches warm. Python's hand-over
 * is timed after the same pause (and back to back, for reference).
 */
const IDLE_MS = 20
const idle = () => new Promise((resolve) => setTimeout(resolve, IDLE_MS))
/**
 * Untimed hand-overs of a small vector, back to back, before the timed ones of the so.channel
 * figure, and as many for Python's receivers: the engine compiles a function to faster code only
 * after some hundreds of calls, on threads of its own, and a receiver that has served only a few
 * hand-overs still pays for that compiling in the timed ones (1.04-1.13× Python's time after 3 warm
 * hand-overs, 0.81-0.92× after 500, on Node 26 here). A long-running worker is warm; Python, with no
 * compiler, is the same either way.
 */
const WARM_ROUNDS = args.quick ? 100 : 500
// Copying transports at 1e7 and up take seconds a repetition; three still give a median.
const slowReps = (n) => (n >= 1e7 ? Math.min(REPS, 3) : REPS)

const gc = typeof globalThis.gc === 'function' ? globalThis.gc : null
const requireCjs = createRequire(import.meta.url)
let shm = null
try {
  shm = requireCjs('shm-typed-array')
} catch {
  shm = null
}

// ---------------------------------------------------------------------------------------------
// Helpers

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}

function fmtMs(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '—'
  if (ms < 1) return `${(ms * 1000).toFixed(0)} µs`
  if (ms < 10) return `${ms.toFixed(2)} ms`
  if (ms < 1000) return `${ms.toFixed(1)} ms`
  return `${(ms / 1000).toFixed(2)} s`
}
const fmtRatio = (r) => (r === null || r === undefined || !Number.isFinite(r) ? '—' : `${r < 10 ? r.toFixed(2) : r.toFixed(0)}×`)
const fmtMB = (bytes) => `${(bytes / 1e6).toFixed(Math.abs(bytes) < 1e7 ? 2 : 1).replace(/^-(0\.0+)$/, '$1')} MB`
/** 50000000 → "5e7", as sizes are written on the command line. */
const fmtN = (n) => {
  const e = Math.floor(Math.log10(n))
  const m = n / 10 ** e
  return e >= 3 && Number.isInteger(m) ? `${m}e${e}` : String(n)
}

/** Fills with random doubles: realistic for JSON (about 19 characters a number) and for sums. */
function fillRandom(v) {
  for (let i = 0; i < v.length; i++) v[i] = Math.random()
  return v
}

/**
 * Lets the garbage collector return memory so one repetition does not pay for the last. The
 * second collection waits for the first one's array-buffer sweeping, which frees big buffers.
 */
function collect() {
  if (!gc) return
  gc()
  gc()
}

function unlinkQuiet(p) {
  try {
    fs.unlinkSync(p)
  } catch {
    // already gone
  }
}

/** PSS of one process in bytes: its private pages plus its share of every shared page. */
function pss(pid) {
  const text = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8')
  const m = /^Pss:\s+(\d+) kB/m.exec(text)
  if (!m) throw new Error(`no Pss line in /proc/${pid}/smaps_rollup`)
  return Number(m[1]) * 1024
}

const table = [] // rows of the summary: [figure, measured, reference, ratio, target]
const verdict = (ok) => (ok ? ' ✓' : ' ✗')
/** A ratio as printed, so that a printed "1.10×" is never judged over a "≤ 1.10×" target. */
const shown = (r) => Number(r.toFixed(2))

// ---------------------------------------------------------------------------------------------
// Children

const live = new Set() // every child and worker started, so cleanup can end exactly those

/**
 * Starts one receiver: a forked child with the given IPC serialization (and V8 flags), or a
 * worker thread.
 * `ask` sends a request and resolves with its reply (replies come back in order).
 */
async function startKid(kind, flags = []) {
  const ep =
    kind === 'worker'
      ? new Worker(CHILD)
      : fork(CHILD, [], { serialization: kind, execArgv: ['--expose-gc', ...flags], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const waiting = []
  let dead = null
  ep.on('message', (m) => {
    const w = waiting.shift()
    if (!w) return
    if (m && m.error) w.reject(new Error(`child: ${m.error}`))
    else w.resolve(m)
  })
  const fail = (err) => {
    dead = err
    for (const w of waiting.splice(0)) w.reject(err)
  }
  ep.on('error', fail)
  ep.on('exit', (code) => {
    live.delete(kid)
    if (!kid.ending) fail(new Error(`${kind} receiver exited early (code ${code})`))
  })
  const post = kind === 'worker' ? (m) => ep.postMessage(m) : (m) => ep.send(m)
  const kid = {
    kind,
    ep,
    ending: false,
    pid: kind === 'worker' ? process.pid : ep.pid,
    /** Resolves with the next reply; the request is sent by the caller's `post` or by `ask`. */
    next() {
      if (dead) return Promise.reject(dead)
      return new Promise((resolve, reject) => waiting.push({ resolve, reject }))
    },
    post,
    ask(m) {
      const p = this.next()
      post(m)
      return p
    },
  }
  live.add(kid)
  await kid.next() // its "ready"
  return kid
}

const startKids = (kind) => Promise.all(Array.from({ length: W }, () => startKid(kind)))

async function stopKids(kids) {
  await Promise.all(
    kids.map(async (k) => {
      if (!live.has(k)) return
      const gone = new Promise((resolve) => k.ep.once('exit', resolve))
      k.ending = true
      await k.ask({ op: 'exit' }).catch(() => {})
      await gone
    }),
  )
}

/** Collects garbage everywhere, so that no repetition runs into the last one's leftovers. */
async function settle(kids) {
  collect()
  await Promise.all(kids.map((k) => k.ask({ op: 'gc' })))
}

// ---------------------------------------------------------------------------------------------
// The vector in every transport's form

/** What each transport sends from: a private vector plus its shared-memory twins. */
function makeData(n) {
  const x = fillRandom(new Float64Array(n))
  // In real use a vector to hand over lives in shared memory from the start (alloc); its
  // creation is figure 1's business, not the hand-over's.
  const shared = so.share(x)
  const sab = new SharedArrayBuffer(n * 8)
  new Float64Array(sab).set(x)
  let sta = null
  if (shm) {
    sta = shm.create(n, 'Float64Array', STA_KEY)
    if (!sta) throw new Error(`shm-typed-array: cannot create ${STA_KEY}`)
    sta.set(x)
  }
  return { n, x, shared, sab, sta }
}

function freeData(d) {
  release(d.shared)
  if (d.sta) shm.destroy(STA_KEY)
}

/**
 * One hand-over: from the parent starting to send until all W receivers have the vector, have
 * read its last element and have said so. Whatever the transport needs the parent to do per
 * hand-over (Array.from and JSON for json, writing the file for file) is inside the time.
 */
async function handover(transport, kids, d) {
  const t0 = performance.now()
  let msg
  switch (transport) {
    case 'json':
      // What `child.send({ x: Array.from(x) })` costs: JSON has no typed arrays.
      msg = { op: 'take', transport, x: Array.from(d.x) }
      break
    case 'advanced':
      msg = { op: 'take', transport, x: d.x }
      break
    case 'file':
      fs.writeFileSync(FILE_PATH, d.x)
      msg = { op: 'take', transport, path: FILE_PATH }
      break
    case 'sharedobject':
      msg = { op: 'take', transport, x: d.shared } // travels as {"$sharedobject": handle}
      break
    case 'shm-typed-array':
      msg = { op: 'take', transport, key: STA_KEY }
      break
    case 'sab':
      msg = { op: 'take', transport, sab: d.sab }
      break
  }
  const replies = await Promise.all(kids.map((k) => k.ask(msg)))
  const ms = performance.now() - t0
  if (transport === 'file') unlinkQuiet(FILE_PATH)
  const want = d.x[d.n - 1]
  for (const r of replies) {
    if (r.last !== want) throw new Error(`${transport}: a receiver read ${r.last}, expected ${want}`)
  }
  return ms
}

/**
 * The hand-over through so.channel, `reps` times: each receiver serves hand-overs in a loop,
 * asleep in `receive()` between them, as Python's receivers wait in `readline()` (no forced
 * collection and no other message between two of them: with a full collection in each receiver
 * before each one, as the other transports here get, this hand-over measured 1.6-1.8 ms at
 * 400 MB where it measures about 1 ms without). Each receiver has a channel of its own, as each
 * Python receiver has a pipe of its own, so that every one of the W opens the vector: from one
 * channel shared by all, a receiver done with its handle took a second one in most rounds,
 * before a woken one ran. Before each, every process sleeps `IDLE_MS`; the parent sends the
 * vector's handle to each receiver (`sendShared`) and takes W answers (x[N-1]) from one channel,
 * timed from the first send to the last answer.
 */
async function channelHandovers(kids, d, ch, reps, between, pause = true) {
  await Promise.all(kids.map((k, i) => k.ask({ op: 'channelServe', requests: so.handleOf(ch.requests[i]), replies: so.handleOf(ch.replies) })))
  const want = d.x[d.n - 1]
  const times = []
  try {
    for (let r = 0; r < reps; r++) {
      if (pause) await idle()
      const t0 = performance.now()
      for (let i = 0; i < kids.length; i++) ch.requests[i].sendShared(d.shared)
      const got = []
      for (let i = 0; i < kids.length; i++) got.push(new Float64Array(ch.replies.receive(5000).buffer)[0])
      times.push(performance.now() - t0)
      if (got.some((v) => v !== want)) throw new Error(`so.channel: receivers read ${got}, expected ${want}`)
      await between?.()
    }
  } finally {
    // One message that is no vector ends each receiver's loop.
    for (let i = 0; i < kids.length; i++) ch.requests[i].send(new Uint8Array(1))
  }
  return times
}

/** JSON text of x would be about this long; beyond V8's string limit JSON cannot carry it. */
function jsonLength(x) {
  const k = Math.min(x.length, 10000)
  return (JSON.stringify(Array.from(x.subarray(0, k))).length / k) * x.length
}

// ---------------------------------------------------------------------------------------------
// Figures

function header() {
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU'
  let thp = ''
  try {
    thp = ` THP ${fs.readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8').trim()}, shmem ${fs.readFileSync('/sys/kernel/mm/transparent_hugepage/shmem_enabled', 'utf8').trim()}`
  } catch {
    // not Linux, or no THP
  }
  console.log(`sharedobject benchmarks — node ${process.version}, ${os.cpus().length} × ${cpu}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ${os.type()} ${os.release()}`)
  if (thp) console.log(`  transparent huge pages:${thp}`)
  console.log(`  sizes N = ${SIZES.map(fmtN).join(', ')} float64 (${SIZES.map((n) => fmtMB(n * 8)).join(', ')}); ${W} children; median of ${REPS} repetitions (${FAST_REPS} for allocations and zero-copy hand-overs, 3 for copying transports at N ≥ 1e7)${args.quick ? '; --quick' : ''}`)
  if (!gc) console.log('  note: run with --expose-gc; without it memory is not collected between repetitions and figures are noisier')
  console.log(shm ? '  shm-typed-array: loaded, measured as one more transport' : 'shm-typed-array: not installed (needs a native build script)')
}

/** 1. share() copies into new shared memory: compare with the plainest copy, x.slice(). */
function figShare() {
  console.log('\n1. share(x) vs x.slice() — both copy x into fresh memory (target ≤ 1.3×)')
  release(so.share(new Float64Array(1024))) // load and warm the code path
  new Float64Array(1024).slice()
  let last = null
  for (const n of SIZES) {
    const x = fillRandom(new Float64Array(n))
    const tShare = []
    const tSlice = []
    for (let r = 0; r < REPS; r++) {
      collect()
      let t = performance.now()
      const s = so.share(x)
      tShare.push(performance.now() - t)
      if (s[n - 1] !== x[n - 1]) throw new Error('share() returned different data')
      release(s) // the owner's last view: the segment is removed and its pages freed
      collect()
      t = performance.now()
      const c = x.slice()
      tSlice.push(performance.now() - t)
      if (c[n - 1] !== x[n - 1]) throw new Error('slice() returned different data')
    }
    last = { n, share: median(tShare), slice: median(tSlice) }
    console.log(`   N=${fmtN(n).padEnd(5)} share ${fmtMs(last.share).padStart(9)}   slice ${fmtMs(last.slice).padStart(9)}   ratio ${fmtRatio(last.share / last.slice)}`)
  }
  const r = last.share / last.slice
  record({ figure: `share() vs x.slice(), N=${fmtN(last.n)}`, value: last.share, unit: 'ms', reference: last.slice, referenceName: 'slice', ratio: r, target: '≤ 1.30×' })
  table.push([`1 share() vs x.slice(), N=${fmtN(last.n)}`, fmtMs(last.share), fmtMs(last.slice), fmtRatio(r), `≤ 1.30×${verdict(shown(r) <= 1.3)}`])
}

/**
 * Python's hand-over of each size (bench/py-handover.py): `{ ms: { [n]: median ms, ping: median
 * ms of the messaging alone } }` or `{ why }`.
 */
function pythonHandover(idleMs = IDLE_MS) {
  const script = fileURLToPath(new URL('./py-handover.py', import.meta.url))
  try {
    const out = execFileSync('python3', [script, String(W), String(FAST_REPS), String(idleMs), String(WARM_ROUNDS), ...SIZES.map(String)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
    return { ms: JSON.parse(out) }
  } catch (e) {
    return { why: e.code === 'ENOENT' ? 'python3 not found' : `python3 failed: ${e.message.split('\n')[0]}` }
  }
}

/**
 * Python's receivers, kept waiting (bench/py-handover.py --serve): `round(n)` times one
 * hand-over of n float64 to them, so that its rounds and ours can be taken in turn and the
 * host's load falls on both alike. Undefined where python3 cannot be had.
 */
async function pythonServer() {
  const script = fileURLToPath(new URL('./py-handover.py', import.meta.url))
  const p = spawn('python3', [script, '--serve', String(W), String(IDLE_MS), String(WARM_ROUNDS)], { stdio: ['pipe', 'pipe', 'inherit'] })
  const lines = readline.createInterface({ input: p.stdout })[Symbol.asyncIterator]()
  const next = async () => {
    const r = await lines.next()
    if (r.done) throw new Error('python3 --serve ended')
    return r.value
  }
  try {
    const [ok] = await Promise.race([next().then((l) => [l]), once(p, 'error')])
    if (ok !== 'ready') throw new Error(String(ok))
  } catch {
    p.kill()
    return undefined
  }
  return {
    round: async (n) => {
      p.stdin.write(`${n}\n`)
      return Number(await next())
    },
    end: async () => {
      p.stdin.end()
      await once(p, 'exit')
    },
  }
}

/** Times one posix_fallocate of `bytes` inside Python, so only the call itself is counted. */
function pythonFallocate(bytes) {
  const script = [
    'import os, sys, time',
    'path, n = sys.argv[1], int(sys.argv[2])',
    'fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)',
    'try:',
    '    t = time.perf_counter_ns()',
    '    os.posix_fallocate(fd, 0, n)',
    '    t = time.perf_counter_ns() - t',
    'finally:',
    '    os.close(fd)',
    '    os.unlink(path)',
    'print(t / 1e6)',
  ].join('\n')
  try {
    return Number(execFileSync('python3', ['-c', script, FALLOCATE_PATH, String(bytes)], { encoding: 'utf8' }).trim())
  } catch (e) {
    unlinkQuiet(FALLOCATE_PATH)
    if (e.code === 'ENOENT') return null // no python3: the figure is printed without reference
    throw e
  }
}

/** 2. alloc() against the floor it cannot beat: fallocate of the same bytes. */
function figAlloc() {
  console.log('\n2. alloc("float64", N) vs a bare posix_fallocate of the same bytes in /dev/shm, timed inside python3 (target ≤ 1.2×);')
  console.log('   alloc(..., { reserve: false }), just ftruncate (target < 5 ms)')
  release(so.alloc('float64', 1024))
  release(so.alloc('float64', 1024, { reserve: false }))
  let last = null
  let noPython = false
  for (const n of SIZES) {
    // The segment's whole size, header included, so both sides allocate the same bytes.
    const probe = so.alloc('float64', n, { reserve: false })
    const id = so.properties(probe).id
    const bytes = so.list().find((s) => s.id === id).size
    release(probe)
    const tAlloc = []
    const tLazy = []
    const tFall = []
    // No collection between repetitions: close() frees every segment at once, and a forced
    // collection just before would make V8 start marking at the next big external buffer.
    collect()
    for (let r = 0; r < FAST_REPS; r++) {
      let t = performance.now()
      let v = so.alloc('float64', n)
      tAlloc.push(performance.now() - t)
      release(v)
      t = performance.now()
      v = so.alloc('float64', n, { reserve: false })
      tLazy.push(performance.now() - t)
      release(v)
      const f = pythonFallocate(bytes)
      if (f === null) noPython = true
      else tFall.push(f)
    }
    last = { n, alloc: median(tAlloc), lazy: median(tLazy), fall: tFall.length ? median(tFall) : null }
    const ratio = last.fall ? fmtRatio(last.alloc / last.fall) : '—'
    console.log(
      `   N=${fmtN(n).padEnd(5)} alloc ${fmtMs(last.alloc).padStart(9)}   fallocate ${fmtMs(last.fall).padStart(9)}   ratio ${ratio.padStart(6)}   reserve:false ${fmtMs(last.lazy).padStart(9)}`,
    )
  }
  if (noPython) console.log('   python3 not found: no fallocate reference')
  const r = last.fall ? last.alloc / last.fall : null
  record({ figure: `alloc() vs fallocate, N=${fmtN(last.n)}`, value: last.alloc, unit: 'ms', reference: last.fall ?? undefined, referenceName: 'fallocate', ratio: r ?? undefined, target: '≤ 1.20×' })
  record({ figure: `alloc({ reserve: false }), N=${fmtN(last.n)}`, value: last.lazy, unit: 'ms', target: '< 5 ms' })
  table.push([`2 alloc() vs fallocate, N=${fmtN(last.n)}`, fmtMs(last.alloc), last.fall ? `${fmtMs(last.fall)} fallocate` : '—', fmtRatio(r), `≤ 1.20×${r === null ? '' : verdict(shown(r) <= 1.2)}`])
  table.push([`2 alloc({reserve:false}), N=${fmtN(last.n)}`, fmtMs(last.lazy), '—', '—', `< 5 ms${verdict(last.lazy < 5)}`])
}

/** 3 and 4. Hand-over to W waiting children per transport; then a child's sum both ways. */
async function figHandover() {
  const transports = ['json', 'advanced', 'file', 'sharedobject', ...(shm ? ['shm-typed-array'] : []), 'sab']
  const label = {
    json: 'JSON process.send',
    advanced: "serialization:'advanced'",
    file: 'file in /dev/shm',
    sharedobject: 'sharedobject',
    'shm-typed-array': 'shm-typed-array',
    sab: 'SharedArrayBuffer (workers)',
    channel: 'sharedobject by so.channel',
  }
  console.log(`\n3. Hand-over to ${W} waiting receivers: parent starts sending → all have the vector, read x[N-1] and replied`)
  console.log('   (json includes Array.from + JSON.stringify per child; file includes the parent writing it; sharedobject target < 5 ms, flat in N)')
  const sets = { json: await startKids('json'), advanced: await startKids('advanced'), worker: await startKids('worker') }
  const kidsFor = (t) => (t === 'advanced' ? sets.advanced : t === 'sab' ? sets.worker : sets.json)
  // 4's reader: a child of its own, its compiler tier held steady (see summer.mjs).
  const reader = await startKid('json', READER_FLAGS)
  const all = [...sets.json, ...sets.advanced, ...sets.worker, reader]
  const results = new Map() // n -> transport -> ms | string (why skipped)
  const sums = []
  let ping = 0 // ms: an empty request and reply to each sharedobject receiver, the messaging alone
  // The channels of the hand-over by so.channel: a handle out to each receiver, x[N-1] back.
  const ch = { requests: sets.json.map(() => so.channel({ capacity: 1, maxMessageBytes: 1024 })), replies: so.channel({ capacity: W, maxMessageBytes: 8 }) }
  // Python's receivers, whose rounds are taken in turn with the so.channel ones (see 3b).
  const pyServer = await pythonServer()
  const pyTurns = new Map() // n -> median ms of Python's rounds taken in turn with ours
  try {
    // Untimed rounds at a tiny size, back to back: load and compile every path first (see
    // WARM_ROUNDS; fewer for the process.send transports, whose rounds take longer).
    const tiny = makeData(1024)
    for (const t of transports) for (let r = 0; r < WARM_ROUNDS / 10; r++) await handover(t, kidsFor(t), tiny)
    await channelHandovers(sets.json, tiny, ch, WARM_ROUNDS, undefined, false)
    freeData(tiny)
    const pings = []
    for (let r = 0; r < FAST_REPS; r++) {
      await settle(all)
      await idle()
      const t0 = performance.now()
      await Promise.all(sets.json.map((k) => k.ask({ op: 'ping' })))
      pings.push(performance.now() - t0)
    }
    ping = median(pings)

    for (const n of SIZES) {
      const d = makeData(n)
      const row = new Map()
      results.set(n, row)
      for (const t of transports) {
        if (t === 'json' && jsonLength(d.x) > bufferConstants.MAX_STRING_LENGTH) {
          row.set(t, `skipped: ~${fmtMB(jsonLength(d.x))} of JSON text per child is past V8's ${fmtMB(bufferConstants.MAX_STRING_LENGTH)} string limit`)
          continue
        }
        const reps = t === 'json' || t === 'advanced' || t === 'file' ? slowReps(n) : FAST_REPS
        const times = []
        for (let r = 0; r < reps; r++) {
          await settle(all)
          await idle()
          times.push(await handover(t, kidsFor(t), d))
        }
        row.set(t, median(times))
      }
      await settle(all)
      const turns = []
      row.set('channel', median(await channelHandovers(sets.json, d, ch, FAST_REPS, pyServer && (async () => turns.push(await pyServer.round(n))))))
      if (turns.length) pyTurns.set(n, median(turns))
      const base = row.get('sharedobject')
      console.log(`   N=${fmtN(n)} (${fmtMB(n * 8)})`)
      for (const t of transports) {
        const v = row.get(t)
        const note = typeof v === 'string' ? v : `${fmtMs(v).padStart(9)}   ${t === 'sharedobject' ? '' : `${fmtRatio(v / base)} sharedobject's`}`
        console.log(`     ${label[t].padEnd(28)} ${note}`)
      }
      console.log(`     ${label.channel.padEnd(28)} ${fmtMs(row.get('channel')).padStart(9)}   ${fmtRatio(row.get('channel') / base)} sharedobject's (the handle through the package's own channel, not process.send; each receiver on a channel of its own, as each of Python's below on a pipe; they serve in a loop with no collection forced between hand-overs)`)

      // 4. In one child while the others idle: on 2 cores, four summing at once would time
      // the scheduler, not the memory. One segment per repetition: see the child's `sum`.
      const segs = Array.from({ length: n <= 1e7 ? FAST_REPS : REPS }, () => so.share(d.x))
      await settle(all)
      const s = await reader.ask({ op: 'sum', handles: segs.map((v) => so.handleOf(v)) })
      for (const v of segs) release(v)
      const want = summer(new Float64Array(8))(d.x)
      if (s.sums.length !== 1 || s.sums[0] !== want) throw new Error(`child sums ${s.sums} differ from the parent's ${want}`)
      sums.push({ n, cold: median(s.cold), background: median(s.background), warm: median(s.warm), private: median(s.private) })
      freeData(d)
    }
  } finally {
    await pyServer?.end()
    await stopKids(all)
    unlinkQuiet(FILE_PATH)
    ch.requests.forEach(release)
    release(ch.replies)
  }

  // 3b. The same hand-over done by Python's multiprocessing.shared_memory, between Python
  // processes (the peer with the cheapest attach), in this run, where python3 is present.
  const py = pythonHandover()
  const hot = py.why ? py : pythonHandover(0)
  console.log(`\n3b. The same hand-over in Python: ${W} waiting python3 processes attach a multiprocessing.shared_memory block by name`)
  console.log(`   and read x[N-1], each timed after every process slept ${IDLE_MS} ms, as above (target: sharedobject no slower on Node 26, within 2× on Node 22 and 24)`)
  if (py.why) console.log(`   not run: ${py.why}`)
  else {
    console.log(`   Python back to back, with no pause (its receivers replied a moment before): ${SIZES.map((n) => `N=${fmtN(n)} ${fmtMs(hot.ms[String(n)])}`).join(', ')}, the messaging alone ${fmtMs(hot.ms.ping)}`)
    for (const n of SIZES) record({ figure: `hand-over to ${W} processes, Python shared_memory back to back (no pause), N=${fmtN(n)}`, value: hot.ms[String(n)], unit: 'ms', reference: py.ms[String(n)], referenceName: `Python after ${IDLE_MS} ms asleep`, ratio: hot.ms[String(n)] / py.ms[String(n)] })
    for (const n of SIZES) {
      const mine = results.get(n).get('sharedobject')
      const theirs = py.ms[String(n)]
      console.log(`   N=${fmtN(n).padEnd(5)} sharedobject ${fmtMs(mine).padStart(9)}   Python shared_memory ${fmtMs(theirs).padStart(9)}   ratio ${fmtRatio(mine / theirs)}`)
      // A contrast: most of it is process.send's messaging (see "the messaging alone" below).
      record({ figure: `hand-over to ${W} processes, sharedobject by process.send vs Python shared_memory, N=${fmtN(n)}`, value: mine, unit: 'ms', reference: theirs, referenceName: 'Python shared_memory', ratio: mine / theirs })
    }
    // Python's hand-over runs over its pipes, ours above over process.send, each side's usual
    // messaging. The package's own channel is messaging too: the same hand-over through it,
    // against Python's rounds taken in turn with these (one of ours, one of Python's, each after
    // every process slept), where they could be.
    if (pyTurns.size) console.log(`   by so.channel, each round followed by one of Python's: Python ${SIZES.map((n) => `N=${fmtN(n)} ${fmtMs(pyTurns.get(n))}`).join(', ')}`)
    for (const n of SIZES) {
      const mine = results.get(n).get('channel')
      const theirs = pyTurns.get(n) ?? py.ms[String(n)]
      console.log(`   N=${fmtN(n).padEnd(5)} sharedobject by so.channel ${fmtMs(mine).padStart(9)}   Python shared_memory ${fmtMs(theirs).padStart(9)}   ratio ${fmtRatio(mine / theirs)}`)
      record({ figure: `hand-over to ${W} processes by so.channel vs Python shared_memory, N=${fmtN(n)}`, value: mine, unit: 'ms', reference: theirs, referenceName: 'Python shared_memory', ratio: mine / theirs, target: '≤ 1× on Node 26, ≤ 2× on 22/24' })
    }
  }
  // Each side's messaging alone, the same request and reply with nothing to open: what is left
  // above it is the attach itself.
  console.log(`   the messaging alone (an empty request and reply to each of the ${W}): process.send ${fmtMs(ping)}${py.why ? '' : `, Python's pipes ${fmtMs(py.ms.ping)}`}`)
  for (const n of SIZES) {
    const mine = results.get(n).get('sharedobject')
    const theirs = py.why ? undefined : py.ms[String(n)] - py.ms.ping
    console.log(`   N=${fmtN(n).padEnd(5)} attach beyond the messaging: sharedobject ${fmtMs(mine - ping).padStart(9)}${theirs === undefined ? '' : `   Python shared_memory ${fmtMs(theirs).padStart(9)}`}`)
  }
  record({ figure: `an empty process.send request and reply to ${W} processes`, value: ping, unit: 'ms', ...(py.why ? {} : { reference: py.ms.ping, referenceName: "Python's pipes", ratio: ping / py.ms.ping }) })

  const so0 = results.get(SIZES[0]).get('sharedobject')
  const soN = results.get(NMAX).get('sharedobject')
  const flat = SIZES.length > 1
  for (const n of SIZES) {
    for (const [t, v] of results.get(n)) {
      if (typeof v === 'number') record({ figure: `hand-over to ${W} processes, ${label[t]}, N=${fmtN(n)}`, value: v, unit: 'ms', ...(t === 'sharedobject' ? { target: '< 5 ms, flat' } : { reference: results.get(n).get('sharedobject'), referenceName: 'sharedobject', ratio: v / results.get(n).get('sharedobject') }) })
    }
  }
  table.push([
    `3 hand-over ×${W}, sharedobject, N=${fmtN(NMAX)}`,
    fmtMs(soN),
    flat ? `${fmtMs(so0)} at N=${fmtN(SIZES[0])}` : '—',
    flat ? fmtRatio(soN / so0) : '—',
    `< 5 ms, flat${verdict(soN < 5)}`,
  ])
  // 3b's target, on the package's own channel (process.send's messaging alone is several times
  // Python's whole hand-over): no slower than Python on Node 26, within 2× on older versions.
  if (!py.why) {
    const mine = results.get(NMAX).get('channel')
    const theirs = pyTurns.get(NMAX) ?? py.ms[String(NMAX)]
    const major = Number(process.versions.node.split('.')[0])
    const limit = major >= 26 ? 1 : major >= 22 ? 2 : undefined // none past end of life
    table.push([`3b hand-over ×${W} by so.channel, N=${fmtN(NMAX)}`, fmtMs(mine), `${fmtMs(theirs)} Python`, fmtRatio(mine / theirs), limit ? `≤ ${limit}×${verdict(shown(mine / theirs) <= limit)}` : '(Node < 22)'])
  }
  // The detail above has every transport; the summary keeps the usual alternative and the
  // in-process limit.
  for (const t of ['advanced', 'sab']) {
    const v = results.get(NMAX).get(t)
    if (typeof v === 'string') {
      table.push([`3   ${label[t]}, N=${fmtN(NMAX)}`, 'skipped', '—', '—', '(contrast)'])
    } else {
      table.push([`3   ${label[t]}, N=${fmtN(NMAX)}`, fmtMs(v), `${fmtMs(soN)} sharedobject`, fmtRatio(v / soN), '(contrast)'])
    }
  }

  console.log(`\n4. One child's open + first full read (a sum at memory speed, see bench/summer.mjs${READER_FLAGS.length ? `; ${READER_FLAGS.join(' ')}` : ''}) of a fresh`)
  console.log("   shared mapping, by default (pages mapped at first touch) and with populate: 'background', vs the same sum over a")
  console.log(`   private copy (target ≤ 1.6×); median over ${FAST_REPS} (N ≤ 1e7) or ${REPS} segments and as many copies: where a buffer lands moves its speed,`)
  console.log('   so the same sum over the same mapping once its pages are mapped is shown too: same pages, no faults')
  for (const s of sums) {
    console.log(
      `   N=${fmtN(s.n).padEnd(5)} background ${fmtMs(s.background).padStart(9)} (${fmtRatio(s.background / s.private)})   first touch ${fmtMs(s.cold).padStart(9)} (${fmtRatio(s.cold / s.private)})   private ${fmtMs(s.private).padStart(9)}   (the same mapping once mapped: ${fmtMs(s.warm)}; background ${fmtRatio(s.background / s.warm)}, first touch ${fmtRatio(s.cold / s.warm)} of it)`,
    )
  }
  const s = sums[sums.length - 1]
  for (const x of sums) {
    record({ figure: `a child's open + first full read, populate: 'background', vs a private copy, N=${fmtN(x.n)}`, value: x.background, unit: 'ms', reference: x.private, referenceName: 'private copy', ratio: x.background / x.private, target: '≤ 1.6×' })
    record({ figure: `a child's open + first full read, first touch, vs a private copy, N=${fmtN(x.n)}`, value: x.cold, unit: 'ms', reference: x.private, referenceName: 'private copy', ratio: x.cold / x.private })
  }
  const r = s.background / s.private
  table.push([`4 child first read, background, N=${fmtN(s.n)}`, fmtMs(s.background), fmtMs(s.private), fmtRatio(r), `≤ 1.6×${verdict(shown(r) <= 1.6)}`])
  table.push([`4 child first read, first touch, N=${fmtN(s.n)}`, fmtMs(s.cold), fmtMs(s.private), fmtRatio(s.cold / s.private), '(contrast)'])
}

/**
 * 5. Extra memory of parent + W children: PSS counts a page shared by k processes as 1/k to
 * each, so the sum over all of them is the memory the machine really spends.
 */
async function figMemory() {
  const n = NMAX
  const bytes = n * 8
  console.log(`\n5. Extra memory, N=${fmtN(n)} (${fmtMB(bytes)}): Σ PSS of parent + ${W} children after the hand-over (children keep the`)
  console.log('   vector and have summed it, so every page is touched) minus Σ PSS before the vector existed, ÷ vector size (target ≤ 1.05×)')
  for (const transport of ['sharedobject', 'advanced']) {
    // Fresh children, so that nothing left from the other figures is freed in between.
    const kids = await startKids(transport === 'advanced' ? 'advanced' : 'json')
    let v = null
    try {
      // A tiny hand-over first: the code and heap it needs are not part of the vector's cost.
      const tiny = transport === 'sharedobject' ? so.alloc('float64', 1024) : new Float64Array(1024)
      await Promise.all(kids.map((k) => k.ask({ op: 'take', transport, keep: true, x: tiny })))
      await Promise.all(kids.map((k) => k.ask({ op: 'drop' })))
      if (transport === 'sharedobject') release(tiny)
      await settle(kids)
      await settle(kids)
      const pids = [process.pid, ...kids.map((k) => k.pid)]
      const before = pids.map(pss)
      // sharedobject: allocated in shared memory and filled there, so the parent holds no
      // private copy. advanced: the ordinary private vector that gets serialised.
      v = fillRandom(transport === 'sharedobject' ? so.alloc('float64', n) : new Float64Array(n))
      await Promise.all(kids.map((k) => k.ask({ op: 'take', transport, keep: true, x: v })))
      await settle(kids)
      await settle(kids)
      const after = pids.map(pss)
      const extra = after.reduce((a, b) => a + b) - before.reduce((a, b) => a + b)
      const per = after.map((a, i) => fmtMB(a - before[i])).join(', ')
      const r = extra / bytes
      record({ figure: `extra PSS, ${transport}, N=${fmtN(n)}`, value: extra / 1e6, unit: 'MB', reference: bytes / 1e6, referenceName: 'vector', ratio: r, ...(transport === 'sharedobject' ? { target: '≤ 1.05×' } : {}) })
      console.log(`   ${transport.padEnd(13)} extra ${fmtMB(extra).padStart(10)}   ratio ${fmtRatio(r)}   (parent, children: ${per})`)
      table.push([
        `5 extra PSS, ${transport}, N=${fmtN(n)}`,
        fmtMB(extra),
        `${fmtMB(bytes)} vector`,
        fmtRatio(r),
        transport === 'sharedobject' ? `≤ 1.05×${verdict(shown(r) <= 1.05)}` : '(contrast)',
      ])
      await Promise.all(kids.map((k) => k.ask({ op: 'drop' })))
    } finally {
      await stopKids(kids)
      if (v && transport === 'sharedobject') release(v)
      v = null
      collect()
    }
  }
}

function printTable() {
  const head = ['figure', 'measured', 'reference', 'ratio', 'target']
  const rows = [head, ...table]
  const w = head.map((_, i) => Math.max(...rows.map((r) => r[i].length)))
  const line = (r) => r.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ')
  console.log('\nSummary')
  console.log(line(head))
  console.log(w.map((x) => '-'.repeat(x)).join('  '))
  for (const r of table) console.log(line(r))
  if (!shm) console.log('shm-typed-array: not installed (needs a native build script)')
}

// ---------------------------------------------------------------------------------------------
// Main

/** Ends what this run started and removes what it wrote, on any exit path. */
function cleanup() {
  for (const k of live) {
    k.ending = true
    if (k.kind === 'worker') k.ep.terminate()
    else k.ep.kill()
  }
  unlinkQuiet(FILE_PATH)
  unlinkQuiet(FALLOCATE_PATH)
  if (shm) {
    try {
      shm.destroy(STA_KEY)
    } catch {
      // not created
    }
  }
}
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    console.error(`\nbench: ${sig}: stopping the receivers and removing temporary files`)
    cleanup()
    // exit() rather than dying of the signal, so the addon removes the segments it owns.
    process.exit(130)
  })
}

const started = performance.now()
header()
try {
  figShare()
  figAlloc()
  await figHandover()
  await figMemory()
  printTable()
} finally {
  cleanup()
}
collect()
// Other processes may come and go in /dev/shm meanwhile, so say what is ours.
const shmAfter = shmEntries()
const added = shmAfter.filter((e) => !shmBefore.includes(e))
const removed = shmBefore.filter((e) => !shmAfter.includes(e))
// Segments whose handles were handed out stay openable until freed (or this process exits).
const handedOut = so.list().filter((s) => s.ownerPid === process.pid)
for (const s of handedOut) so.free(s.id)
if (handedOut.length) console.log(`\nfreed ${handedOut.length} segments this run had handed out (they would go at exit anyway)`)
const stillOwned = so.list().filter((s) => s.ownerPid === process.pid)
const ourFiles = added.filter((e) => e.startsWith(TMP_PREFIX))
console.log(`\n/dev/shm: ${shmBefore.length} entries before, ${shmAfter.length} after${added.length || removed.length ? '' : ', unchanged'}`)
if (added.length) console.log(`  new since the start: ${added.join(', ')}`)
if (removed.length) console.log(`  gone since the start (removed by their owner, or by the package's load-time sweep if their owner had died): ${removed.join(', ')}`)
if (stillOwned.length || ourFiles.length) {
  console.log(`  left by this run: ${[...ourFiles, ...stillOwned.map((s) => `segment ${s.id}`)].join(', ')}`)
}
console.log(`total time ${fmtMs(performance.now() - started)}`)
