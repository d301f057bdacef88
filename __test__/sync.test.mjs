import test from 'ava'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { Worker } from 'node:worker_threads'
import so from '@sharedobject/core'
import { spawnChild, isLinux, isPosix, can, when, until } from './helpers.mjs'

// Synchronisation across processes and threads. Children are real processes; the few times
// asserted are generous bounds, only where a test proves that something does not block. Some
// tests block the main thread on purpose (wait, lock), so they all run one at a time.

const ROOT = JSON.stringify(fileURLToPath(new URL('..', import.meta.url)))
/** Platforms whose notify reaches waiters in other processes through the kernel, and counts them. */
const countsWakes = isLinux

async function children(t, n) {
  const kids = await Promise.all(Array.from({ length: n }, () => spawnChild()))
  // Some tests end a child themselves (exit, SIGKILL): ending it again is not an error.
  t.teardown(() => Promise.all(kids.map((k) => Promise.resolve().then(() => k.exit()).catch(() => {}))))
  return kids
}

/** A worker thread running `body` (CommonJS source) with `so`, `workerData` and `parentPort` in scope. */
function worker(body, workerData) {
  const code = `
    const { parentPort, workerData } = require('node:worker_threads')
    const so = require(${ROOT})
    ;(async () => { ${body} })().catch((e) => parentPort.postMessage({ error: e.code ?? e.message }))
  `
  return new Worker(code, { eval: true, workerData })
}

/** Notifies until the waiter is gone: a waiter that has not gone to sleep yet misses a notify. */
async function notifyUntil(settled, v, i) {
  let woken = 0
  const ended = await until(() => {
    if (settled()) return true
    woken += so.notify(v, i)
    return false
  })
  if (!ended) throw new Error('a waiter did not end on 10 s of notifies')
  return woken
}

function track(p) {
  const s = { done: false, p }
  p.finally(() => (s.done = true)).catch(() => {})
  return s
}

test.serial('wait returns not-equal at once and timed-out after its timeout, as Atomics.wait does', (t) => {
  const v = so.alloc('int32', 2)
  const big = so.alloc('int64', 1)
  t.is(so.wait(v, 0, 1), 'not-equal')
  t.is(so.wait(v, 1, 0, 0), 'timed-out')
  t.is(so.wait(v, 1, 0, -5), 'timed-out', 'a negative timeout does not wait')
  t.is(so.wait(v, 1, 0, 20), 'timed-out')
  t.is(so.wait(big, 0, 1n), 'not-equal')
  t.is(so.wait(big, 0, 0n, 20), 'timed-out')
  t.is(so.notify(v, 0), 0, 'nobody waits')
  so.close(v)
  so.close(big)
})

test.serial('a notify wakes a forked child waiting on an int32, and a change to an int64 wakes one waiting on it', async (t) => {
  const [child] = await children(t, 1)
  const v = so.alloc('int32', 1)
  const waiting = track(child.run((so, h) => so.wait(so.open(h), 0, 0, 20000), so.handleOf(v)))
  await sleep(100)
  t.false(waiting.done, 'the child is waiting')
  if (countsWakes) {
    // The value stays 0: only the notify itself can wake the child.
    t.is(await notifyUntil(() => waiting.done, v, 0), 1)
  } else {
    Atomics.store(v, 0, 1)
    await notifyUntil(() => waiting.done, v, 0)
  }
  t.is(await waiting.p, 'ok')

  const big = so.alloc('int64', 2)
  big[1] = 5n
  const waiting64 = track(child.run((so, h) => so.wait(so.open(h), 1, 5n, 20000), so.handleOf(big)))
  await sleep(100)
  // Only the high half changes: the waiter must see the whole 64-bit value.
  Atomics.store(big, 1, 5n | (1n << 40n))
  await notifyUntil(() => waiting64.done, big, 1)
  t.is(await waiting64.p, 'ok')
})

test.serial('waitAsync in the parent lets timers run while a child takes its time to notify', async (t) => {
  const [child] = await children(t, 1)
  const v = so.alloc('int32', 1)
  let ticks = 0
  const timer = setInterval(() => ticks++, 10)
  t.teardown(() => clearInterval(timer))
  const p = so.waitAsync(v, 0, 0, 20000)
  t.true(p instanceof Promise)
  const woken = await child.run(
    (so, h) =>
      new Promise((resolve) =>
        setTimeout(() => {
          const v = so.open(h)
          Atomics.store(v, 0, 1)
          resolve(so.notify(v, 0))
        }, 300),
      ),
    so.handleOf(v),
  )
  t.is(await p, 'ok')
  t.true(ticks >= 5, `timers ran while waiting (${ticks} ticks)`)
  if (countsWakes) t.is(woken, 1)
  t.is(await so.waitAsync(v, 0, 0), 'not-equal')
  t.is(await so.waitAsync(v, 0, 1, 30), 'timed-out')
  const big = so.alloc('int64', 1)
  t.is(await so.waitAsync(big, 0, 0n, 30), 'timed-out')
})

