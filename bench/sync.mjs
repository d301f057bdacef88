// Synchronisation: a wait/notify ping-pong between two processes beside a process.send round
// trip and a SharedArrayBuffer Atomics ping-pong between two threads (the in-process limit),
// mutex lock/unlock rates, uncontended and contended by 2 and 4 processes, and messaging side by
// side: a channel between processes (one producer and one consumer, 64 B and 1 MB messages; 4
// producers and 4 consumers) beside process.send (json and advanced) and a MessagePort between
// two threads. The floor of a round trip is a C futex ping-pong between two processes, built
// here with the system's C compiler where there is one (Linux).
// Run: node bench/sync.mjs [--quick]. Prints figures measured side by side; asserts nothing.
import { execFileSync, fork } from 'node:child_process'
import { once } from 'node:events'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import so from '@sharedobject/core'
import { record } from './report.mjs'
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
/** Timed runs of each messaging transport, after an untimed one, whose median is its figure. */
const RUNS = 3
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

// Two processes over one shared word, as the so.wait/notify ping-pong does, with nothing
// between them and the kernel's futex: what a round trip costs on this machine at the least.
// (A function, not a constant: main() runs above, before a constant here is set.)
function futexPingPong() {
  return String.raw`
#define _GNU_SOURCE
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double spin_us; /* how long a waiter watches the word before it sleeps; 0: not at all */
static double now_us(void);
static void park(atomic_int *w, int seen) {
  if (spin_us > 0) {
    double end = now_us() + spin_us;
    do {
      for (int i = 0; i < 64; i++) {
        if (atomic_load(w) != seen) return;
        __builtin_ia32_pause();
      }
    } while (now_us() < end);
  }
  syscall(SYS_futex, w, FUTEX_WAIT, seen, NULL, NULL, 0);
}
static void wake(atomic_int *w) { syscall(SYS_futex, w, FUTEX_WAKE, 1, NULL, NULL, 0); }
static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}
static int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  if (argc != 4) return 2;
  int rounds = atoi(argv[1]), warmup = atoi(argv[2]), total = rounds + warmup;
  spin_us = atof(argv[3]);
  atomic_int *w = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  double *times = malloc(sizeof(double) * rounds);
  if (w == MAP_FAILED || times == NULL || rounds < 1) return 1;
  pid_t pid = fork();
  if (pid < 0) return 1;
  if (pid == 0) {
    for (int k = 0; k < total; k++) {
      int ping = 2 * k + 1, seen;
      while ((seen = atomic_load(w)) != ping) park(w, seen);
      atomic_store(w, ping + 1);
      wake(w);
    }
    _exit(0);
  }
  for (int k = 0; k < total; k++) {
    int ping = 2 * k + 1;
    double t0 = now_us();
    atomic_store(w, ping);
    wake(w);
    while (atomic_load(w) == ping) park(w, ping);
    if (k >= warmup) times[k - warmup] = now_us() - t0;
  }
  waitpid(pid, NULL, 0);
  qsort(times, rounds, sizeof(double), by_value);
  printf("{\"median\":%.3f,\"p99\":%.3f}\n", times[rounds / 2], times[(int)(rounds * 0.99)]);
  return 0;
}
`
}

/**
 * The C futex ping-pong's round trips in µs ({ median, p99 } for a waiter that sleeps at once,
 * and `spinning` for one that first watches the word for `spinUs`, as so.wait does), or why it
 * could not run ({ why }).
 */
