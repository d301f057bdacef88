import test from 'ava'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { Worker } from 'node:worker_threads'
import so from '@sharedobject/core'
import { spawn } from 'node:child_process'
import { spawnChild, run, can, when, until, binding } from './helpers.mjs'

// The primitives apps build on: condition variables, semaphores, channels, and the barrier's
// broken state. Every cross-process behaviour runs in real child processes, and every crash is
// a real SIGKILL. Some tests block the main thread on purpose, so they run one at a time.

async function children(t, n) {
  const kids = await Promise.all(Array.from({ length: n }, () => spawnChild()))
  // Some tests kill a child themselves: ending it again is not an error.
  t.teardown(() => Promise.all(kids.map((k) => Promise.resolve().then(() => k.exit()).catch(() => {}))))
  return kids
}

const ROOT = JSON.stringify(fileURLToPath(new URL('..', import.meta.url)))

/** A worker thread running `body` (CommonJS source) with `so`, `workerData` and `parentPort` in scope. */
function worker(body, workerData) {
  const code = `
    const { parentPort, workerData } = require('node:worker_threads')
    const so = require(${ROOT})
    ;(async () => { ${body} })().catch((e) => parentPort.postMessage({ error: e.code ?? e.message }))
  `
  return new Worker(code, { eval: true, workerData })
}

function track(p) {
  const s = { done: false, p }
  p.finally(() => (s.done = true)).catch(() => {})
  return s
}

/**
 * Waits until a child counting its steps in `steps` has made `n` of them. Fails, never hangs,
 * when the child's `running` loop ends first (its error says why) or a minute passes.
 */
async function reachStep(steps, n, running) {
  let ended
  running.then(
    (value) => (ended = { value }),
    (error) => (ended = { error }),
  )
  await until(() => ended || Atomics.load(steps, 0) >= n, 60_000, 0)
  const made = Atomics.load(steps, 0)
  if (made >= n) return
  if (ended) throw new Error(`the child's loop ended at step ${made} of ${n}: ${ended.error?.message ?? JSON.stringify(ended.value)}`)
  throw new Error(`the child made ${made} of ${n} steps in a minute`)
}

const u32 = (n) => new Uint8Array(new Uint32Array([n]).buffer)
const fromU32 = (b) => new Uint32Array(b.buffer.slice(b.byteOffset, b.byteOffset + 4))[0]

test.serial('a channel passes bytes, strings and Buffers as Uint8Arrays, and says full and empty', (t) => {
  const ch = so.channel({ capacity: 3, maxMessageBytes: 8 })
  t.is(ch.capacity, 3)
  t.is(ch.maxMessageBytes, 8)
  t.is(ch.tryReceive(), undefined, 'empty')
  t.true(ch.trySend(new Uint8Array([1, 2, 3])))
  t.true(ch.trySend('héllo'))
  t.true(ch.trySend(Buffer.from([9])))
  t.false(ch.trySend('full'), 'trySend is false when full')
  t.is(ch.length, 3)
  const a = ch.tryReceive()
  t.true(a instanceof Uint8Array)
  t.deepEqual([...a], [1, 2, 3])
  t.is(Buffer.from(ch.tryReceive()).toString(), 'héllo')
  t.deepEqual([...ch.receive()], [9])
  t.is(ch.receive(10), undefined, 'receive times out empty-handed')
  t.true(ch.send(new Uint8Array(0)))
  t.is(ch.receive().length, 0, 'an empty message is a message')
  const big = t.throws(() => ch.send(new Uint8Array(9)))
  t.is(big.code, 'ERR_OUT_OF_RANGE')
  t.is(t.throws(() => ch.send(42)).code, 'ERR_INVALID_ARG_TYPE')
  t.is(t.throws(() => so.channel({ capacity: 0 })).code, 'ERR_OUT_OF_RANGE')
  t.is(t.throws(() => so.channel({ size: 1 })).code, 'ERR_INVALID_ARG_VALUE')
  so.free(ch)
})

