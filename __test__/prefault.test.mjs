// Background prefault (`populate: 'background'`): `open` starts mapping a vector's pages on a
// thread of the package and returns at once; the thread stops when the vector is closed. Receivers are real processes, so
// a thread touching an unmapped range would end one with a signal this file sees.
import fs from 'node:fs'

import test from 'ava'

import so from '@sharedobject/core'

import { can, fixture, run, when } from './helpers.mjs'

const sobj = () => (can.shmFiles ? fs.readdirSync('/dev/shm').filter((f) => f.startsWith('sobj.')).sort() : [])
let before
test.before(() => {
  before = sobj()
})
test.after.always('leaves /dev/shm as it found it', () => {
  if (can.shmFiles && JSON.stringify(sobj()) !== JSON.stringify(before)) throw new Error(`/dev/shm changed: ${sobj()}`)
})

/** Runs the receiver fixture; a signal or a non-zero exit rejects with it. */
async function receive(mode, h, arg = '') {
  const { stdout } = await run(process.execPath, [fixture('prefault.mjs'), mode, h, String(arg)], { maxBuffer: 1 << 26 })
  return JSON.parse(stdout)
}

const GiB = 1 << 30

when(can.populateRead, test.serial)('open of 1 GiB returns before its background prefault has done the work, which then covers it all', async (t) => {
  const n = GiB / 8
  const x = so.alloc('float64', n)
  const step = 1 << 17
  for (let i = 0; i < n; i += step) x[i] = i
  x[n - 1] = -1
  const r = await receive('race', so.handleOf(x), step)
  t.log(`chunks done when open returned: ${r.atReturn.chunks} of ${r.dataChunks}`)
  t.true(r.atReturn.chunks < r.dataChunks, 'open did not wait for the whole prefault')
  t.is(r.atReturn.started, 1, 'open started one job')
  t.deepEqual(r.sample, Array.from({ length: n / step }, (_, i) => i * step), 'values read while the thread runs are right')
  t.is(r.last, -1)
  t.true(r.done.chunks >= r.dataChunks, 'left alone, the thread populated the whole vector')
  t.is(r.done.threads, 0, 'and then ended')
  so.free(x)
  so.close(x)
})

when(can.populateRead, test.serial)('closing during prefault, 200 times, stops each thread and faults nothing', async (t) => {
  const n = (64 << 20) / 8
  const x = so.alloc('float64', n)
  for (let i = 0; i < n; i += 4099) x[i] = i
  const reps = 200
  const r = await receive('closeLoop', so.handleOf(x), reps)
  t.is(r.wrong, 0, 'every value read was right')
  t.is(r.done.started, reps, 'each open started a prefault')
  t.is(r.done.ended, reps, 'and each one ended')
  t.is(r.done.threads, 0, 'no prefault thread is left')
  t.true(r.done.chunks < reps * (n * 8) / r.done.chunkBytes, 'closes stopped threads before they populated everything')
  so.free(x)
  so.close(x)
})

when(can.populateRead, test.serial)("the default, populate: false and true start no thread, 'background' does; copy-on-write keeps its writes", async (t) => {
  const n = (16 << 20) / 8
  const x = so.alloc('float64', n)
  x[5] = 5
  x[6] = 6
  x[n - 1] = 7
  const r = await receive('options', so.handleOf(x))
  t.is(r.afterDefault, 0)
  t.is(r.afterFalse, 0)
  t.is(r.afterTrue, 0)
  t.is(r.afterBackground, 1)
  t.is(r.done.threads, 0)
  t.deepEqual(r.cow, [-1, 6, 7])
  t.is(x[5], 5, "the receiver's copy-on-write write stayed in the receiver")
  so.free(x)
  so.close(x)
})

when(can.populateRead, test.serial)('populate: true and background map the whole vector, read only, and the default maps next to none of it', async (t) => {
  const bytes = 64 << 20
  const x = so.alloc('float64', bytes / 8)
  x[bytes / 8 - 1] = 9
  const r = await receive('resident', so.handleOf(x), x.byteLength)
  t.log(Object.entries(r).map(([k, v]) => `${k}: ${(v.rss / 2 ** 20).toFixed(1)} MiB mapped, ${v.copied} bytes copied`).join('; '))
  // The kernel's fault-around skips a page something else holds locked that instant (the
  // reader maps it at first touch): all but a few pages, not every one.
  t.true(r.default.rss < bytes / 64, 'by default only what was read is mapped')
  for (const k of ['populated', 'cow', 'background']) {
    t.true(r[k].rss >= bytes * 0.97, `${k}: the pages are mapped`)
    t.is(r[k].last, 9)
  }
  t.is(r.cow.copied, 0, 'populating a copy-on-write mapping copies no page')
  so.free(x)
  so.close(x)
})

test('populate takes a boolean or the string background', (t) => {
  const x = so.share(Float64Array.of(1, 2, 3))
  const h = so.handleOf(x)
  for (const bad of ['yes', 1, null]) t.throws(() => so.open(h, { populate: bad }), { code: 'ERR_INVALID_ARG_TYPE' })
  t.deepEqual(Array.from(so.open(h, { populate: 'background' })), [1, 2, 3])
  so.close(x)
})
