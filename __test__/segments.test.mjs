// A segment is one object per mapping in this process: closed once for every thread, unmapped
// exactly once, when nothing (a buffer, a transferred buffer, a thread-pool job) can reach it,
// and every range the process holds is counted and given back. Each crash case runs in a child
// process that would die of SIGSEGV if the memory were unmapped under it.
import test from 'ava'
import { fileURLToPath } from 'node:url'
import { can, when, child, exitedCleanly } from './helpers.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))

// A read from a FIFO parks a thread-pool job on a developer-API buffer over a vector's mapping;
// the vector is closed, the buffer unmapped, the engine collects, and new segments are mapped
// (the kernel may place them at the old address). Then the job writes: into nothing anybody
// reads, never into unmapped memory nor into the new segments.
when(can.closeKeepsRange && can.shmFiles, test.serial)('a thread-pool job on a closed, unmapped developer buffer writes into no other segment and crashes nothing', async (t) => {
  const r = await child(`
    const fs = require('node:fs')
    const os = require('node:os')
    const path = require('node:path')
    const r = require(${JSON.stringify(root)} + '/dist/src/r.js')
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sobj-fifo-'))
    const fifo = path.join(dir, 'f')
    require('node:child_process').execFileSync('mkfifo', [fifo])
    const rfd = fs.openSync(fifo, fs.constants.O_RDWR)
    const N = 1 << 20
    const name = 'seg' + process.pid
    // Nothing but the job keeps the buffer once this returns.
    const park = () => {
      const v = so.alloc('uint8', N, { name })
      const dev = r.mapSharedMemory(name)
      const done = new Promise((resolve) => fs.read(rfd, new Uint8Array(dev), 0, N, null, (err, n) => resolve(err ? err.code : n)))
      so.close(v)
      r.unmapSharedMemory(name)
      so.free(name)
      return done
    }
    const done = park()
    const fresh = []
    setTimeout(async () => {
      for (let i = 0; i < 3; i++) global.gc()
      await new Promise((r) => setTimeout(r, 50))
      for (let i = 0; i < 3; i++) global.gc()
      for (let i = 0; i < 16; i++) fresh.push(so.alloc('uint8', N).fill(7))
      await new Promise((r) => setTimeout(r, 50))
      const w = fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK)
      fs.writeSync(w, Buffer.alloc(N, 0x58))
      const n = await done
      const clean = fresh.every((x) => x.every((b) => b === 7))
      fs.closeSync(w); fs.closeSync(rfd); fs.rmSync(dir, { recursive: true })
      for (let i = 0; i < 3; i++) global.gc()
      console.log(JSON.stringify({ n, clean }))
    }, 200)
  `)
  exitedCleanly(t, r)
  const { n, clean } = r.json()
  t.true(n > 0, 'the job ran to its end')
  t.true(clean, 'no new segment received the old job’s bytes')
})

// A worker transfers an ArrayBuffer over a mapping to the main thread and exits: the worker's
// teardown finalizes its buffers, though the memory moved. The main thread then reads it all.
for (const [what, make] of [
  ['a vector’s ArrayBuffer', `so.share(Float64Array.from({ length: 1 << 17 }, (_, i) => i)).buffer`],
  ['a developer buffer', `(() => { const r = require(process.cwd() + '/dist/src/r.js'); const id = r.allocateSharedMemory(1 << 20); const b = r.mapSharedMemory(id); new Float64Array(b).forEach((_, i, a) => (a[i] = i)); so.free(id); return b })()`],
]) {
  test.serial(`transfer() + postMessage of ${what} from a worker that exits leaves the main thread’s buffer readable`, async (t) => {
    const r = await child(
      `
      const { Worker } = require('node:worker_threads')
      const w = new Worker(\`
        const so = require(process.cwd())
        const { parentPort } = require('node:worker_threads')
        const b = ${make.replace(/`/g, '\\`')}
        const moved = b.transfer ? b.transfer() : b
        parentPort.postMessage(moved, [moved])
      \`, { eval: true })
      w.once('message', (b) => {
        w.once('exit', async () => {
          for (let i = 0; i < 5; i++) { global.gc(); await new Promise((r) => setTimeout(r, 20)) }
          const v = new Float64Array(b)
          let sum = 0
          for (let i = 0; i < v.length; i++) sum += v[i]
          v[1] = 5
          console.log(JSON.stringify({ length: v.length, sum, wrote: v[1] }))
        })
      })
    `,
      // ArrayBuffer views everywhere, as on Windows and older Node.
      { env: { SHAREDOBJECT_NO_SAB: '1' } },
    )
    exitedCleanly(t, r)
    const { length, sum, wrote } = r.json()
    t.is(length, 1 << 17)
    t.is(sum, ((1 << 17) * ((1 << 17) - 1)) / 2)
    t.is(wrote, 5)
  })
}

test.serial('a close in a worker is seen by every thread: the main thread’s vector reads as closed and open() maps afresh', async (t) => {
  const r = await child(`
    const { Worker } = require('node:worker_threads')
    const x = so.share(Float64Array.of(1, 2, 3))
    const h = so.handleOf(x)
    const w = new Worker(\`
      const so = require(process.cwd())
      const { workerData, parentPort } = require('node:worker_threads')
      const v = so.open(workerData)
      v[2] = 30
      so.close(v)
      parentPort.postMessage('closed')
    \`, { eval: true, workerData: h })
    w.once('message', () => {
      const out = {}
      try { so.handleOf(x); out.handleOf = 'ok' } catch (e) { out.handleOf = e.code }
      try { so.properties(x); out.properties = 'ok' } catch (e) { out.properties = e.code }
      const y = so.open(h)
      out.fresh = y !== x && y.buffer !== x.buffer
      out.values = Array.from(y)
      y[0] = 10
      out.reopened = Array.from(so.open(h))
      so.free(y)
      console.log(JSON.stringify(out))
    })
  `)
  exitedCleanly(t, r)
  const out = r.json()
  t.is(out.handleOf, 'ERR_SHM_CLOSED')
  t.is(out.properties, 'ERR_SHM_CLOSED')
  t.true(out.fresh, 'a new mapping, not the closed buffer')
  t.deepEqual(out.values, [1, 2, 30], 'the segment kept every write made before the close')
  t.deepEqual(out.reopened, [10, 2, 30], 'the new mapping is the one this thread keeps')
})