function futexFloor(spinUs) {
  if (process.platform !== 'linux') return { why: 'futex is Linux only' }
  if (process.arch !== 'x64') return { why: 'the ping-pong is built for x86-64' }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sobj-futex-'))
  try {
    fs.writeFileSync(path.join(dir, 'pingpong.c'), futexPingPong())
    try {
      execFileSync(process.env.CC ?? 'cc', ['-O2', '-o', path.join(dir, 'pingpong'), path.join(dir, 'pingpong.c')], { stdio: 'ignore' })
    } catch {
      return { why: 'no C compiler (cc) to build it' }
    }
    const run = (spin) => JSON.parse(execFileSync(path.join(dir, 'pingpong'), [String(ROUNDS), String(WARMUP), String(spin)], { encoding: 'utf8' }))
    return { ...run(0), spinning: run(spinUs) }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
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

/**
 * Milliseconds a loop of `n` pairs takes, the median of 5 rounds after one untimed round: each
 * loop runs as the optimising compiler leaves it, not half in the interpreter (a million pairs
 * take some tens of milliseconds, about as long as tiering up does).
 */
function steady(loop, n) {
  loop(n)
  const times = []
  for (let r = 0; r < 5; r++) {
    const t0 = performance.now()
    loop(n)
    times.push(performance.now() - t0)
  }
  return quantile(times, 0.5)
}

function uncontended() {
  const m = so.mutex()
  const plain = steady((n) => {
    for (let i = 0; i < n; i++) {
      m.lock()
      m.unlock()
    }
  }, LOCKS)
  const withLock = steady((n) => {
    for (let i = 0; i < n; i++) m.withLock(() => i)
  }, LOCKS)
  release(m)
  // The anchor: a bare compareExchange and store on a SharedArrayBuffer, what a lock and unlock
  // with nothing to check would cost here.
  const bare = new Int32Array(new SharedArrayBuffer(64))
  return {
    plain,
    withLock,
    bare: steady((n) => {
      for (let i = 0; i < n; i++) {
        Atomics.compareExchange(bare, 0, 0, 1)
        Atomics.store(bare, 0, 0)
      }
    }, LOCKS),
  }
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
  const run = (count) =>
    Promise.all([
      ...kids.slice(0, producers).map((c) => request(c, { op: 'send', h, n: count / producers, size })),
      ...kids.slice(producers).map((c) => request(c, { op: 'receive', h, n: count / consumers })),
    ])
  const ms = await timed(run, n, producers * consumers)
  for (const c of kids) c.send({ op: 'exit' })
  await Promise.all(kids.map((c) => once(c, 'exit')))
  release(ch)
  return ms
}

/**
 * An untimed round before each timed one, in the same processes and threads, for every
 * transport alike: their first messages pay for code not yet optimised and for memory the
 * allocator has not yet handed out (a 1 MB message is a fresh mapping until it has). A multiple
 * of `parties` so that each party gets a whole share.
 */
function warmupOf(n, parties = 1) {
  return Math.max(parties, Math.ceil(n / 10 / parties) * parties)
}

/**
 * The median of {@link RUNS} timed calls of `run(n)` after an untimed `run` of a tenth as many,
 * in milliseconds: one run of a few hundred milliseconds swings with the host (a transport that
 * makes a fresh megabyte per message pays for its page faults more in some runs than others).
 */
async function timed(run, n, parties = 1) {
  await run(warmupOf(n, parties))
  const times = []
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now()
    await run(n)
    times.push(performance.now() - t0)
  }
  return quantile(times, 0.5)
}

/**
 * Bursts of messages from `source` (a child process or a worker): the function returned asks for
 * `count` with `ask(count)` and resolves when the last of them has arrived.
 */
function bursts(source, ask) {
  let got = 0
  let want = 0
  let done = () => {}
  source.on('message', () => ++got === want && done())
  return (count) =>
    new Promise((resolve) => {
      got = 0
      want = count
      done = resolve
      ask(count)
    })
}

/** process.send from a child, `n` messages of `size` bytes, until the last one arrives. */
async function ipcRun(advanced, n, size) {
  const c = await child(advanced ? 'advanced' : 'json')
  const burst = bursts(c, (count) => c.send({ op: 'burst', n: count, size, advanced }))
  const ms = await timed(burst, n)
  c.send({ op: 'exit' })
  await once(c, 'exit')
  return ms
}

/** A MessagePort between two threads: a worker posts `n` messages of `size` bytes. */
async function portRun(n, size) {
  const code = `
    const { parentPort, workerData } = require('node:worker_threads')
    parentPort.on('message', (count) => {
      const msg = new Uint8Array(workerData.size)
      for (let i = 0; i < count; i++) parentPort.postMessage(msg)
    })
  `
  const w = new Worker(code, { eval: true, workerData: { size } })
  await once(w, 'online')
  const burst = bursts(w, (count) => w.postMessage(count))
  const ms = await timed(burst, n)
  await w.terminate()
  return ms
}

async function messaging() {
  console.log('\nmessaging throughput, one producer and one consumer unless said; each the median of 3 runs after an untimed one of a tenth as many messages')
  const line = (name, figure) => console.log(`  ${name.padEnd(46)} ${figure}`)
  const small = {}
  const big = {}
  line('so.channel, two processes, 64 B', msgRate(MSGS, (small.channel = await channelRun(1, 1, MSGS, 64))))
  line('process.send json, two processes, 64 B', msgRate(MSGS, (small.json = await ipcRun(false, MSGS, 64))))
  line("process.send 'advanced', two processes, 64 B", msgRate(MSGS, (small.advanced = await ipcRun(true, MSGS, 64))))
  line('MessagePort, two threads, 64 B', msgRate(MSGS, (small.port = await portRun(MSGS, 64))))
  line('so.channel, 4 × 4 processes, 64 B (total)', msgRate(MSGS, (small.many = await channelRun(4, 4, MSGS, 64))))
  line('so.channel, two processes, 1 MB', gbRate(BIG, MB, (big.channel = await channelRun(1, 1, BIG, MB))))
  line("process.send 'advanced', two processes, 1 MB", gbRate(BIG, MB, (big.advanced = await ipcRun(true, BIG, MB))))
  line('MessagePort, two threads, 1 MB (a copy each)', gbRate(BIG, MB, (big.port = await portRun(BIG, MB))))
  const msgs = (ms) => MSGS / ms / 1000 // M msgs/s
  const gbs = (ms) => (BIG * MB) / (ms / 1000) / 1e9
  record({ figure: 'channel, 1 producer 1 consumer, 64 B, vs MessagePort between threads', value: msgs(small.channel), unit: 'M msgs/s', reference: msgs(small.port), referenceName: 'MessagePort', ratio: small.port / small.channel, target: '≥ 2 M msgs/s' })
  record({ figure: "channel, 64 B, vs process.send 'advanced'", value: msgs(small.channel), unit: 'M msgs/s', reference: msgs(small.advanced), referenceName: "process.send 'advanced'", ratio: small.advanced / small.channel })
  record({ figure: 'channel, 4 producers 4 consumers, 64 B (total)', value: msgs(small.many), unit: 'M msgs/s', target: '≥ 1 M msgs/s' })
  record({ figure: "channel, 1 MB messages, vs process.send 'advanced'", value: gbs(big.channel), unit: 'GB/s', reference: gbs(big.advanced), referenceName: "process.send 'advanced'", ratio: big.advanced / big.channel, target: '≥ 4 GB/s' })
}

async function main() {
  console.log(`sync bench: ${os.cpus().length} cores, Node ${process.version}, ${process.platform}${quick ? ', quick' : ''}`)
  const { times, send } = await crossProcess()
  const sab = await threads()
  // so.wait watches its word for 50 µs before it sleeps (WAIT_SPIN in crates/core/src/sync.rs).
  const floor = futexFloor(50)
  const line = (name, median, p99) => console.log(`  ${name.padEnd(46)} median ${us(median).padStart(8)}   p99 ${us(p99).padStart(8)}`)
  const row = (name, xs) => line(name, quantile(xs, 0.5), quantile(xs, 0.99))
  console.log('\nround trip (ping, answer), microseconds')
  row('so.wait/notify, two processes', times)
  row('process.send, two processes', send)
  row('SharedArrayBuffer Atomics, two threads', sab)
  if (floor.why) console.log(`  C futex ping-pong, two processes: not run: ${floor.why}`)
  else {
    line('C futex ping-pong, two processes (the floor)', floor.median, floor.p99)
    line('C, watching 50 µs before each futex sleep', floor.spinning.median, floor.spinning.p99)
  }
  const rtt = quantile(times, 0.5)
  const speedup = quantile(send, 0.5) / rtt
  console.log(`  cross-process wait/notify is ${speedup.toFixed(1)}× faster than process.send (median; target ≥ 4×)`)
  record({ figure: 'round trip, so.wait/notify vs process.send, two processes', value: rtt, unit: 'µs', reference: quantile(send, 0.5), referenceName: 'process.send', ratio: rtt / quantile(send, 0.5), target: '≤ 0.25×' })
  if (!floor.why) {
    console.log(`  so.wait/notify is ${(rtt / floor.median).toFixed(2)}× the C futex floor (median; target ≤ 1.5×)`)
    record({ figure: 'round trip, so.wait/notify vs a C futex ping-pong', value: rtt, unit: 'µs', reference: floor.median, referenceName: 'C futex', ratio: rtt / floor.median, target: '≤ 1.5×' })
    const spun = floor.spinning.median
    console.log(`  so.wait/notify is ${(rtt / spun).toFixed(1)}× the C ping-pong that watches the word as it does (median): the rest is two calls into Node-API and back each way`)
    record({ figure: 'round trip, so.wait/notify vs C watching then futex', value: rtt, unit: 'µs', reference: spun, referenceName: 'C spin + futex', ratio: rtt / spun })
  }

  const u = uncontended()
  console.log('\nmutex lock + unlock (each the median of 5 loops of a million pairs, after one untimed)')
  console.log(`  uncontended, lock()/unlock()               ${rate(LOCKS, u.plain)}`)
  console.log(`  uncontended, withLock(fn)                  ${rate(LOCKS, u.withLock)}`)
  console.log(`  bare Atomics compareExchange + store       ${rate(LOCKS, u.bare)} (the anchor: lock()/unlock() at ${(u.bare / u.plain).toFixed(2)}× its rate)`)
  record({ figure: 'mutex, uncontended lock()/unlock()', value: (LOCKS / u.plain) * 1000 / 1e6, unit: 'M pairs/s', reference: (LOCKS / u.bare) * 1000 / 1e6, referenceName: 'bare compareExchange + store', target: '≥ 20 M/s' })
  for (const n of [2, 4]) {
    const ms = await contended(n)
    console.log(`  contended by ${n} processes (total)          ${rate(n * CONTENDED, ms)}`)
    record({ figure: `mutex, contended by ${n} processes (total)`, value: ((n * CONTENDED) / ms) * 1000 / 1e6, unit: 'M pairs/s', ...(n === 4 ? { target: '≥ 2 M/s' } : {}) })
  }
  await messaging()
}
