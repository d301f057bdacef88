import test from 'ava'
import { once } from 'node:events'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import fs from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import so from '@sharedobject/core'
import { spawnChild, can, when, until } from './helpers.mjs'

// Pending asynchronous waits share a bounded set of watcher threads (at most 16), however many
// there are: each test counts this process's threads before and while they wait. The tests run
// one at a time so the counts are this test's alone.

const ROOT = JSON.stringify(fileURLToPath(new URL('..', import.meta.url)))
/** The most threads the package may add for its pending waits. */
const WATCHERS = 16

/** Closes and frees `values` when the test ends, even one that failed with its waits pending. */
function cleanup(t, ...values) {
  t.teardown(() => {
    for (const v of values) {
      try {
        so.close(v)
        so.free(v)
      } catch {
        // Closed and freed by the test already.
      }
    }
  })
}

const threads = () => Number(/^Threads:\s+(\d+)/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1])

/** Each promise's outcome, in the order they settled: `[index, value or error code]`. */
function recorder(promises) {
  const order = []
  const all = Promise.all(
    promises.map((p, i) =>
      p.then(
        (r) => order.push([i, r]),
        (e) => order.push([i, e.code ?? e.message]),
      ),
    ),
  )
  return { order, all }
}

when(can.sharedWaiters, test.serial)('10,000 pending waitAsync calls on 100 words share at most 16 threads, settle in call order on a notified word, and a close ends the rest', async (t) => {
  const before = threads()
  const a = so.alloc('int32', 40)
  const b = so.alloc('int32', 40)
  const c = so.alloc('int64', 20)
  cleanup(t, a, b, c)
  // Waiter i waits on word i % 100: words 0..39 of a, 40..79 of b, 80..99 of c.
  const at = (w) => (w < 40 ? [a, w] : w < 80 ? [b, w - 40] : [c, w - 80])
  const waits = []
  for (let i = 0; i < 10_000; i++) {
    const [v, k] = at(i % 100)
    waits.push(so.waitAsync(v, k, v === c ? 0n : 0))
  }
  const { order, all } = recorder(waits)
  const during = threads()
  t.log(`threads: ${before} before, ${during} with 10,000 waits pending`)
  t.true(during - before <= WATCHERS, `${during - before} threads added`)
  await sleep(50)
  t.is(order.length, 0, 'nothing settles before a notify')

  // Notify words 0..49 (a's, then b's first ten), each after the last one's waiters settled.
  let woken = 0
  for (let w = 0; w < 50; w++) {
    const [v, k] = at(w)
    Atomics.store(v, k, 1)
    woken += so.notify(v, k)
    t.true(await until(() => order.filter(([i]) => i % 100 === w).length === 100, 10_000, 1), `word ${w}'s 100 waits end on its notify`)
  }
  const settled = order.splice(0)
  t.is(settled.length, 5_000)
  t.is(woken, 5_000, 'notify counts the waits it ended, not the threads that held them')
  t.true(
    settled.every(([, r]) => r === 'ok'),
    'every notified wait says ok',
  )
  for (let w = 0; w < 50; w++) {
    const mine = settled.filter(([i]) => i % 100 === w).map(([i]) => i)
    t.deepEqual(
      mine,
      Array.from({ length: 100 }, (_, k) => w + 100 * k),
      `word ${w}: in the order waitAsync was called`,
    )
  }
  t.deepEqual(
    [...new Set(settled.map(([i]) => i % 100))],
    Array.from({ length: 50 }, (_, w) => w),
    'words settle in the order they were notified',
  )
  t.true(threads() - before <= WATCHERS)

  // The other 5,000 (b's last thirty words, and every word of the int64 vector) end on close.
  for (const v of [a, b, c]) so.close(v)
  await all
  t.is(order.length, 5_000)
  t.true(
    order.every(([, r]) => r === 'ERR_SHM_CLOSED'),
    'a close settles the waits left with ERR_SHM_CLOSED',
  )
  for (const v of [a, b, c]) so.free(v)
})

when(can.sharedWaiters, test.serial)('2,000 waits on 2,000 distinct words share at most 16 threads, and each ends on its own notify or timeout', async (t) => {
  const before = threads()
  const v = so.alloc('int32', 2_000)
  cleanup(t, v)
  // Even words wait for a notify; odd ones time out, at deadlines spread over 20 ms.
  const waits = Array.from({ length: 2_000 }, (_, i) => so.waitAsync(v, i, 0, i % 2 ? 1 + (i % 20) : undefined))
  const { order, all } = recorder(waits)
  const during = threads()
  t.log(`threads: ${before} before, ${during} with 2,000 distinct words waited on`)
  t.true(during - before <= WATCHERS, `${during - before} threads added`)
  t.true(await until(() => order.length >= 1_000), 'the 1,000 waits with a timeout end')
  t.true(
    order.every(([i, r]) => i % 2 === 1 && r === 'timed-out'),
    'only the waits with a timeout have ended, timed out',
  )
  for (let i = 0; i < 2_000; i += 2) {
    Atomics.store(v, i, 1)
    so.notify(v, i)
  }
  await all
  t.true(order.slice(1_000).every(([i, r]) => i % 2 === 0 && r === 'ok'))
  so.close(v)
  so.free(v)
})