test.serial('a message of any view (offset, DataView, Float64Array, a shared vector) is sent as exactly its bytes', (t) => {
  const ch = so.channel({ capacity: 8, maxMessageBytes: 64 })
  const backing = new Uint8Array(32).map((_, i) => i)
  const shared = so.share(new Float64Array([1.5, -2, Math.PI]))
  const views = [backing.subarray(5, 9), new DataView(backing.buffer, 10, 3), new Float64Array([0.25]), shared, new Uint16Array(backing.buffer, 2, 2)]
  for (const v of views) t.true(ch.trySend(v))
  for (const v of views) {
    const want = [...new Uint8Array(v.buffer, v.byteOffset, v.byteLength)]
    t.deepEqual([...ch.receive(1000)], want)
  }
  so.free(ch)
  so.free(shared)
})

test.serial('the per-message native calls refuse what is not a channel or not bytes with a coded error, never a crash', (t) => {
  const ch = so.channel({ capacity: 2, maxMessageBytes: 8 })
  const words = new Uint32Array(ch[Object.getOwnPropertySymbols(ch).find((s) => String(s).includes('segmentBuffer'))])
  const codeOf = (f) => {
    try {
      f()
    } catch (e) {
      return e.code
    }
    return 'no error'
  }
  for (const [name, args] of [
    ['channelTrySend', [words, 'text', 0]],
    ['channelTrySend', [words, new Float64Array(1), 0]],
    ['channelTrySend', [words]],
    ['channelTrySend', []],
    ['channelTrySend', [new Uint32Array(4), new Uint8Array(1), 0]],
    ['channelTrySend', [{}, new Uint8Array(1), 0]],
    ['channelSend', [words, null, 0, 10]],
    ['channelTryReceiveInto', [words, new Uint8Array(4)]],
    ['channelTryReceiveInto', [words, 'scratch']],
    ['channelReceiveInto', [new Uint32Array(1), new Uint8Array(8), 10]],
    ['channelReceiveInto', [words]],
  ]) {
    t.regex(String(codeOf(() => binding[name](...args))), /^ERR_/, `${name}(${args.map((a) => Object.prototype.toString.call(a)).join(', ')})`)
  }
  // The channel still works after all that.
  t.true(ch.trySend('ok'))
  t.is(Buffer.from(ch.tryReceive()).toString(), 'ok')
  so.free(ch)
})

// Small messages are received through a scratch buffer and copied out; big ones are made
// natively. Either way each message is a Uint8Array of its own: a later receive never changes it.
for (const maxMessageBytes of [16, 65_536, 65_537]) {
  test.serial(`received messages own their bytes, whatever later receives bring (maxMessageBytes ${maxMessageBytes})`, (t) => {
    const ch = so.channel({ capacity: 4, maxMessageBytes })
    const sent = [new Uint8Array([1, 2, 3]), new Uint8Array(maxMessageBytes).fill(7), new Uint8Array([9]), new Uint8Array(0)]
    for (const m of sent) t.true(ch.trySend(m))
    const got = [ch.tryReceive(), ch.receive(1000), ch.tryReceive(), ch.receive(1000)]
    t.true(ch.trySend(new Uint8Array(maxMessageBytes).fill(5)))
    t.is(ch.tryReceive().length, maxMessageBytes)
    for (let i = 0; i < sent.length; i++) {
      t.is(Object.getPrototypeOf(got[i]), Uint8Array.prototype, `message ${i} is a Uint8Array`)
      t.true(Buffer.from(got[i]).equals(Buffer.from(sent[i])), `message ${i} kept its bytes`)
      t.is(got[i].byteOffset, 0, `message ${i} starts its own memory`)
      t.is(got[i].buffer.byteLength, sent[i].length, `message ${i} is all of its memory`)
    }
    t.is(ch.tryReceive(), undefined)
    ch.end()
    t.is(ch.receive(1000), undefined, 'ended and drained')
    so.free(ch)
  })
}