test.serial('wait and notify between worker threads and the main thread', async (t) => {
  const v = so.alloc('int32', 2)
  // A worker blocks in wait; the main thread wakes it.
  const w = worker(
    `const v = so.open(workerData)
     parentPort.postMessage('waiting')
     parentPort.postMessage(so.wait(v, 0, 0, 20000))`,
    so.handleOf(v),
  )
  t.teardown(() => w.terminate())
  t.is((await once(w, 'message'))[0], 'waiting')
  const reply = track(once(w, 'message'))
  await sleep(100)
  if (countsWakes) t.is(await notifyUntil(() => reply.done, v, 0), 1, 'the notify itself woke it')
  else {
    Atomics.store(v, 0, 1)
    await notifyUntil(() => reply.done, v, 0)
  }
  t.deepEqual(await reply.p, ['ok'])

  // The main thread blocks in wait; a worker notifies.
  const n = worker(
    `const v = so.open(workerData)
     let timer
     setTimeout(() => {
       Atomics.store(v, 1, 7)
       // Keep notifying until the main thread says it woke up: it may not sleep yet.
       timer = setInterval(() => so.notify(v, 1), 20)
     }, 100)
     parentPort.on('message', () => { clearInterval(timer); parentPort.close() })`,
    so.handleOf(v),
  )
  t.teardown(() => n.terminate())
  t.is(so.wait(v, 1, 0, 20000), 'ok')
  t.is(v[1], 7)
  n.postMessage('done')
})

test.serial('4 processes × 20,000 withLock increments of a plain float64 element end at exactly 80,000', async (t) => {
  const kids = await children(t, 4)
  const m = so.mutex()
  const x = so.alloc('float64', 1)
  const done = await Promise.all(
    kids.map((k) =>
      k.run(
        (so, hm, hx) => {
          const m = so.open(hm)
          const x = so.open(hx)
          for (let i = 0; i < 20000; i++) m.withLock(() => (x[0] += 1))
          return m.heldHere
        },
        so.handleOf(m),
        so.handleOf(x),
      ),
    ),
  )
  t.deepEqual(done, [false, false, false, false])
  t.is(x[0], 80000)
  t.is(m.holderPid, null)
})

test.serial('a barrier of 4 processes over 1,000 rounds never lets one run ahead', async (t) => {
  const kids = await children(t, 4)
  const b = so.barrier(4)
  const progress = so.alloc('int32', 4)
  const results = await Promise.all(
    kids.map((k, me) =>
      k.run(
        (so, hb, hp, me) => {
          const b = so.open(hb)
          const progress = so.open(hp)
          let ahead = 0
          let leaders = 0
          for (let round = 1; round <= 1000; round++) {
            Atomics.store(progress, me, round)
            if (b.wait()) leaders++
            // Everyone has arrived at this round; nobody can be past the next one.
            for (let p = 0; p < 4; p++) {
              const r = Atomics.load(progress, p)
              if (r !== round && r !== round + 1) ahead++
            }
          }
          return { ahead, leaders }
        },
        so.handleOf(b),
        so.handleOf(progress),
        me,
      ),
    ),
  )
  t.deepEqual(
    results.map((r) => r.ahead),
    [0, 0, 0, 0],
  )
  t.is(
    results.reduce((n, r) => n + r.leaders, 0),
    1000,
    'exactly one party per round is told it arrived last',
  )
})

test.serial('barrier waitAsync joins blocking waits of other processes, round after round', async (t) => {
  const kids = await children(t, 2)
  const b = so.barrier(3)
  // The children arrive late, so the first waitAsync waits while a timer of ours fires.
  const runs = kids.map((k) =>
    k.run(
      (so, h) =>
        new Promise((resolve) =>
          setTimeout(() => {
            const b = so.open(h)
            let leaders = 0
            for (let i = 0; i < 50; i++) leaders += b.wait() ? 1 : 0
            resolve(leaders)
          }, 300),
        ),
      so.handleOf(b),
    ),
  )
  let fired = false
  setTimeout(() => (fired = true), 50)
  let mine = (await b.waitAsync()) ? 1 : 0
  t.true(fired, 'a timer ran while the first round waited')
  for (let i = 1; i < 50; i++) mine += (await b.waitAsync()) ? 1 : 0
  const theirs = await Promise.all(runs)
  t.is(mine + theirs[0] + theirs[1], 50)
  t.is(b.parties, 3)
})

