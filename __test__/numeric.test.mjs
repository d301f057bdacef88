import test from 'ava'
import so from '@sharedobject/core'
import { sharedChild } from './helpers.mjs'

const KINDS = {
  float64: () => Float64Array.from([1.5, -2.25, Number.MAX_VALUE, NaN, -0, Infinity]),
  float32: () => Float32Array.from([1.5, -2.25, 3.4e38, NaN]),
  int8: () => Int8Array.from([-128, 127, 0, 5]),
  uint8: () => Uint8Array.from([0, 255, 7]),
  uint8clamped: () => Uint8ClampedArray.from([0, 255, 128]),
  int16: () => Int16Array.from([-32768, 32767, 3]),
  uint16: () => Uint16Array.from([0, 65535, 9]),
  int32: () => Int32Array.from([-(2 ** 31), 2 ** 31 - 1, 11]),
  uint32: () => Uint32Array.from([0, 2 ** 32 - 1, 13]),
  int64: () => BigInt64Array.from([-(2n ** 63n), 2n ** 63n - 1n, 17n]),
  uint64: () => BigUint64Array.from([0n, 2n ** 64n - 1n, 19n]),
}

// One child for the whole file, started before the first test and ended after the last.
const child = sharedChild(test)

for (const [kind, make] of Object.entries(KINDS)) {
  test.serial(`${kind} round-trips through a forked child`, async (t) => {
    const src = make()
    const x = so.share(src)
    t.is(Object.prototype.toString.call(x), Object.prototype.toString.call(src), 'a real TypedArray of the same type')
    t.deepEqual(Array.from(x), Array.from(src))
    const seen = await child.run(
      (so, h) => {
        const v = so.open(h)
        const out = { type: Object.prototype.toString.call(v), values: Array.from(v), kind: so.properties(v).kind }
        so.close(v)
        return out
      },
      so.handleOf(x),
    )
    t.is(seen.type, Object.prototype.toString.call(src))
    t.deepEqual(seen.values, Array.from(src))
    t.is(seen.kind, kind)
    so.close(x)
  })

  test.serial(`alloc('${kind}') is zero-filled and shared with a child`, async (t) => {
    const x = so.alloc(kind, 1000)
    t.is(x.length, 1000)
    t.true(x.every((v) => v == 0))
    x[999] = typeof x[0] === 'bigint' ? 42n : 42
    const last = await child.run((so, h) => {
      const v = so.open(h)
      const r = String(v[999])
      so.close(v)
      return r
    }, so.handleOf(x))
    t.is(last, '42')
    so.close(x)
  })
}

test('a shared vector is a plain TypedArray to every method and to Atomics', (t) => {
  const x = so.share(Int32Array.from([5, 3, 9, 1]))
  t.deepEqual(Array.from(x.map((v) => v * 2)), [10, 6, 18, 2])
  x.sort()
  t.deepEqual(Array.from(x), [1, 3, 5, 9])
  t.is(x.indexOf(5), 2)
  t.is(Atomics.add(x, 0, 10), 1)
  t.is(Atomics.load(x, 0), 11)
  t.true(x instanceof Int32Array)
  t.is(Buffer.from(x.buffer).length, 16)
  so.close(x)
})

test('share copies only the visible part of a subarray', (t) => {
  const big = Float64Array.from({ length: 10 }, (_, i) => i)
  const x = so.share(big.subarray(3, 6))
  t.deepEqual(Array.from(x), [3, 4, 5])
  big[4] = 100
  t.is(x[1], 4, 'the share is a copy of the source, not a view of it')
  so.close(x)
})

test('zero-length vectors are shared', async (t) => {
  const x = so.share(new Float64Array(0))
  t.is(x.length, 0)
  t.true(so.isShared(x))
  const n = await child.run((so, h) => so.open(h).length, so.handleOf(x))
  t.is(n, 0)
  so.close(x)
})

test('the JSON form carries the handle and revive opens it in a child', async (t) => {
  const x = so.share(Float64Array.from([1, 2, 3]))
  const json = JSON.stringify({ data: x, note: 'hi', nested: [x] })
  t.deepEqual(JSON.parse(json), { data: { $sharedobject: so.handleOf(x) }, note: 'hi', nested: [{ $sharedobject: so.handleOf(x) }] })
  t.true(so.handleOf(x).length < 100)
  t.regex(so.handleOf(x), /^[\x21-\x7e]+$/, 'printable ASCII')
  const seen = await child.run((so, msg) => {
    const m = so.revive(JSON.parse(msg))
    return { note: m.note, data: Array.from(m.data), nested: Array.from(m.nested[0]), same: m.data.buffer === m.nested[0].buffer }
  }, json)
  t.deepEqual(seen.data, [1, 2, 3])
  t.deepEqual(seen.nested, [1, 2, 3])
  t.is(seen.note, 'hi')
  so.close(x)
})

test('revive leaves everything that is not a handle object alone', (t) => {
  const d = new Date(0)
  const msg = { a: 1, s: 'sobj1:abc:0000000000000001', d, list: [null, { $sharedobject: 1 }], two: { $sharedobject: 'x', y: 1 } }
  const out = so.revive(msg)
  t.deepEqual(out, msg)
  t.is(out.d, d)
})

test('unshare gives an ordinary private copy; isShared tells them apart', (t) => {
  const x = so.share(Float64Array.from([1, 2]))
  const y = so.unshare(x)
  t.true(so.isShared(x))
  t.false(so.isShared(y))
  t.true(y instanceof Float64Array)
  y[0] = 9
  t.is(x[0], 1)
  t.is(JSON.stringify(y), '{"0":9,"1":2}')
  const plain = new Float64Array(2)
  t.is(so.unshare(plain), plain)
  t.false(so.isShared(plain))
  so.close(x)
  t.false(so.isShared(x))
})

test('properties describe the segment in every process, attributes included', async (t) => {
  const x = so.share(Float64Array.from([1, 2, 3, 4, 5, 6]), { attributes: { dim: [2, 3], units: 'm' } })
  const p = so.properties(x)
  t.like(p, { kind: 'float64', length: 6, byteLength: 48, copyOnWrite: false, ownData: true, ownerPid: process.pid, persistent: false })
  t.deepEqual(p.attributes, { dim: [2, 3], units: 'm' })
  t.true(p.created instanceof Date)
  const there = await child.run((so, h) => {
    const v = so.open(h)
    const q = so.properties(v)
    so.close(v)
    return { ...q, created: q.created.getTime() }
  }, so.handleOf(x))
  t.deepEqual(there.attributes, { dim: [2, 3], units: 'm' })
  t.false(there.ownData)
  t.is(there.ownerPid, process.pid)
  t.is(there.id, p.id)
  so.close(x)
})

test('options: minLength leaves short vectors unshared, mustWork throws on unsharable values', (t) => {
  const old = so.setOptions({ minLength: 3 })
  t.deepEqual(old, { minLength: 0 })
  try {
    const short = Float64Array.from([1, 2])
    t.is(so.share(short), short)
    t.true(so.isShared(so.share(short, { minLength: 0 })))
    t.is(so.getOptions().minLength, 3)
  } finally {
    so.setOptions(old)
  }
  const fn = () => 1
  t.is(so.share(fn), fn)
  t.throws(() => so.share(fn, { mustWork: true }), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => so.setOptions({ nope: true }), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_VALUE' })
  t.throws(() => so.setOptions({ copyOnWrite: 'yes' }), { instanceOf: TypeError })
  t.throws(() => so.setOptions({ minLength: -1 }), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' })
})