// Big messages come in memory the process reuses once every thread has released a message:
// one kept here, and one handed to a worker, keep their bytes through collections and many
// later messages that reuse the memory of the dropped ones.
test.serial('big received messages keep their bytes while held, here or by a worker, whatever later messages reuse', async (t) => {
  const size = 1 << 20
  const ch = so.channel({ capacity: 4, maxMessageBytes: size })
  const nth = (i) => {
    const m = new Uint8Array(size)
    new Uint32Array(m.buffer).fill(0x01010101 * (i & 0xff) + i)
    return m
  }
  const intact = (m, i) => Buffer.from(m).equals(Buffer.from(nth(i)))
  const take = (i) => {
    t.true(ch.trySend(nth(i)))
    return ch.receive(1000)
  }
  const kept = take(1)
  let lent = take(2)
  const worker = new Worker(
    `const { parentPort } = require('node:worker_threads')
     let m
     parentPort.on('message', (x) => {
       if (x.m) m = x.m
       const want = new Uint32Array(m.buffer, m.byteOffset, m.length / 4)
       parentPort.postMessage(want.every((w) => w === 0x01010101 * 2 + 2) && m.length === ${size})
     })`,
    { eval: true },
  )
  worker.postMessage({ m: lent })
  t.true((await once(worker, 'message'))[0], 'the worker got the message')
  // Dropped here: only the worker holds it now.
  lent = null
  for (let round = 0; round < 4; round++) {
    for (let i = 3; i < 3 + 64; i++) t.true(intact(take(i), i), `message ${i} arrived whole`)
    globalThis.gc()
    await new Promise((r) => setImmediate(r))
  }
  t.true(intact(kept, 1), 'the kept message still holds its bytes')
  worker.postMessage({})
  t.true((await once(worker, 'message'))[0], "the worker's message still holds its bytes")
  await worker.terminate()
  so.free(ch)
})

when(can.sharedBuffers, test.serial)('the memory of dropped big messages is kept for the next ones, and freed once unused for a while', async (t) => {
  const size = 256 * 1024
  const ch = so.channel({ capacity: 4, maxMessageBytes: size })
  const msg = new Uint8Array(size).fill(3)
  for (let i = 0; i < 32; i++) {
    t.true(ch.trySend(msg))
    t.is(ch.receive(1000)[size - 1], 3)
  }
  globalThis.gc()
  await new Promise((r) => setImmediate(r))
  t.true(binding.messagePoolTrim(3_600_000) > 0, 'collected messages left their memory in the pool')
  // Unused for 2 s, the pool's memory goes by itself (a timer the receive started), once every
  // message is collected (this file's earlier ones too).
  t.true(await until(() => (globalThis.gc(), binding.messagePoolTrim(3_600_000) === 0), 15_000, 200), 'the pool emptied itself')
  t.is(binding.messagePoolTrim(0), 0, 'nothing is kept and nothing is lent')
  so.free(ch)
})

test.serial('end finishes a channel for every party: what is in it is received, then iterators stop and sends throw', async (t) => {
  const [child] = await children(t, 1)
  const ch = so.channel({ capacity: 8, maxMessageBytes: 16 })
  const h = so.handleOf(ch)
  for (const m of ['a', 'b', 'c']) ch.send(m)
  ch.end()
  t.true(ch.ended)
  t.is(t.throws(() => ch.send('d')).code, 'ERR_SHM_CLOSED')
  t.is((await t.throwsAsync(ch.sendAsync('d'))).code, 'ERR_SHM_CLOSED')
  const got = await child.run(async (so, h) => {
    const c = so.open(h)
    const out = []
    for await (const m of c) out.push(Buffer.from(m).toString())
    let sendCode
    try {
      c.trySend('x')
    } catch (e) {
      sendCode = e.code
    }
    return { out, after: c.receive(), sendCode }
  }, h)
  t.deepEqual(got, { out: ['a', 'b', 'c'], after: undefined, sendCode: 'ERR_SHM_CLOSED' })
  so.free(ch)
})

