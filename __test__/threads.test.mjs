// Worker threads and SharedArrayBuffer views: where Node can make SharedArrayBuffers over a
// mapping (can.sharedBuffers), a vector posted to a worker is the same memory, Atomics.wait works,
// and close() stays memory-safe while another thread still uses the buffer. Elsewhere views are
// external ArrayBuffers, and these tests check what the README says happens there instead.
import test from 'ava'
import { Worker } from 'node:worker_threads'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import so from '@sharedobject/core'
import { can } from './helpers.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))

/** A worker running `body` with `so` (the package) and `port` (its parentPort) in scope. */
function worker(body, workerData) {
  const code = `const so = require(${JSON.stringify(root)}); const { parentPort: port, workerData } = require('node:worker_threads'); ${body}`
  return new Worker(code, { eval: true, workerData })
}

test.serial('views are SharedArrayBuffers exactly where the runtime can make them', (t) => {
  const x = so.alloc('float64', 4)
  t.is(x.buffer instanceof SharedArrayBuffer, can.sharedBuffers)
  t.is(so.share(['a']).buffer instanceof SharedArrayBuffer, can.sharedBuffers)
  t.true(so.mapSharedMemory(so.allocateSharedMemory(8, 'thrdev')) instanceof ArrayBuffer, 'developer buffers stay ArrayBuffers, which unmapping detaches')
  so.freeSharedMemory('thrdev')
  so.close(x)
})

test.serial('a vector posted to a worker is the same memory there, and still a shared vector', async (t) => {
  const x = so.share(Float64Array.from({ length: 100 }, (_, i) => i))
  const w = worker(`port.once('message', ({ x }) => {
    x[0] = 42
    port.postMessage({ sum: x.reduce((a, b) => a + b), shared: so.isShared(x), json: JSON.stringify({ p: x.subarray(10, 20) }, so.replacer), kind: so.isShared(x) ? so.properties(x).kind : null })
  })`)
  w.postMessage({ x })
  const [r] = await once(w, 'message')
  await w.terminate()
  if (can.sharedBuffers) {
    t.is(x[0], 42, 'the worker wrote into the parent’s memory')
    t.true(r.shared)
    t.is(r.kind, 'float64')
    const part = so.revive(JSON.parse(r.json)).p
    t.deepEqual(Array.from(part), Array.from({ length: 10 }, (_, i) => i + 10))
    t.is(part.buffer, x.buffer, 'the worker’s JSON names a part of this very segment')
  } else {
    // An external ArrayBuffer is copied by the structured clone: the README says so.
    t.is(x[0], 0)
    t.false(r.shared)
  }
  so.close(x)
})

test.serial('Atomics.wait and notify work on int32 and int64 vectors between threads', async (t) => {
  const i32 = so.alloc('int32', 4)
  const i64 = so.alloc('int64', 4)
  if (!can.sharedBuffers) {
    t.throws(() => Atomics.wait(i32, 0, 0, 0), { instanceOf: TypeError })
    t.is(Atomics.notify(i32, 0), 0, 'notify on a non-shared array wakes nobody')
    so.close(i32)
    so.close(i64)
    return
  }
  t.is(Atomics.wait(i32, 0, 1, 0), 'not-equal')
  t.is(Atomics.wait(i64, 0, 0n, 1), 'timed-out')
  const w = worker(`port.once('message', ({ i32, i64 }) => {
    port.postMessage('ready')
    const a = Atomics.wait(i32, 0, 0, 10000)
    const b = Atomics.wait(i64, 1, 0n, 10000)
    port.postMessage({ a, b, seen: i32[0] + Number(i64[1]) })
  })`)
  w.postMessage({ i32, i64 })
  await once(w, 'message')
  const done = once(w, 'message')
  // Wake it until it has woken: it may not be waiting yet when the first notify comes.
  const poke = setInterval(() => {
    Atomics.store(i32, 0, 5)
    Atomics.notify(i32, 0)
    Atomics.store(i64, 1, 7n)
    Atomics.notify(i64, 1)
  }, 5)
  const [r] = await done
  clearInterval(poke)
  await w.terminate()
  t.true(['ok', 'not-equal'].includes(r.a) && ['ok', 'not-equal'].includes(r.b), JSON.stringify(r))
  t.is(r.seen, 12)
  so.close(i32)
  so.close(i64)
})

test.serial('close() while a worker still reads and writes the buffer: zeros, no crash, the same length', async (t) => {
  const live = so.stats().live
  const x = so.share(new Float64Array(1 << 16).fill(1))
  const w = worker(`port.once('message', ({ x }) => {
    let first = 0
    for (let i = 0; i < x.length; i++) first += x[i]
    port.postMessage('running')
    let sums = [first]
    const end = Date.now() + 300
    while (Date.now() < end) {
      let s = 0
      for (let i = 0; i < x.length; i++) { s += x[i]; x[i] = 1 }
      sums.push(s)
    }
    port.postMessage({ first: sums[0], last: sums[sums.length - 1], length: x.length })
  })`)
  w.postMessage({ x })
  await once(w, 'message')
  so.close(x)
  const [r] = await once(w, 'message')
  await w.terminate()
  if (can.sharedBuffers) {
    t.is(r.length, 1 << 16, 'a SharedArrayBuffer keeps its length')
    t.is(r.first, 1 << 16)
    // After close, pages are private zero pages: the worker's own writes land there, so it reads
    // ones it wrote or zeros, never a fault.
    t.true(r.last >= 0 && r.last <= 1 << 16)
    t.is(x.length, 1 << 16)
    t.throws(() => so.handleOf(x), { code: 'ERR_SHM_CLOSED' })
  } else {
    t.is(r.length, 1 << 16, 'the worker held its own copy')
    t.is(x.length, 0, 'an ArrayBuffer is detached')
  }
  t.true(so.stats().live <= live, 'the mapping is retired (others may have been collected meanwhile)')
})

test.serial('a loop that shares and drops big vectors is collected without gc() calls', async (t) => {
  // 48 × 32 MB: without the creator reporting its segments to the engine, nothing would make V8
  // collect the small objects that hold them, and every segment would stay mapped.
  const before = so.stats().mappings
  let peak = 0
  for (let i = 0; i < 48; i++) {
    const x = so.alloc('float64', 4e6)
    x[i] = i
    peak = Math.max(peak, so.stats().mappings - before)
    await new Promise((r) => setImmediate(r))
  }
  t.true(peak < 40, `${peak} of 48 segments were alive at once`)
})
