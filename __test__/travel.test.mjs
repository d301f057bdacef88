// Views travel: a subarray (or any TypedArray or DataView) of a shared vector serialises (with
// so.replacer, or after so.install()) as its segment's handle with its offset and length, and
// opens as exactly that view over the same memory; copies never claim to be shared;
// open(h, { kind }) says what it gives.
import test from 'ava'
import { fork } from 'node:child_process'
import { once } from 'node:events'
import v8 from 'node:v8'
import so from '@sharedobject/core'
import workerpool from 'workerpool'
import { sharedChild, fixture } from './helpers.mjs'

const child = sharedChild(test)
const original = v8.DefaultSerializer.prototype._writeHostObject
// Every warning of this process, from the first test on: install() warns at most once.
const warnings = []
process.on('warning', (w) => warnings.push(w))

test.serial('JSON (with so.replacer) of x.subarray(10, 20) revived in a child is exactly those 10 elements, shared', async (t) => {
  const x = so.share(Float64Array.from({ length: 100 }, (_, i) => i))
  const json = JSON.stringify({ part: x.subarray(10, 20) }, so.replacer)
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
  t.deepEqual(JSON.parse(JSON.stringify(bytes, so.replacer)), { $sharedobject: so.handleOf(bytes) })
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
  }, h, JSON.stringify(box, so.replacer))
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
    t.false(JSON.stringify(copy, so.replacer).includes('$sharedobject'))
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

test.serial('a whole vector carries its own toJSON; so.reviver opens handles inside JSON.parse', (t) => {
  const x = so.share(Float64Array.of(1, 2, 3))
  const desc = Object.getOwnPropertyDescriptor(x, 'toJSON')
  t.is(typeof desc?.value, 'function')
  t.false(desc.enumerable, 'not enumerable: Object.keys and for-in see only indexes')
  t.deepEqual(Object.keys(x), ['0', '1', '2'])
  const text = JSON.stringify({ x, part: x.subarray(1) }, so.replacer)
  const back = JSON.parse(text, so.reviver)
  t.is(back.x.buffer, x.buffer)
  t.deepEqual(Array.from(back.part), [2, 3])
  t.is(back.part.byteOffset, 8)
  t.deepEqual(JSON.parse('{"a":{"$sharedobject":1},"b":[{"$sharedobject":"x","y":1}]}', so.reviver), { a: { $sharedobject: 1 }, b: [{ $sharedobject: 'x', y: 1 }] })
  so.close(x)
})

test.serial('so.install() makes subarrays travel by JSON.stringify alone, and its undo puts the prototype back', (t) => {
  const TA = Object.getPrototypeOf(Uint8Array.prototype)
  const x = so.share(Int16Array.of(1, 2, 3, 4))
  t.false(JSON.stringify({ p: x.subarray(1, 3) }).includes('$sharedobject'), 'without install a subarray is an ordinary TypedArray')
  const undo = so.install()
  try {
    t.is(so.install(), undo, 'installing twice changes nothing')
    t.deepEqual(JSON.parse(JSON.stringify({ p: x.subarray(1, 3) })), { p: { $sharedobject: so.handleOf(x.subarray(1, 3)) } })
    t.is(JSON.stringify(Int16Array.of(7)), '{"0":7}', 'other TypedArrays serialise as they always have')
  } finally {
    undo()
  }
  t.false(Object.prototype.hasOwnProperty.call(TA, 'toJSON'))
  so.close(x)
})

async function advancedChild() {
  const proc = fork(fixture('child.mjs'), [], { serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  await once(proc, 'message')
  const ask = async (msg) => {
    proc.send(msg)
    return (await once(proc, 'message'))[0]
  }
  return { proc, ask, end: async () => (proc.disconnect(), await once(proc, 'exit')) }
}

test.serial('serialization: \'advanced\' never throws from send: without install the receiver gets a copy, as Node sends any TypedArray', async (t) => {
  const { ask, end } = await advancedChild()
  const x = so.share(Float64Array.of(1, 2))
  try {
    const reply = await ask({ id: 0, fn: '(so, m) => { const v = so.revive(m).x; v[0] = 9; return [Array.from(v), so.isShared(v)] }', args: [{ x }] })
    t.deepEqual(reply.value, [[9, 2], false])
    t.is(x[0], 1, 'a copy: the receiver’s write stays there')
    // The handle works on every channel.
    t.deepEqual((await ask({ id: 1, fn: '(so, m) => Array.from(so.open(m.h))', args: [{ h: so.handleOf(x) }] })).value, [1, 2])
  } finally {
    await end()
    so.close(x)
  }
})

test.serial('after so.install(), a shared vector in an advanced message travels as its handle (or one coded warning says it cannot)', async (t) => {
  const { ask, end } = await advancedChild()
  const x = so.share(Float64Array.of(1, 2, 3, 4))
  const undo = so.install()
  try {
    const fn = '(so, m) => { const { x, part } = so.revive(m); x[0] = 10; part[0] = 30; return [so.isShared(x), Array.from(part)] }'
    const reply = await ask({ id: 0, fn, args: [{ x, part: x.subarray(2) }] })
    await new Promise((resolve) => setImmediate(resolve))
    const ours = warnings.filter((w) => w.code === 'ERR_SHM_WOULD_COPY')
    if (reply.value[0]) {
      t.deepEqual(reply.value, [true, [30, 4]])
      t.deepEqual(Array.from(x), [10, 2, 30, 4], 'the receiver wrote into the sender’s vector, through both views')
      t.is(ours.length, 0, 'no warning where the vector travels as its handle')
    } else {
      t.is(ours.length, 1, 'a runtime that copies says so, once')
      t.regex(ours[0].message, /handleOf/)
      t.deepEqual(Array.from(x), [1, 2, 3, 4], 'the receiver’s writes went to its copy')
    }
    t.is(v8.deserialize(v8.serialize(x)).buffer === x.buffer, false, 'v8.serialize() still gives bytes')
    t.deepEqual(Array.from(v8.deserialize(v8.serialize(x))), Array.from(x))
  } finally {
    undo()
    await end()
    so.close(x)
  }
  t.is(v8.DefaultSerializer.prototype._writeHostObject, original, 'undo put Node’s method back')
})

test.serial('workerpool in process mode with serialization: \'advanced\' takes a task holding a shared vector without dying', async (t) => {
  const pool = workerpool.pool(fixture('pool-worker.cjs'), { workerType: 'process', maxWorkers: 1, forkOpts: { serialization: 'advanced', stdio: 'inherit' } })
  const x = so.share(Float64Array.of(1, 2, 3))
  try {
    const copied = await pool.exec('take', [{ x }])
    t.deepEqual(copied, { values: [-1, 2, 3], shared: false }, 'without install the task gets a copy')
    t.is(x[0], 1)
    const undo = so.install()
    try {
      const r = await pool.exec('take', [{ x }])
      const warned = warnings.some((w) => w.code === 'ERR_SHM_WOULD_COPY')
      t.deepEqual(r, { values: [-1, 2, 3], shared: !warned }, 'after install: the same memory, or a copy the warning named')
      t.is(x[0], warned ? 1 : -1)
    } finally {
      undo()
    }
  } finally {
    await pool.terminate()
    so.close(x)
  }
})