test.serial('a channel carries messages both ways between processes, and shared values by handle', async (t) => {
  const [child] = await children(t, 1)
  const ch = so.channel({ capacity: 4, maxMessageBytes: 256 })
  const back = so.channel({ capacity: 4, maxMessageBytes: 256 })
  const v = so.share(new Float64Array([1.5, 2.5, 3]))
  // The child receives (waiting, asynchronously), and answers on the other channel.
  const done = child.run(async (so, h1, h2) => {
    const [inbox, outbox] = [so.open(h1), so.open(h2)]
    const text = Buffer.from(await inbox.receiveAsync()).toString()
    const vec = await inbox.receiveAsync()
    const sum = vec.reduce((a, b) => a + b, 0)
    outbox.send(`${text}:${sum}`)
    return vec.constructor.name
  }, so.handleOf(ch), so.handleOf(back))
  await sleep(20)
  t.true(ch.send('sum'))
  t.true(ch.sendShared(v))
  t.is(await done, 'Float64Array')
  t.is(Buffer.from(back.receive(10_000)).toString(), 'sum:7')
  // And the channel itself travels by JSON and in containers.
  const revived = so.revive(JSON.parse(JSON.stringify({ ch })))
  t.true(revived.ch instanceof so.SharedChannel)
  t.is(so.properties(ch).kind, 'channel')
  for (const x of [ch, back, v]) so.free(x)
})

test.serial('4 producer and 4 consumer processes pass every message exactly once', async (t) => {
  const EACH = 5000
  const kids = await children(t, 8)
  const ch = so.channel({ capacity: 64, maxMessageBytes: 4 })
  const h = so.handleOf(ch)
  const consumers = kids.slice(4).map((k) =>
    k.run((so, h) => {
      const c = so.open(h)
      const got = []
      for (const m of c) got.push(new Uint32Array(m.buffer.slice(m.byteOffset, m.byteOffset + 4))[0])
      return got
    }, h),
  )
  await Promise.all(
    kids.slice(0, 4).map((k, p) =>
      k.run(
        async (so, h, p, each) => {
          const c = so.open(h)
          for (let i = 0; i < each; i++) {
            // Half blocking, half asynchronous sends: both kinds of waiting for room.
            const m = new Uint8Array(new Uint32Array([p * each + i]).buffer)
            if (i % 2) c.send(m)
            else await c.sendAsync(m)
          }
        },
        h,
        p,
        EACH,
      ),
    ),
  )
  ch.end()
  const seen = new Uint8Array(4 * EACH)
  let total = 0
  for (const got of await Promise.all(consumers)) {
    for (const v of got) {
      t.true(v < 4 * EACH)
      seen[v]++
      total++
    }
  }
  t.is(total, 4 * EACH)
  t.true(seen.every((n) => n === 1), 'every message arrives exactly once')
  so.free(ch)
})

