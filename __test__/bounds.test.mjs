// The long loops: each runs tens of thousands of segments through one process and checks that
// what the process holds stays bounded (mappings, VmSize, the kernel's map count) and that it
// ends without a signal. The bounds are the core's and the kernel's: the full suites run them
// (Node 20's ArrayBuffers, Node 26's SharedArrayBuffers, Windows); a smaller one, on a Node
// whose buffers take the same paths, does not.
import fs from 'node:fs'

import test from 'ava'
import { can, when, child, exitedCleanly } from './helpers.mjs'

// Each loop runs with this runtime's buffers (SharedArrayBuffers where it can make them) and
// with ArrayBuffers (SHAREDOBJECT_NO_SAB: Node 20's, Deno's and Windows' kind), whose closes
// take another path (detached, held until collected).
const BUFFERS = [
  ['this runtime’s buffers', {}],
  ['ArrayBuffers', { SHAREDOBJECT_NO_SAB: '1' }],
]

// Windows gives a closed view's pages back only when the engine releases the buffer.
for (const [buffers, env] of BUFFERS) {
  when(can.closeKeepsRange, test.serial)(`100,000 × (share, use, close) in one synchronous loop runs in bounded mappings (${buffers})`, async (t) => {
    const r = await child(`
      const fs = require('node:fs')
      const maps = () => process.platform === 'linux' ? fs.readFileSync('/proc/self/maps', 'utf8').split('\\n').length : 0
      const before = maps()
      let sum = 0
      for (let i = 0; i < 100000; i++) {
        const x = so.share(Float64Array.of(i))
        sum += x[0]
        so.close(x)
      }
      console.log(JSON.stringify({ sum, grew: maps() - before, live: so.stats().live }))
    `, { env, timeout: 120000 })
    exitedCleanly(t, r)
    const out = r.json()
    t.is(out.sum, (99999 * 100000) / 2)
    t.is(out.live, 0)
    t.true(out.grew < 20000, `${out.grew} more mappings`)
  })
}

test.serial('100,000 × (share, free, drop) either completes or fails with a coded error, never aborts', async (t) => {
  const r = await child(`
    let made = 0, code = null
    // Bounded in time too: a native machine makes all 100,000 in seconds; an emulated one
    // (Wine) makes tens of thousands in 20 s, which is what the test needs of it.
    const end = Date.now() + 20000
    try {
      for (let i = 0; i < 100000 && Date.now() < end; i++) {
        const x = so.share(Float64Array.of(i))
        so.free(x)
        made++
      }
    } catch (e) { code = e.code }
    console.log(JSON.stringify({ made, code }))
  `, { timeout: 120000 })
  exitedCleanly(t, r)
  const out = r.json()
  t.true(out.code === null || out.code === 'ERR_SHM_NO_SPACE', JSON.stringify(out))
  t.true(out.made > 0)
})

const vmSize = `() => Number(/VmSize:\\s+(\\d+)/.exec(require('node:fs').readFileSync('/proc/self/status', 'utf8'))[1]) * 1024`

// A closed range holds address space (its pages went at the close) until the engine collects
// its buffer. Making the engine collect is a full collection, so it is made only past a bound:
// a 512th of the address space (16 to 256 GiB), or an eighth of RLIMIT_AS where that is less.
const closeLoop = (n, mib = 256) => `
  const vm = ${vmSize}
  const start = vm()
  let most = 0
  let done = 0
  let failed
  try {
    for (let i = 0; i < ${n}; i++) {
      const x = so.alloc('float64', (${mib} * 2 ** 20) / 8, { reserve: false })
      x[i] = i
      x[x.length - 1] = i
      so.close(x)
      most = Math.max(most, vm() - start)
      done++
    }
  } catch (e) { failed = e.code + ': ' + e.message }
  console.log(JSON.stringify({ most, done, failed }))
`

for (const [runtime, env] of BUFFERS) {
  when(can.procfs && can.prlimit, test.serial)(`48 × (share 256 MiB, use, close) in one synchronous loop under ulimit -v of 2 GiB more than Node needs: every one succeeds (${runtime})`, async (t) => {
    const idle = Number(/VmSize:\s+(\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1]) * 1024
    const r = await child(closeLoop(48), { env, wrap: ['prlimit', `--as=${idle + 2 * 2 ** 30}`] })
    exitedCleanly(t, r)
    const { done, failed } = r.json()
    t.is(failed, undefined)
    t.is(done, 48)
  })

  when(can.procfs, test.serial)(`320 × (share 1 GiB, use, close) in one synchronous loop, 320 GiB closed: VmSize stays below the largest bound (${runtime})`, async (t) => {
    const r = await child(closeLoop(320, 1024), { env })
    exitedCleanly(t, r)
    const { most, done, failed } = r.json()
    t.is(failed, undefined)
    t.is(done, 320)
    t.true(most < 258 * 2 ** 30, `VmSize grew by ${(most / 2 ** 20).toFixed(0)} MiB`)
  })
}

// Each closed range sits between two live named mappings, so no two of them merge into one
// kernel mapping: the kernel's map count runs out unless closed ranges are given back, and the
// budget counts them while they are held.
for (const [buffers, env] of BUFFERS) {
  when(can.procfs && can.shmFiles, test.serial)(`40,000 × (named alloc, close) with named vectors kept alive between them ends without a signal, VmSize bounded (${buffers})`, async (t) => {
    const r = await child(
      `
      const fs = require('node:fs')
      const vm = ${vmSize}
      const start = vm()
      // Nearly half the kernel's map count stays alive; the closed ones take the other half.
      const keep = Math.floor(Number(fs.readFileSync('/proc/sys/vm/max_map_count', 'utf8')) * 0.46)
      const kept = []
      let most = 0
      let failed
      // Bounded in time too (an emulated machine runs a fraction of the loop; a native one, all).
      const end = Date.now() + 75000
      let i = 0
      try {
        for (; i < 40000 && Date.now() < end; i++) {
          const x = so.alloc('float64', 4, { named: true })
          x[0] = i
          so.close(x)
          if (kept.length < keep) kept.push(so.alloc('float64', 4, { named: true }))
          if (i % 1000 === 0) most = Math.max(most, vm() - start)
        }
      } catch (e) { failed = e.code + ': ' + e.message }
      const n = kept.length
      for (const k of kept) so.close(k)
      console.log(JSON.stringify({ most, failed, kept: n, keep, done: i === 40000 }))
    `,
      { env, timeout: 110000 },
    )
    exitedCleanly(t, r)
    const { most, failed, kept, keep, done } = r.json()
    t.is(failed, undefined)
    if (done) t.is(kept, keep)
    t.true(most < 2 ** 30, `VmSize grew by ${(most / 2 ** 20).toFixed(0)} MiB`)
  })
}
