// Synchronisation: a wait/notify ping-pong between two processes beside a process.send round
// trip and a SharedArrayBuffer Atomics ping-pong between two threads (the in-process limit),
// mutex lock/unlock rates, uncontended and contended by 2 and 4 processes, and messaging side by
// side: a channel between processes (one producer and one consumer, 64 B and 1 MB messages; 4
// producers and 4 consumers) beside process.send (json and advanced) and a MessagePort between
// two threads.
// Run: node bench/sync.mjs [--quick]. Prints figures measured side by side; asserts nothing.
import { fork } from 'node:child_process'
import { once } from 'node:events'
import os from 'node:os'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import so from '@sharedobject/core'
// A segment whose handle was handed out stays openable until it is freed (or its owner exits):
// free it, then give this process's mapping back.
const release = (v) => {
  so.free(v)
  return so.close(v)
}

const quick = process.argv.includes('--quick')
const ROUNDS = quick ? 5_000 : 20_000
const SEND_ROUNDS = quick ? 2_000 : 10_000
const WARMUP = 1_000
const LOCKS = quick ? 200_000 : 1_000_000
const CONTENDED = quick ? 50_000 : 200_000 // lock/unlock pairs per process

const quantile = (xs, q) => {
  const s = Float64Array.from(xs).sort()
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]
}
const us = (x) => `${x.toFixed(x < 10 ? 1 : 0)} µs`
const rate = (n, ms) => `${((n / ms) * 1000 / 1e6).toFixed(2)} M/s (${((ms * 1e6) / n).toFixed(0)} ns a pair)`
const MSGS = quick ? 50_000 : 400_000
const BIG = quick ? 200 : 1000 // 1 MB messages
const MB = 1 << 20
const msgRate = (n, ms) => `${((n / ms) * 1000 / 1e6).toFixed(2)} M msgs/s`
const gbRate = (n, size, ms) => `${((n * size) / (ms / 1000) / 1e9).toFixed(2)} GB/s`

/**
 * One side of a ping-pong over word 0 of `v`: the pinger writes odd numbers and waits for the
 * next even one; the ponger answers each odd number with the next even one. Returns the round
 * trips in microseconds (pinger) or nothing (ponger).
 */
function pingPong(v, rounds, role, wait, notify) {
  const times = role === 'ping' ? new Float64Array(rounds) : null
  for (let k = 0; k < rounds; k++) {
    const ping = 2 * k + 1
    if (role === 'ping') {
      const t0 = process.hrtime.bigint()
      Atomics.store(v, 0, ping)
      notify(v, 0)
      while (Atomics.load(v, 0) === ping) wait(v, 0, ping)
      times[k] = Number(process.hrtime.bigint() - t0) / 1000
    } else {
      while (Atomics.load(v, 0) !== ping) wait(v, 0, ping - 1)
      Atomics.store(v, 0, ping + 1)
      notify(v, 0)
    }
  }
  return times
}

const role = process.argv[2]
if (role === 'pong') {
  // A child: answers a wait/notify ping-pong, echoes process.send, or locks and unlocks.
  process.on('message', (m) => {
    if (m.op === 'pong') {
      pingPong(so.open(m.h), m.rounds, 'pong', so.wait, so.notify)
      process.send({ done: true })
    } else if (m.op === 'echo') {
      process.send(m)
    } else if (m.op === 'contend') {
      const mutex = so.open(m.mutex)
      const start = so.open(m.start)
      let sum = 0
      start.wait()
      const t0 = performance.now()
      for (let i = 0; i < m.n; i++) {
        mutex.lock()
        sum++
        mutex.unlock()
      }
      process.send({ ms: performance.now() - t0, sum })
    } else if (m.op === 'receive') {
      const ch = so.open(m.h)
      for (let i = 0; i < m.n; i++) ch.receive()
      process.send({ done: true })
    } else if (m.op === 'send') {
      const ch = so.open(m.h)
      const msg = new Uint8Array(m.size)
      for (let i = 0; i < m.n; i++) ch.send(msg)
      process.send({ done: true })
    } else if (m.op === 'burst') {
      // process.send as fast as the channel takes it: json strings, or bytes with 'advanced'.
      const msg = m.advanced ? new Uint8Array(m.size) : 'x'.repeat(m.size)
      for (let i = 0; i < m.n; i++) process.send(msg)
    } else if (m.op === 'exit') {
      process.disconnect()
    }
  })
  process.send({ ready: true })
} else {
  await main()
}

