// Views travel: a subarray (or any TypedArray or DataView) of a shared vector serialises as its
// segment's handle with its offset and length, and opens as exactly that view over the same
// memory; copies never claim to be shared; open(h, { kind }) says what it gives.
import test from 'ava'
import { fork } from 'node:child_process'
import { once } from 'node:events'
import so from '@sharedobject/core'
import { sharedChild, fixture } from './helpers.mjs'

const child = sharedChild(test)

test.serial('JSON of x.subarray(10, 20) revived in a child is exactly those 10 elements, shared', async (t) => {
  const x = so.share(Float64Array.from({ length: 100 }, (_, i) => i))
  const json = JSON.stringify({ part: x.subarray(10, 20) })
  t.regex(json, /^\{"part":\{"\$sharedobject":"sobj1:[^"]+#float64:80:10"\}\}$/)
  const seen = await child.run((so, json) => {
    const { part } = so.revive(JSON.parse(json))
    const out = { type: Object.prototype.toString.call(part), values: Array.from(part), sum: part.reduce((a, b) => a + b) }
    part[0] = -1
    part[9] = -9
    so.close(part)
    return out
  }, json)
  t.is(seen.type, '[object Float64Array]')
  t.deepEqual(seen.values, [10, 11, 12, 13, 14, 15, 16, 17, 18, 19])
  t.is(seen.sum, 145)
  t.is(x[10], -1, 'the child wrote into the parent’s vector')
  t.is(x[19], -9)
  t.is(x[9], 9, 'and nothing outside its part')
  t.is(x[20], 20)
  so.close(x)
})

test.serial('handleOf(subarray) opens as that subarray over the same memory', (t) => {
  const x = so.share(Int32Array.from({ length: 16 }, (_, i) => i))
  const h = so.handleOf(x.subarray(4, 7))
  t.true(h.length < 100)
  const v = so.open(h)
  t.is(Object.prototype.toString.call(v), '[object Int32Array]')
  t.deepEqual(Array.from(v), [4, 5, 6])
  t.is(v.buffer, x.buffer)
  t.is(v.byteOffset, 16)
  t.is(so.handleOf(x.subarray(0)), so.handleOf(x), 'a view of the whole vector is the vector')
  t.true(so.isShared(x.subarray(4, 7)))
  so.close(x)
})

test.serial('a Uint8Array and a DataView over a float64 vector’s buffer open as themselves', (t) => {
  const x = so.share(Float64Array.of(1.5, 2.5, 3.5))
  const bytes = new Uint8Array(x.buffer, 8, 8)
  const u = so.open(so.handleOf(bytes))
  t.is(Object.prototype.toString.call(u), '[object Uint8Array]')
  t.deepEqual(Array.from(u), Array.from(new Uint8Array(Float64Array.of(2.5).buffer)))
  const dv = so.open(so.handleOf(new DataView(x.buffer, 16, 8)))
  t.true(dv instanceof DataView)
  t.is(dv.getFloat64(0, true), 3.5)
  dv.setFloat64(0, 9, true)
  t.is(x[2], 9)
  t.deepEqual(JSON.parse(JSON.stringify(bytes)), { $sharedobject: so.handleOf(bytes) })
  so.close(x)
})

test.serial('a logical vector’s codes and a subarray of them travel too', (t) => {
  const x = so.share([true, false, null, true])
  const part = so.open(so.handleOf(x.codes.subarray(1, 3)))
  t.deepEqual(Array.from(part), [0, -1])
  t.is(part.buffer, x.buffer)
  so.close(x)
})

test.serial('containers holding subarrays open with each part exactly', async (t) => {
  const x = so.share(Float64Array.from({ length: 10 }, (_, i) => i))
  const box = { head: x.subarray(0, 3), tail: x.subarray(7), all: x, note: 'n' }
  const h = so.handleOf(box)
  const seen = await child.run((so, h, json) => {
    const a = so.open(h)
    const b = so.revive(JSON.parse(json))
    a.tail[0] = 70
    return { head: Array.from(a.head), tail: Array.from(b.tail), all: a.all.length, note: a.note }
  }, h, JSON.stringify(box))
  t.deepEqual(seen, { head: [0, 1, 2], tail: [70, 8, 9], all: 10, note: 'n' })
  t.is(x[7], 70)
  so.close(box)
})

test.serial('copies never claim to be shared: slice() and unshare()', (t) => {
  const x = so.share(Float64Array.of(1, 2, 3))
  for (const copy of [x.slice(), x.slice(1), so.unshare(x), so.unshare(x.subarray(1))]) {
    t.false(so.isShared(copy))
    t.false(copy.buffer instanceof SharedArrayBuffer)
    t.false(JSON.stringify(copy).includes('$sharedobject'))
    t.throws(() => so.handleOf(copy), { code: 'ERR_SHM_NOT_SHARED' })
  }
  t.deepEqual(JSON.parse(JSON.stringify(x.slice(1))), { 0: 2, 1: 3 })
  so.close(x)
})

test.serial('open(h, { kind }) gives that kind, or ERR_SHM_WRONG_KIND before mapping anything', (t) => {
  const x = so.share(Float32Array.of(1, 2))
  const s = so.share(['a'])
  const box = so.share({ x: Float64Array.of(1) })
  const h = so.handleOf(x)
  t.is(so.open(h, { kind: 'float32' }).buffer, x.buffer)
  t.is(so.open(so.handleOf(s), { kind: 'string' }).get(0), 'a')
  const cases = [[h, 'float64'], [so.handleOf(s), 'logical'], [so.handleOf(box), 'float64'], [so.handleOf(x.subarray(1)), 'int32']]
  const before = so.stats()
  for (const [handle, kind] of cases) {
    t.throws(() => so.open(handle, { kind }), { instanceOf: TypeError, code: 'ERR_SHM_WRONG_KIND' })
    t.throws(() => so.open(handle, { kind, copy: true }), { instanceOf: TypeError, code: 'ERR_SHM_WRONG_KIND' })
  }
  t.deepEqual(so.stats(), before)
  t.deepEqual(Array.from(so.open(so.handleOf(new Uint8Array(x.buffer, 0, 2)), { kind: 'uint8' })), [0, 0])
  t.throws(() => so.open(h, { kind: 'complex' }), { code: 'ERR_INVALID_ARG_VALUE' })
  t.deepEqual(Array.from(so.revive({ v: { $sharedobject: h } }, { kind: 'int8' }).v), [1, 2], 'revive ignores kind: a message holds many')
  for (const v of [x, s, box]) so.close(v)
})

test.serial('open(h, { populate: true }) maps the same data, fresh or already mapped, shared or copy-on-write', async (t) => {
  const x = so.share(Float64Array.from({ length: 1 << 16 }, (_, i) => i))
  const h = so.handleOf(x)
  t.is(so.open(h, { populate: true }).buffer, x.buffer, 'an open mapping is populated in place: the same buffer')
  t.throws(() => so.open(h, { populate: 'yes' }), { code: 'ERR_INVALID_ARG_TYPE' })
  const seen = await child.run((so, h) => {
    const v = so.open(h, { populate: true })
    const c = so.open(h, { populate: true, copyOnWrite: true })
    const sum = v.reduce((a, b) => a + b)
    c[1] = -5
    v[60000] = -7
    // Populating read pages in without copying them: a page the child never wrote still shows
    // what the shared mapping wrote.
    const r = { sum, cow1: c[1], cow2: c[60000], again: so.open(h, { populate: true }).buffer === v.buffer }
    so.close(v)
    so.close(c)
    return r
  }, h)
  t.deepEqual(seen, { sum: ((1 << 16) - 1) * (1 << 15), cow1: -5, cow2: -7, again: true })
  t.is(x[1], 1, 'a copy-on-write write stays in the child')
  t.is(x[60000], -7)
  so.close(x)
})

test.serial('serialization: \'advanced\' never silently copies a shared vector where Node lets us see it', async (t) => {
  const proc = fork(fixture('child.mjs'), [], { serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  await once(proc, 'message')
  const x = so.share(Float64Array.of(1, 2))
  try {
    let err
    try {
      proc.send({ id: 0, fn: '(so, m) => m.x.buffer instanceof SharedArrayBuffer', args: [{ x }] })
    } catch (e) {
      err = e
    }
    const major = Number(process.versions.node.split('.')[0])
    if (err) {
      t.is(err.code, 'ERR_SHM_WOULD_COPY')
      t.true(err instanceof TypeError)
      t.regex(err.message, /handleOf/)
    } else {
      // Node 24 and later serialise 'advanced' messages in native code, with no hook: there the
      // receiver gets a private copy, as the README says. Earlier Node always refuses.
      t.true(major >= 24, `Node ${process.versions.node} sent a shared vector by copy without a word`)
      const [reply] = await once(proc, 'message')
      t.false(reply.value, 'the receiver got an ordinary private copy')
    }
    // Sending a copy on purpose, or the handle, works everywhere.
    proc.send({ id: 1, fn: '(so, m) => Array.from(m.x)', args: [{ x: so.unshare(x) }] })
    t.deepEqual((await once(proc, 'message'))[0].value, [1, 2])
    proc.send({ id: 2, fn: '(so, m) => Array.from(so.open(m.h))', args: [{ h: so.handleOf(x) }] })
    t.deepEqual((await once(proc, 'message'))[0].value, [1, 2])
  } finally {
    proc.disconnect()
    await once(proc, 'exit')
    so.close(x)
  }
})