test.serial('a party SIGKILLed at random points of a send/receive loop never corrupts the ring or loses a committed message', async (t) => {
  const M = 32
  const ROUNDS = 12
  for (let round = 0; round < ROUNDS; round++) {
    const [victim] = await children(t, 1)
    const ch = so.channel({ capacity: M, maxMessageBytes: 4, detectionMs: 20 })
    const steps = so.alloc('int32', 1)
    for (let i = 0; i < M; i++) t.true(ch.trySend(u32(i)))
    // The victim takes a message and puts it back, over and over, counting its steps.
    const running = victim.run(
      (so, h, s) => {
        const c = so.open(h)
        const steps = so.open(s)
        for (;;) {
          const m = c.receive()
          c.send(m)
          Atomics.add(steps, 0, 1)
        }
      },
      so.handleOf(ch),
      so.handleOf(steps),
    )
    const killAt = 1 + Math.floor(Math.random() * 3000)
    await reachStep(steps, killAt, running)
    await victim.kill('SIGKILL')
    // Drain: waiting receives repair what the victim left; the one message it may have held in
    // its hands (received, not yet sent back) is the only one allowed to be missing.
    const seen = new Set()
    for (let m; (m = ch.receive(300)) !== undefined; ) {
      const v = fromU32(m)
      t.false(seen.has(v), `message ${v} arrived twice`)
      seen.add(v)
    }
    t.true(seen.size === M || seen.size === M - 1, `${seen.size} of ${M} messages after a kill at step ${killAt}`)
    // The ring still works: exactly its capacity fits, and comes out in order.
    for (let i = 0; i < M; i++) t.true(ch.trySend(u32(1000 + i)))
    t.false(ch.trySend(u32(0)))
    for (let i = 0; i < M; i++) t.is(fromU32(ch.tryReceive()), 1000 + i)
    t.is(ch.tryReceive(), undefined)
    so.free(ch)
    so.free(steps)
  }
})

test.serial('a condition variable wakes a waiter in another process, which sees the state set under the mutex', async (t) => {
  const [a, b] = await children(t, 2)
  const m = so.mutex()
  const c = so.condition()
  // state[0]: what the waiters wait for; state[1]: how many have taken the lock to wait.
  const state = so.alloc('float64', 2)
  const handles = [so.handleOf(m), so.handleOf(c), so.handleOf(state)]
  // One waiter blocks, the other waits asynchronously.
  const waiter = (so, hm, hc, hs, async) => {
    const [m, c, state] = [so.open(hm), so.open(hc), so.open(hs)]
    const run = async () => {
      let g = m.lock()
      state[1]++
      let wakes = 0
      while (state[0] === 0) {
        g = async ? await c.waitAsync(g) : c.wait(g)
        wakes++
      }
      const seen = state[0]
      g.unlock()
      return { seen, wakes: wakes > 0 }
    }
    return run()
  }
  const sync = track(a.run(waiter, ...handles, false))
  const asyn = track(b.run(waiter, ...handles, true))
  // Each waiter counts itself under the lock and then waits, which lets the lock go: once both
  // have counted, the lock below is taken only when both are waiting (a slow child, under an
  // emulated CPU, may take longer than any fixed pause to get there).
  t.true(await until(() => state[1] === 2, 60_000), 'both waiters take the lock')
  t.false(sync.done || asyn.done, 'both wait')
  // A timed wait here times out with the lock held again.
  let g = m.lock()
  t.is(c.wait(g, 10), null)
  t.true(g.held && m.heldHere)
  state[0] = 42
  g.unlock()
  t.true(
    await until(() => {
      c.notifyAll()
      return sync.done && asyn.done
    }),
    'notifies end both waits',
  )
  t.deepEqual(await sync.p, { seen: 42, wakes: true })
  t.deepEqual(await asyn.p, { seen: 42, wakes: true })
  g = m.lock()
  t.is(t.throws(() => c.wait({})).code, 'ERR_INVALID_ARG_TYPE')
  g.unlock()
  t.is(t.throws(() => c.wait(g)).code, 'ERR_SHM_NOT_OWNER', 'a guard that unlocked cannot wait')
  for (const x of [m, c, state]) so.free(x)
})