async function child(serialization = 'json') {
  const c = fork(fileURLToPath(import.meta.url), ['pong'], { serialization, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  await once(c, 'message')
  return c
}

async function request(c, message) {
  const reply = once(c, 'message')
  c.send(message)
  return (await reply)[0]
}

async function crossProcess() {
  const c = await child()
  const v = so.alloc('int32', 1)
  const done = request(c, { op: 'pong', h: so.handleOf(v), rounds: WARMUP + ROUNDS })
  const times = pingPong(v, WARMUP + ROUNDS, 'ping', so.wait, so.notify).subarray(WARMUP)
  await done
  const send = []
  for (let k = 0; k < WARMUP + SEND_ROUNDS; k++) {
    const t0 = process.hrtime.bigint()
    await request(c, { op: 'echo', k })
    if (k >= WARMUP) send.push(Number(process.hrtime.bigint() - t0) / 1000)
  }
  c.send({ op: 'exit' })
  await once(c, 'exit')
  release(v)
  return { times, send }
}

async function threads() {
  const sab = new Int32Array(new SharedArrayBuffer(4))
  const code = `
    const { workerData } = require('node:worker_threads')
    const v = workerData.v
    for (let k = 0; k < workerData.rounds; k++) {
      const ping = 2 * k + 1
      while (Atomics.load(v, 0) !== ping) Atomics.wait(v, 0, ping - 1)
      Atomics.store(v, 0, ping + 1)
      Atomics.notify(v, 0)
    }
  `
  const w = new Worker(code, { eval: true, workerData: { v: sab, rounds: WARMUP + ROUNDS } })
  await once(w, 'online')
  const times = pingPong(sab, WARMUP + ROUNDS, 'ping', Atomics.wait, Atomics.notify).subarray(WARMUP)
  await once(w, 'exit')
  return times
}

function uncontended() {
  const m = so.mutex()
  for (let i = 0; i < 10_000; i++) m.lock().unlock()
  let t0 = performance.now()
  for (let i = 0; i < LOCKS; i++) {
    m.lock()
    m.unlock()
  }
  const plain = performance.now() - t0
  t0 = performance.now()
  for (let i = 0; i < LOCKS; i++) m.withLock(() => i)
  const withLock = performance.now() - t0
  release(m)
  return { plain, withLock }
}

async function contended(n) {
  const kids = await Promise.all(Array.from({ length: n }, child))
  const mutex = so.mutex()
  const start = so.barrier(n)
  const results = await Promise.all(kids.map((c) => request(c, { op: 'contend', mutex: so.handleOf(mutex), start: so.handleOf(start), n: CONTENDED })))
  for (const c of kids) c.send({ op: 'exit' })
  await Promise.all(kids.map((c) => once(c, 'exit')))
  release(mutex)
  release(start)
  return Math.max(...results.map((r) => r.ms))
}


/** A channel between processes: `producers` children send `n` messages of `size` bytes in all. */
async function channelRun(producers, consumers, n, size) {
  const kids = await Promise.all(Array.from({ length: producers + consumers }, () => child()))
  const ch = so.channel({ capacity: size >= MB ? 8 : 1024, maxMessageBytes: size })
  const h = so.handleOf(ch)
  const t0 = performance.now()
  await Promise.all([
    ...kids.slice(0, producers).map((c) => request(c, { op: 'send', h, n: n / producers, size })),
    ...kids.slice(producers).map((c) => request(c, { op: 'receive', h, n: n / consumers })),
  ])
  const ms = performance.now() - t0
  for (const c of kids) c.send({ op: 'exit' })
  await Promise.all(kids.map((c) => once(c, 'exit')))
  release(ch)
  return ms
}

/** process.send from a child, `n` messages of `size` bytes, until the last one arrives. */
async function ipcRun(advanced, n, size) {
  const c = await child(advanced ? 'advanced' : 'json')
  let got = 0
  const t0 = performance.now()
  await new Promise((resolve) => {
    c.on('message', () => ++got === n && resolve())
    c.send({ op: 'burst', n, size, advanced })
  })
  const ms = performance.now() - t0
  c.send({ op: 'exit' })
  await once(c, 'exit')
  return ms
}

/** A MessagePort between two threads: a worker posts `n` messages of `size` bytes. */
async function portRun(n, size) {
  const code = `
    const { parentPort, workerData } = require('node:worker_threads')
    parentPort.once('message', () => {
      const msg = new Uint8Array(workerData.size)
      for (let i = 0; i < workerData.n; i++) parentPort.postMessage(msg)
    })
  `
  const w = new Worker(code, { eval: true, workerData: { n, size } })
  await once(w, 'online')
  let got = 0
  const t0 = performance.now()
  await new Promise((resolve) => {
    w.on('message', () => ++got === n && resolve())
    w.postMessage('go')
  })
  const ms = performance.now() - t0
  await w.terminate()
  return ms
}

async function messaging() {
  console.log('\nmessaging throughput, one producer and one consumer unless said')
  const line = (name, figure) => console.log(`  ${name.padEnd(46)} ${figure}`)
  line('so.channel, two processes, 64 B', msgRate(MSGS, await channelRun(1, 1, MSGS, 64)))
  line('process.send json, two processes, 64 B', msgRate(MSGS, await ipcRun(false, MSGS, 64)))
  line("process.send 'advanced', two processes, 64 B", msgRate(MSGS, await ipcRun(true, MSGS, 64)))
  line('MessagePort, two threads, 64 B', msgRate(MSGS, await portRun(MSGS, 64)))
  line('so.channel, 4 × 4 processes, 64 B (total)', msgRate(MSGS, await channelRun(4, 4, MSGS, 64)))
  line('so.channel, two processes, 1 MB', gbRate(BIG, MB, await channelRun(1, 1, BIG, MB)))
  line("process.send 'advanced', two processes, 1 MB", gbRate(BIG, MB, await ipcRun(true, BIG, MB)))
  line('MessagePort, two threads, 1 MB (a copy each)', gbRate(BIG, MB, await portRun(BIG, MB)))
}

async function main() {
  console.log(`sync bench: ${os.cpus().length} cores, Node ${process.version}, ${process.platform}${quick ? ', quick' : ''}`)
  const { times, send } = await crossProcess()
  const sab = await threads()
  const row = (name, xs) => console.log(`  ${name.padEnd(46)} median ${us(quantile(xs, 0.5)).padStart(8)}   p99 ${us(quantile(xs, 0.99)).padStart(8)}`)
  console.log('\nround trip (ping, answer), microseconds')
  row('so.wait/notify, two processes', times)
  row('process.send, two processes', send)
  row('SharedArrayBuffer Atomics, two threads', sab)
  const speedup = quantile(send, 0.5) / quantile(times, 0.5)
  console.log(`  cross-process wait/notify is ${speedup.toFixed(1)}× faster than process.send (median)`)

  const u = uncontended()
  console.log('\nmutex lock + unlock')
  console.log(`  uncontended, lock()/unlock()               ${rate(LOCKS, u.plain)}`)
  console.log(`  uncontended, withLock(fn)                  ${rate(LOCKS, u.withLock)}`)
  for (const n of [2, 4]) {
    const ms = await contended(n)
    console.log(`  contended by ${n} processes (total)          ${rate(n * CONTENDED, ms)}`)
  }
  await messaging()
}
