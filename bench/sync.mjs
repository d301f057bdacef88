// Synchronisation: a wait/notify ping-pong between two processes beside a process.send round
// trip and a SharedArrayBuffer Atomics ping-pong between two threads (the in-process limit), and
// mutex lock/unlock rates, uncontended and contended by 2 and 4 processes.
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
    } else if (m.op === 'exit') {
      process.disconnect()
    }
  })
  process.send({ ready: true })
} else {
  await main()
}

async function child() {
  const c = fork(fileURLToPath(import.meta.url), ['pong'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
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
}
