// The scenarios run under Deno and Bun (and Node), where ava does not run: each is a real
// multi-process check of what the package promises on that runtime. Run with the runtime itself
// (`deno run -A __test__/runtimes/run.mjs`, `bun __test__/runtimes/run.mjs`, `node ...`) in a
// private /dev/shm; the last line is "tests: N passed, N failed, N skipped".
//
// Which scenarios, and why these: loading the addon; a forked child and a spawned one opening a
// handle and writing what the parent reads (the two ways a runtime starts processes); vectors
// released by the engine and an exit with one live (where a runtime runs finalizers); a vector in
// child.send on the default (JSON) channel, before and after install() (Deno writes views as
// bytes there), and on the advanced one after install() (Deno and Bun copy views natively); a
// receiver's free and opens: 1 (release decided by another process); close in a child and in the
// owner; a mutex across processes (futex words in shared memory); worker threads (the addon in a
// second engine of one process). Each would fail if its runtime broke that promise.
import assert from 'node:assert/strict'
import { fork, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'

const so = createRequire(import.meta.url)('../..')
const CHILD = fileURLToPath(new URL('./child.mjs', import.meta.url))
const runtime = process.versions.deno ? `deno ${process.versions.deno}` : process.versions.bun ? `bun ${process.versions.bun}` : `node ${process.versions.node}`
const isDeno = process.versions.deno !== undefined
// Every warning of this process: the scenarios check the coded ones.
const warnings = []
process.on('warning', (w) => warnings.push(w))

/** What this runtime can do that a scenario needs; a scenario skips only through `need`. */
const can = {
  workerThreads: typeof Worker === 'function' ? '' : 'node:worker_threads has no Worker here',
}
/** Throws a skip with the reason when the runtime lacks `cap`. */
function need(cap) {
  if (can[cap]) throw Object.assign(new Error(can[cap]), { skip: true })
}

/** A forked child that runs functions: `await c.run((so, a) => ..., a)`. */
async function child({ serialization = 'json', install = false } = {}) {
  const proc = fork(CHILD, [], { serialization, stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env: { ...process.env, SO_INSTALL: install ? '1' : '0' } })
  const [first] = await once(proc, 'message')
  assert.deepEqual(first, { ready: true })
  let next = 0
  const pending = new Map()
  proc.on('message', (m) => {
    const p = pending.get(m.id)
    pending.delete(m.id)
    if (p && m.ok) p.resolve(m.value)
    else if (p) p.reject(Object.assign(new Error(m.error.message), m.error))
  })
  const exited = once(proc, 'exit')
  return {
    proc,
    run: (fn, ...args) => new Promise((resolve, reject) => {
      const id = next++
      pending.set(id, { resolve, reject })
      proc.send({ id, fn: fn.toString(), args })
    }),
    /** Sends a raw message (not a function call) and waits for the reply to it. */
    send: (message) => (proc.send(message), once(proc, 'message').then(([m]) => m)),
    /** Sends `message` and gives back what the child received, as the child received it. */
    echo: (message) => (proc.send({ echo: message }), once(proc, 'message').then(([m]) => m.echo)),
    async exit() {
      proc.send('exit')
      const [code, signal] = await exited
      assert.equal(code, 0, `child exited with ${code ?? signal}`)
    },
  }
}

/** Polls `f` until true, for what another process (or a timer) decides; false after 5 s. */
async function eventually(f) {
  for (let i = 0; i < 100; i++) {
    if (f()) return true
    await new Promise((r) => setTimeout(r, 50))
  }
  return f()
}

const scenarios = {
  async 'the addon loads: share, handleOf, and a forked child reads what the parent wrote'() {
    const x = so.share(Float64Array.of(1.5, 2.5, 3.5))
    assert.equal(so.isShared(x), true)
    const h = so.handleOf(x)
    const c = await child()
    try {
      assert.deepEqual(await c.run((so, h) => Array.from(so.open(h)), h), [1.5, 2.5, 3.5])
    } finally {
      await c.exit()
    }
    so.close(x)
  },

  async 'a spawned child (the runtime started by spawn) opens a handle from argv and its writes are seen'() {
    const x = so.share(Int32Array.of(10, 20, 30))
    const args = isDeno ? ['run', '-A', CHILD, so.handleOf(x)] : [CHILD, so.handleOf(x)]
    const p = spawn(process.execPath, args, { stdio: 'inherit' })
    const [code] = await once(p, 'exit')
    assert.equal(code, 0)
    assert.deepEqual(Array.from(x), [11, 21, 31])
    so.close(x)
  },

  async 'a process that makes and drops 500 vectors sees the engine release them, and exits by itself (0) with one still live'() {
    const args = isDeno ? ['run', '-A', '--v8-flags=--expose-gc', CHILD, '--churn'] : process.versions.bun ? [CHILD, '--churn'] : ['--expose-gc', CHILD, '--churn']
    const p = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    p.stdout.on('data', (d) => (out += d))
    const [code, signal] = await once(p, 'exit')
    assert.deepEqual([code, signal], [0, null])
    assert.ok(JSON.parse(out).mappings <= 250, out)
  },

  async 'child.send({ x }) on the JSON channel without install(): x travels as its handle, or (Deno) one coded warning said it would copy'() {
    const x = so.share(Float64Array.of(1, 2))
    const c = await child()
    try {
      const got = await c.echo({ x })
      if (isDeno) {
        assert.ok(warnings.some((w) => w.code === 'ERR_SHM_WOULD_COPY' && /install/.test(w.message)), 'Deno copies, and says so')
        assert.equal(got.x.length, 16, 'the bytes of two float64s, as the warning said')
      } else {
        assert.deepEqual(got, { x: { $sharedobject: so.handleOf(x) } }, 'what the child got')
      }
    } finally {
      await c.exit()
    }
    so.close(x)
  },

  async "after install(), child.send({ x, part }) on the JSON and the advanced channel: both travel as handles, the child's writes land"() {
    const undo = so.install()
    try {
      for (const serialization of ['json', 'advanced']) {
        const x = so.share(Float64Array.of(1, 2, 3, 4))
        const c = await child({ serialization, install: true })
        try {
          const fn = '(so, m) => { const { x, part } = so.revive(m); x[0] = 10; part[0] = 30; return so.isShared(x) && so.isShared(part) }'
          const reply = await c.send({ id: 'raw', fn, args: [{ x, part: x.subarray(2) }] })
          const copied = warnings.some((w) => w.code === 'ERR_SHM_WOULD_COPY' && /advanced/.test(w.message))
          if (serialization === 'advanced' && copied && !isDeno && !process.versions.bun) {
            // Node 24+: its advanced codec calls no JavaScript; the warning named it. On Deno
            // and Bun install() wraps send, so there the vector must travel.
            assert.deepEqual(reply, { id: 'raw', ok: true, value: false })
            continue
          }
          assert.deepEqual(reply, { id: 'raw', ok: true, value: true }, serialization)
          assert.deepEqual(Array.from(x), [10, 2, 30, 4], serialization)
        } finally {
          await c.exit()
        }
      }
    } finally {
      undo()
    }
  },

  async "a receiver's free(h) makes the segment unopenable, and the owner lets go of it"() {
    const before = so.stats()
    const x = so.share(new Float64Array(1000))
    const h = so.handleOf(x)
    const a = await child()
    const b = await child()
    try {
      assert.equal(await a.run((so, h) => so.free(h), h), true)
      await assert.rejects(b.run((so, h) => so.open(h), h), { code: 'ERR_SHM_NOT_FOUND' })
      assert.equal(so.list().some((s) => h.includes(s.id)), false, 'list() no longer shows it')
    } finally {
      await a.exit()
      await b.exit()
    }
    so.close(x)
    assert.ok(await eventually(() => so.stats().descriptors <= before.descriptors), 'the owner’s descriptors came back')
  },

  async 'handleOf(x, { opens: 1 }): the first receiver opens it, the second is told ERR_SHM_NOT_FOUND'() {
    const x = so.share(Float64Array.of(7, 8))
    const h = so.handleOf(x, { opens: 1 })
    const a = await child()
    const b = await child()
    try {
      assert.deepEqual(await a.run((so, h) => { globalThis.kept.push(so.open(h)); return Array.from(globalThis.kept[0]) }, h), [7, 8])
      // The owner learns of the open on its next call or timer tick.
      assert.ok(await eventually(() => so.stats().byState.waitingForOpens.segments === 0), 'the owner saw its one open')
      await assert.rejects(b.run((so, h) => so.open(h), h), { code: 'ERR_SHM_NOT_FOUND' })
    } finally {
      await a.exit()
      await b.exit()
    }
    so.close(x)
  },

  async "close: a child's close detaches its view only; the owner's close unmaps, and free gives back the rest"() {
    const before = so.stats()
    const x = so.share(Float64Array.of(1, 2, 3))
    const h = so.handleOf(x)
    const c = await child()
    try {
      const seen = await c.run((so, h) => {
        const v = so.open(h)
        v[1] = 20
        const closed = so.close(v)
        let again
        try {
          so.handleOf(v)
        } catch (e) {
          again = e.code
        }
        return { closed, shared: so.isShared(v), again, reopened: Array.from(so.open(h)) }
      }, h)
      assert.deepEqual(seen, { closed: true, shared: false, again: 'ERR_SHM_CLOSED', reopened: [1, 20, 3] })
    } finally {
      await c.exit()
    }
    assert.deepEqual(Array.from(x), [1, 20, 3])
    const mapped = so.stats().mappings
    assert.equal(so.close(x), true)
    assert.equal(so.close(x), false)
    assert.equal(so.stats().mappings, mapped - 1, 'close unmapped it now')
    assert.equal(so.free(h), true)
    assert.ok(await eventually(() => so.stats().segments <= before.segments), 'the owner holds no more segments than before')
  },

  async 'a mutex across 2 processes: 2 × 2,000 withLock increments of a plain float64 end at 4,000'() {
    const m = so.mutex()
    const x = so.share(new Float64Array(1))
    const cs = [await child(), await child()]
    try {
      const fn = (so, mh, xh) => {
        const m = so.open(mh)
        const x = so.open(xh)
        for (let i = 0; i < 2000; i++) m.withLock(() => (x[0] += 1))
        return true
      }
      assert.deepEqual(await Promise.all(cs.map((c) => c.run(fn, so.handleOf(m), so.handleOf(x)))), [true, true])
    } finally {
      for (const c of cs) await c.exit()
    }
    assert.equal(x[0], 4000)
    so.close(x)
    so.close(m)
  },

  async 'worker threads: a worker opens a posted handle and writes into the parent’s vector; a posted vector is shared exactly when its buffer is a SharedArrayBuffer'() {
    need('workerThreads')
    const x = so.share(Float64Array.of(1, 2, 3))
    const pkg = createRequire(import.meta.url).resolve('../..')
    const code = `
      const so = require(${JSON.stringify(pkg)})
      const { parentPort } = require('node:worker_threads')
      parentPort.once('message', (m) => {
        const v = so.open(m.h)
        v[0] = 11
        parentPort.postMessage({ shared: so.isShared(m.x), sab: m.x.buffer instanceof SharedArrayBuffer })
      })`
    const w = new Worker(code, { eval: true })
    try {
      w.postMessage({ h: so.handleOf(x), x })
      const [r] = await once(w, 'message')
      assert.equal(x[0], 11)
      assert.equal(r.shared, r.sab, 'a copy never claims to be shared')
      assert.equal(r.sab, x.buffer instanceof SharedArrayBuffer)
    } finally {
      await w.terminate()
    }
    so.close(x)
  },
}

const counts = { passed: 0, failed: 0, skipped: 0 }
const only = process.argv.slice(2)
console.log(`# ${runtime} ${process.platform}-${process.arch}`)
for (const [name, f] of Object.entries(scenarios)) {
  if (only.length && !only.some((o) => name.includes(o))) continue
  let timer
  try {
    await Promise.race([f(), new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('timed out after 30 s')), 30000)))])
    counts.passed++
    console.log(`ok - ${name}`)
  } catch (e) {
    if (e?.skip) {
      counts.skipped++
      console.log(`ok - ${name} # SKIP ${e.message}`)
    } else {
      counts.failed++
      console.log(`not ok - ${name}\n  ${String(e?.stack ?? e).split("\n").slice(0, 16).join('\n  ')}`)
    }
  } finally {
    clearTimeout(timer)
  }
}
console.log(`tests: ${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped`)
process.exit(counts.failed ? 1 : 0)