test.serial('a semaphore counts permits across processes, times out, and waits asynchronously', async (t) => {
  const [a, b] = await children(t, 2)
  const s = so.semaphore(2)
  const h = so.handleOf(s)
  t.is(s.value, 2)
  t.true(await a.run((so, h) => (globalThis.s = so.open(h)).acquire(1000), h))
  t.true(await b.run((so, h) => (globalThis.s = so.open(h)).tryAcquire(), h))
  t.is(s.value, 0)
  t.false(s.tryAcquire())
  t.false(s.acquire(20), 'acquire is false on timeout')
  t.false(await s.acquireAsync(20))
  const waiting = track(s.acquireAsync(10_000))
  await sleep(50)
  t.false(waiting.done)
  await a.run(() => globalThis.s.release())
  t.true(await waiting.p)
  s.release()
  t.is(s.value, 1)
  t.is(t.throws(() => so.semaphore(-1)).code, 'ERR_OUT_OF_RANGE')
  so.free(s)
})

test.serial('the permits of a process SIGKILLed at random points of an acquire/release loop come back', async (t) => {
  for (let round = 0; round < 8; round++) {
    const [victim] = await children(t, 1)
    const s = so.semaphore(2, { detectionMs: 20 })
    const steps = so.alloc('int32', 1)
    const running = victim.run(
      (so, h, hs) => {
        const [s, steps] = [so.open(h), so.open(hs)]
        for (;;) {
          s.acquire()
          s.acquire()
          s.release()
          s.release()
          Atomics.add(steps, 0, 1)
        }
      },
      so.handleOf(s),
      so.handleOf(steps),
    )
    const killAt = 1 + Math.floor(Math.random() * 2000)
    await reachStep(steps, killAt, running)
    await victim.kill('SIGKILL')
    t.true(s.acquire(10_000), 'one permit')
    t.true(await s.acquireAsync(10_000), 'and the other')
    t.false(s.tryAcquire(), 'and no more than there were')
    so.free(s)
    so.free(steps)
  }
})

test.serial('a barrier breaks for every party when one dies, times out or aborts, until reset', async (t) => {
  const [a, b] = await children(t, 2)
  const bar = so.barrier(3, { detectionMs: 20 })
  const h = so.handleOf(bar)
  // Two rounds with all three, then a dies while b and this process wait for it.
  const rounds = (so, h, n) => {
    const bar = (globalThis.bar = so.open(h))
    for (let i = 0; i < n; i++) bar.wait()
    return true
  }
  const pa = a.run(rounds, h, 2)
  const pb = b.run(rounds, h, 2)
  bar.wait()
  bar.wait()
  t.true(await pa)
  t.true(await pb)
  const bWaits = b.run(async () => {
    try {
      await globalThis.bar.waitAsync()
      return 'passed'
    } catch (e) {
      return e.code
    }
  })
  await a.kill('SIGKILL')
  t.is(t.throws(() => bar.wait(20_000)).code, 'ERR_SHM_BARRIER_BROKEN')
  t.is(await bWaits, 'ERR_SHM_BARRIER_BROKEN', 'the other waiting process is told too')
  t.true(bar.broken)
  t.is(t.throws(() => bar.wait()).code, 'ERR_SHM_BARRIER_BROKEN', 'and it stays broken')
  // Reset forgets the dead party; a timeout breaks it again; so does abort.
  bar.reset()
  t.false(bar.broken)
  t.is(t.throws(() => bar.wait(20)).code, 'ERR_SHM_BARRIER_BROKEN')
  bar.reset()
  const waiting = b.run(() => globalThis.bar.waitAsync().then(() => 'passed', (e) => e.code))
  await sleep(50)
  bar.abort()
  t.is(await waiting, 'ERR_SHM_BARRIER_BROKEN')
  so.free(bar)
})