when(can.sharedWaiters, test.serial)('waits on one word with different timeouts: the short ones time out, the rest stay until a notify from another process', async (t) => {
  const [child] = await children(t)
  const v = so.alloc('int32', 10)
  cleanup(t, v)
  const before = threads()
  // 100 waiters on each of 10 words; every fourth times out after 10 ms.
  const waits = Array.from({ length: 1_000 }, (_, i) => so.waitAsync(v, i % 10, 0, i % 4 === 0 ? 10 : 60_000))
  const { order, all } = recorder(waits)
  t.true(threads() - before <= WATCHERS)
  t.true(await until(() => order.length >= 250), 'the 250 waits with a 10 ms timeout end')
  t.true(order.every(([i, r]) => i % 4 === 0 && r === 'timed-out'))
  // The child changes each word and notifies it: the parent's watcher sees it in the kernel.
  await child.run((so, h) => {
    const v = so.open(h)
    for (let k = 0; k < 10; k++) {
      Atomics.store(v, k, 1)
      so.notify(v, k)
    }
    so.close(v)
  }, so.handleOf(v))
  await all
  const woken = order.slice(250)
  t.is(woken.length, 750)
  t.true(woken.every(([i, r]) => i % 4 !== 0 && r === 'ok'))
  for (let k = 0; k < 10; k++) {
    const mine = woken.filter(([i]) => i % 10 === k).map(([i]) => i)
    t.deepEqual(mine, [...mine].sort((x, y) => x - y), `word ${k}: in call order`)
  }
  so.close(v)
  so.free(v)
})

when(can.sharedWaiters, test.serial)('a notify in another process without a change of value still wakes the waits parked on that word', async (t) => {
  const [child] = await children(t)
  const v = so.alloc('int32', 1)
  cleanup(t, v)
  const waits = Array.from({ length: 100 }, () => so.waitAsync(v, 0, 0))
  const { order, all } = recorder(waits)
  // The value stays 0: only a notify can end these waits. A notify sent while the watcher is
  // between two kernel waits would miss it, so the child notifies until they have ended.
  await sleep(20)
  const h = so.handleOf(v)
  const notified = await until(async () => {
    if (order.length === 100) return true
    await child.run((so, h) => {
      const v = (globalThis.waited ??= so.open(h))
      return so.notify(v, 0)
    }, h)
    return false
  })
  t.true(notified, "the child's notifies end all 100 waits")
  await all
  t.true(order.every(([, r]) => r === 'ok'))
  so.close(v)
  so.free(v)
})

when(can.sharedWaiters, test.serial)('mutex, semaphore and channel waiters share the watchers too, and each gets what it waited for', async (t) => {
  const [child] = await children(t)
  const before = threads()
  const m = so.mutex()
  const s = so.semaphore(0)
  const ch = so.channel({ capacity: 4, maxMessageBytes: 8 })
  cleanup(t, m, s, ch)
  t.true(await child.run((so, h) => (globalThis.m = so.open(h)).lock() !== undefined, so.handleOf(m)))
  const locks = Array.from({ length: 50 }, () => m.lockAsync())
  const permits = Array.from({ length: 50 }, () => s.acquireAsync())
  const received = Array.from({ length: 50 }, () => ch.receiveAsync())
  t.true(threads() - before <= WATCHERS)
  await child.run(
    (so, hs, hc) => {
      globalThis.m.unlock()
      const s = so.open(hs)
      const ch = so.open(hc)
      for (let i = 0; i < 50; i++) s.release()
      return (async () => {
        for (let i = 0; i < 50; i++) await ch.sendAsync(String(i))
        so.close(s)
        so.close(ch)
      })()
    },
    so.handleOf(s),
    so.handleOf(ch),
  )
  let held = 0
  for (const p of locks) {
    const g = await p
    held++
    g.unlock()
  }
  t.is(held, 50)
  t.true((await Promise.all(permits)).every((x) => x === true))
  const got = (await Promise.all(received)).map((b) => Buffer.from(b).toString()).sort((x, y) => x - y)
  t.deepEqual(got, Array.from({ length: 50 }, (_, i) => String(i)))
  t.true(threads() - before <= WATCHERS)
  for (const x of [m, s, ch]) {
    so.close(x)
    so.free(x)
  }
})

when(can.sharedWaiters, test.serial)('a process with 10,000 pending waits that it ends by notify and close exits by itself, on at most 16 threads more', async (t) => {
  const script = `
    const so = require(${ROOT})
    const fs = require('node:fs')
    const threads = () => Number(/^Threads:\\s+(\\d+)/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1])
    const before = threads()
    const v = so.alloc('int32', 100)
    const waits = []
    for (let i = 0; i < 10000; i++) waits.push(so.waitAsync(v, i % 100, 0))
    const during = threads()
    // Close once the notified half has settled: the other half then ends with ERR_SHM_CLOSED.
    let settled = 0
    for (const p of waits) p.then(() => { if (++settled === 5000) { so.close(v); so.free(v) } }, () => {})
    setTimeout(() => {
      for (let w = 0; w < 50; w++) { Atomics.store(v, w, 1); so.notify(v, w) }
    }, 20)
    Promise.allSettled(waits).then((rs) => {
      const ok = rs.filter((r) => r.value === 'ok').length
      const closed = rs.filter((r) => r.reason?.code === 'ERR_SHM_CLOSED').length
      console.log(JSON.stringify({ before, during, ok, closed }))
    })
  `
  const proc = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  proc.stdout.on('data', (d) => (out += d))
  const killer = setTimeout(() => proc.kill('SIGKILL'), 60_000)
  const [code, signal] = await once(proc, 'exit')
  clearTimeout(killer)
  t.is(signal, null, 'it was not killed: it exited by itself')
  t.is(code, 0)
  const r = JSON.parse(out)
  t.log(`child threads: ${r.before} before, ${r.during} with 10,000 waits pending`)
  t.true(r.during - r.before <= WATCHERS)
  t.is(r.ok, 5_000)
  t.is(r.closed, 5_000)
})

async function children(t) {
  const kid = await spawnChild()
  t.teardown(() => Promise.resolve().then(() => kid.exit()).catch(() => {}))
  return [kid]
}