test.serial('a holder SIGKILLed inside the lock does not block the others past the detection time, and they are told', async (t) => {
  const [holder, a, b] = await children(t, 3)
  const m = so.mutex({ detectionMs: 100 })
  t.is(m.detectionMs, 100)
  const h = so.handleOf(m)
  await holder.run((so, h) => {
    const m = so.open(h)
    globalThis.kept.push(m, m.lock())
    return true
  }, h)
  t.is(m.holderPid, holder.pid)
  const lockers = [a, b].map((k) =>
    track(
      k.run((so, h) => {
        const m = so.open(h)
        const g = m.lock()
        const died = g.ownerDied
        g.unlock()
        return died
      }, h),
    ),
  )
  const mine = track(m.lockAsync())
  await sleep(300)
  t.false(lockers.some((l) => l.done) || mine.done, 'everyone waits while the holder lives')
  const killedAt = Date.now()
  await holder.kill('SIGKILL')
  const guard = await mine.p
  const elapsed = Date.now() - killedAt
  guard.unlock()
  const theirs = await Promise.all(lockers.map((l) => l.p))
  t.true(elapsed < 5000, `taken over ${elapsed} ms after the kill`)
  t.is([guard.ownerDied, ...theirs].filter(Boolean).length, 1, 'exactly the first new holder is told the previous one died')
  t.is(m.holderPid, null)
})

test.serial('lockers asleep on a mutex whose detection interval is a minute are each woken by an unlock: none waits for the interval', async (t) => {
  // A lost wake-up would leave a locker asleep until its sleep runs out, a minute here: longer
  // than the test may take.
  t.timeout(30_000)
  const kids = await children(t, 3)
  const m = so.mutex({ detectionMs: 60_000 })
  const order = so.alloc('int32', 4)
  const h = so.handleOf(m)
  const o = so.handleOf(order)
  const g = m.lock()
  // Two block in lock(), one waits in lockAsync(); each holds the lock a moment, so the others
  // sleep behind it too, and notes its turn.
  const turns = kids.map((k, i) =>
    k.run(
      async (so, [h, o, useAsync]) => {
        const m = so.open(h)
        const order = so.open(o)
        const g = useAsync ? await m.lockAsync() : m.lock()
        const turn = ++order[0]
        const until = Date.now() + 20
        while (Date.now() < until);
        g.unlock()
        return turn
      },
      [h, o, i === 2],
    ),
  )
  await sleep(200)
  t.is(order[0], 0, 'all three wait')
  g.unlock()
  t.deepEqual((await Promise.all(turns)).sort(), [1, 2, 3], 'each took the lock once, in turn')
  t.is(m.holderPid, null)
  so.free(m)
  so.free(order)
})

when(can.execHolder, test.serial)('a holder that execs another program under its pid is taken over, and is not while it runs', async (t) => {
  const m = so.mutex({ detectionMs: 30 })
  const h = JSON.stringify(so.handleOf(m))
  // The holder locks, then on a line from us replaces itself with a new Node under the same pid.
  const code = `
    const m = require(${ROOT}).open(${h}); m.lock(); console.log(process.pid)
    process.stdin.once('data', () => process.execve(process.execPath, [process.execPath, '-e', 'console.log(process.pid); setInterval(() => {}, 1000)']))`
  const holder = spawn(process.execPath, ['-e', code], { stdio: ['pipe', 'pipe', 'inherit'] })
  t.teardown(() => holder.kill('SIGKILL'))
  const lines = (async function* () {
    let rest = ''
    for await (const chunk of holder.stdout) {
      rest += chunk
      for (let i; (i = rest.indexOf('\n')) >= 0; rest = rest.slice(i + 1)) yield rest.slice(0, i)
    }
  })()
  const pid = Number((await lines.next()).value)
  t.is(pid, holder.pid)
  t.is(m.holderPid, pid)
  t.is(m.lock(150), null, 'five detection intervals: the holder runs, so the lock stays its own')
  holder.stdin.write('exec\n')
  t.is(Number((await lines.next()).value), pid, 'another program runs under the same pid')
  const g = m.lock(5000)
  t.truthy(g, 'taken over from the program that exec\'d')
  t.true(g.ownerDied)
  t.is(holder.exitCode, null, 'the process under that pid still runs')
  g.unlock()
  so.free(m)
})