when(can.closeEndsWaits, test.serial)('closing what a pending async wait waits on settles it at once with ERR_SHM_CLOSED, never with the lock', async (t) => {
  const [child] = await children(t, 1)
  const v = so.alloc('int32', 1)
  const m = so.mutex()
  const h = so.handleOf(m)
  t.is(await child.run((so, h) => (globalThis.m = so.open(h)).lock() && process.pid, h), child.pid)
  const ch = so.channel({ capacity: 2, maxMessageBytes: 8 })
  const bar = so.barrier(2)
  const s = so.semaphore(0)
  const waits = [so.waitAsync(v, 0, 0), m.lockAsync(), ch.receiveAsync(), bar.waitAsync(), s.acquireAsync()].map(track)
  await sleep(50)
  t.true(waits.every((w) => !w.done), 'all wait')
  for (const x of [v, m, ch, bar, s]) so.close(x)
  for (const w of waits) t.is((await t.throwsAsync(w.p)).code, 'ERR_SHM_CLOSED')
  // The child still holds the lock: closing here handed it to nobody.
  const again = so.open(h)
  t.is(again.holderPid, child.pid)
  t.false(again.heldHere)
  for (const x of [v, m, ch, bar, s, again]) so.free(x)
})

when(can.closeEndsWaits, test.serial)('closing a mutex or barrier while another thread of this process blocks on it gives that thread ERR_SHM_CLOSED, never the lock', async (t) => {
  const [child] = await children(t, 1)
  const m = so.mutex({ detectionMs: 20 })
  const bar = so.barrier(2, { detectionMs: 20 })
  const h = so.handleOf(m)
  t.is(await child.run((so, h) => (globalThis.m = so.open(h)).lock() && process.pid, h), child.pid)
  // A worker opens its own view (one mapping per process), says so, then blocks; this thread
  // closes its view meanwhile.
  const blocked = [
    [m, `const m = so.open(workerData); parentPort.postMessage('ready'); try { m.lock(); parentPort.postMessage('locked') } catch (e) { parentPort.postMessage(e.code) }`],
    [bar, `const b = so.open(workerData); parentPort.postMessage('ready'); try { b.wait(); parentPort.postMessage('passed') } catch (e) { parentPort.postMessage(e.code) }`],
  ]
  for (const [object, body] of blocked) {
    const w = worker(body, so.handleOf(object))
    t.is((await once(w, 'message'))[0], 'ready')
    await sleep(100)
    const answer = once(w, 'message')
    so.close(object)
    t.is((await answer)[0], 'ERR_SHM_CLOSED')
    await w.terminate()
  }
  const again = so.open(h)
  t.is(again.holderPid, child.pid, 'the child still holds the lock')
  so.free(again)
  so.free(bar)
})

when(can.pidNamespaces, test.serial)('a process of another pid namespace with the holder\'s pid and thread id neither holds the lock nor releases it', async (t) => {
  // Both are pid 1, main thread 1, of their own namespace: the same holder word.
  const m = so.mutex({ name: `coord-ns-${process.pid}`, detectionMs: 20 })
  const h = JSON.stringify(so.handleOf(m))
  const root = ROOT
  const holder = spawn('unshare', ['--pid', '--fork', '--mount-proc', '--kill-child', process.execPath, '-e', `const m = require(${root}).open(${h}); m.lock(); console.log(process.pid); setInterval(() => {}, 1000)`], { stdio: ['ignore', 'pipe', 'inherit'] })
  const [line] = await once(holder.stdout, 'data')
  t.is(line.toString().trim(), '1')
  const code = `
    const m = require(${root}).open(${h})
    const r = { pid: process.pid, heldHere: m.heldHere }
    try { r.lock = m.lock(200) === null ? 'timed-out' : 'locked' } catch (e) { r.lock = e.code }
    try { m.unlock(); r.unlock = 'unlocked' } catch (e) { r.unlock = e.code }
    console.log(JSON.stringify(r))`
  const { stdout } = await run('unshare', ['--pid', '--fork', '--mount-proc', process.execPath, '-e', code])
  t.deepEqual(JSON.parse(stdout), { pid: 1, heldHere: false, lock: 'timed-out', unlock: 'ERR_SHM_NOT_OWNER' })
  t.false(m.tryLock() !== null, 'still held by the first')
  holder.kill('SIGKILL')
  await once(holder, 'exit')
  so.free(m)
})