test.serial('a worker thread is a holder of its own, and one that ends holding the lock is taken over', async (t) => {
  const m = so.mutex({ detectionMs: 50 })
  const g = m.lock()
  const w = worker(
    `const m = so.open(workerData)
     const results = { tryLock: m.tryLock(), heldHere: m.heldHere }
     try { m.unlock() } catch (e) { results.unlock = e.code }
     parentPort.postMessage(results)`,
    so.handleOf(m),
  )
  // Listen for the exit now: a worker that ends posts its last message and exits in one go.
  const exited = once(w, 'exit')
  t.deepEqual((await once(w, 'message'))[0], { tryLock: null, heldHere: false, unlock: 'ERR_SHM_NOT_OWNER' })
  await exited
  g.unlock()

  const holder = worker(
    `const m = so.open(workerData)
     globalThis.kept = m.lock()
     parentPort.postMessage('locked')
     setInterval(() => {}, 1000)`,
    so.handleOf(m),
  )
  t.is((await once(holder, 'message'))[0], 'locked')
  t.is(m.tryLock(), null)
  await holder.terminate()
  const taken = await m.lockAsync(5000)
  t.truthy(taken)
  t.true(taken.ownerDied)
  taken.unlock()
})

test.serial('unlock by another process, or by a thread that does not hold the lock, is a coded error', async (t) => {
  const [child] = await children(t, 1)
  const m = so.mutex()
  t.throws(() => m.unlock(), { code: 'ERR_SHM_NOT_OWNER' })
  const g = m.lock()
  const code = await child.run((so, h) => {
    try {
      so.open(h).unlock()
      return 'unlocked'
    } catch (e) {
      return e.code
    }
  }, so.handleOf(m))
  t.is(code, 'ERR_SHM_NOT_OWNER')
  t.true(m.heldHere, 'the failed unlock left the lock alone')
  t.throws(() => m.lock(), { code: 'ERR_SHM_DEADLOCK' }, 'a blocking lock by the holder would never return')
  g.unlock()
  t.throws(() => g.unlock(), { code: 'ERR_SHM_NOT_OWNER' }, 'a guard unlocks once')
  t.notThrows(() => g[Symbol.dispose](), 'disposing an unlocked guard does nothing')
})

test.serial('lock with a timeout, tryLock, guards and Symbol.dispose', async (t) => {
  const [child] = await children(t, 1)
  const m = so.mutex()
  const h = so.handleOf(m)
  await child.run((so, h) => {
    const m = so.open(h)
    const g = m.lock()
    globalThis.kept.push(m)
    setTimeout(() => g.unlock(), 300)
    return true
  }, h)
  t.is(m.tryLock(), null)
  t.is(m.lock(20), null, 'timed out')
  t.is(await m.lockAsync(20), null, 'timed out')
  const g = m.lock(20000)
  t.false(g.ownerDied)
  t.true(g.held)
  t.is(typeof g[Symbol.dispose], 'function')
  g[Symbol.dispose]()
  t.false(g.held)
  const again = m.tryLock()
  t.truthy(again)
  again.unlock()
})

test.serial('withLock unlocks when its function throws or rejects, and async tasks of one thread take turns', async (t) => {
  const m = so.mutex()
  t.throws(
    () =>
      m.withLock(() => {
        throw new Error('boom')
      }),
    { message: 'boom' },
  )
  t.is(m.holderPid, null)
  await t.throwsAsync(
    m.withLock(async () => {
      throw new Error('later')
    }),
    { message: 'later' },
  )
  t.is(m.holderPid, null)
  t.is(
    m.withLock((g) => g.held && 7),
    7,
  )
  const order = []
  const task = (name) =>
    m.withLock(async () => {
      order.push(`${name} in`)
      await sleep(20)
      order.push(`${name} out`)
      return name
    })
  t.deepEqual(await Promise.all([task('a'), task('b'), task('c')]), ['a', 'b', 'c'])
  // In any order, but one at a time: each task leaves before the next one enters.
  t.is(order.length, 6)
  for (let i = 0; i < 6; i += 2) t.is(order[i + 1], order[i].replace(' in', ' out'))
  t.is(m.holderPid, null)
})

test.serial('mutexes and barriers travel like vectors: handles, JSON, revive, containers, properties, close and free', async (t) => {
  const [child] = await children(t, 1)
  const m = so.mutex({ detectionMs: 250 })
  const b = so.barrier(2)
  const data = so.share({ lock: m, done: b, x: new Float64Array(1) })
  t.is(data.lock, m, 'sharing a container keeps its mutex as it is')
  t.true(so.isShared(m))
  t.is(so.unshare(m), m)
  t.like(so.properties(m), { kind: 'mutex', ownData: true, ownerPid: process.pid, copyOnWrite: false })
  t.like(so.properties(b), { kind: 'barrier' })
  t.deepEqual(JSON.parse(JSON.stringify({ m })), { m: { $sharedobject: so.handleOf(m) } })
  t.true(so.open(so.handleOf(m)) instanceof so.SharedMutex)
  t.true(so.revive(JSON.parse(JSON.stringify({ b }))).b instanceof so.SharedBarrier)
  const seen = child.run(
    (so, message, handle) => {
      const { data } = so.revive(message)
      const c = so.open(handle)
      const ok = data.lock instanceof so.SharedMutex && c.done instanceof so.SharedBarrier && data.lock.detectionMs === 250
      data.lock.withLock(() => (data.x[0] = 42))
      c.done.wait()
      return ok
    },
    JSON.parse(JSON.stringify({ data })),
    so.handleOf(data),
  )
  await b.waitAsync()
  t.true(await seen)
  t.is(data.x[0], 42)
  so.close(m)
  for (const f of [() => m.lock(), () => m.tryLock(), () => m.unlock(), () => so.handleOf(m)]) {
    t.throws(f, { code: 'ERR_SHM_CLOSED' })
  }
  await t.throwsAsync(m.lockAsync(), { code: 'ERR_SHM_CLOSED' })
  if (isPosix) {
    const h = so.handleOf(b)
    t.true(so.free(b))
    t.throws(() => so.open(h), { code: 'ERR_SHM_NOT_FOUND' })
    t.is(b.parties, 2, 'a freed barrier keeps working where it is mapped')
  }
  so.close(data)
})

test.serial('bad arguments give TypeError / RangeError with codes, and copy-on-write views cannot be waited on', (t) => {
  const v = so.alloc('int32', 3)
  const big = so.alloc('int64', 1)
  for (const f of [so.wait, so.notify, so.waitAsync]) {
    t.throws(() => f(new Int32Array(2), 0, 0), { instanceOf: TypeError, code: 'ERR_SHM_NOT_SHARED' })
    t.throws(() => f(so.alloc('float64', 1), 0, 0), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
    t.throws(() => f(so.alloc('uint32', 1), 0, 0), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
    for (const i of [-1, 3, 1.5, '0', undefined]) {
      t.throws(() => f(v, i, 0), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' }, String(i))
    }
  }
  t.throws(() => so.wait(v, 0, 0n), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => so.wait(big, 0, 0), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => so.wait(v, 0, 0, '10'), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => so.notify(v, 0, '1'), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
  t.is(so.wait(v.subarray(1), 1, 1), 'not-equal', 'a subarray waits on its own elements')

  const cow = so.open(so.handleOf(v), { copyOnWrite: true })
  for (const f of [() => so.wait(cow, 0, 0, 10), () => so.notify(cow, 0), () => so.waitAsync(cow, 0, 0, 10)]) {
    t.throws(f, { code: 'ERR_SHM_COPY_ON_WRITE' })
  }
  const m = so.mutex()
  t.throws(() => so.open(so.handleOf(m), { copyOnWrite: true }), { code: 'ERR_SHM_COPY_ON_WRITE' })
  t.throws(() => so.mutex({ detectionMs: 0 }), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' })
  t.throws(() => so.mutex({ detectionMs: 1.5 }), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' })
  t.throws(() => so.mutex({ copyOnWrite: true }), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_VALUE' })
  t.throws(() => so.barrier(0), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' })
  t.throws(() => so.barrier(2.5), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' })
  t.throws(() => m.withLock(5), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
  t.like(so.codes, { COPY_ON_WRITE: 'ERR_SHM_COPY_ON_WRITE', NOT_OWNER: 'ERR_SHM_NOT_OWNER', DEADLOCK: 'ERR_SHM_DEADLOCK' })
  for (const x of [v, big, cow, m]) so.close(x)
})

when(can.outliveProcesses, test.serial)('a named, persistent mutex outlives its owner until freed', async (t) => {
  const [child] = await children(t, 1)
  const name = `sync-test-${process.pid}`
  const h = await child.run((so, name) => so.handleOf(so.mutex({ name, persist: true })), name)
  await child.exit()
  const m = so.open(h)
  t.true(m instanceof so.SharedMutex)
  const g = m.tryLock()
  t.truthy(g)
  t.false(g.ownerDied)
  g.unlock()
  so.close(m)
  t.true(so.free(name))
})
