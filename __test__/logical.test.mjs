import test from 'ava'
import so from '@sharedobject/core'
import { sharedChild } from './helpers.mjs'

// One child for the whole file, started before the first test and ended after the last.
const child = sharedChild(test)

test.serial('a boolean array with NA round-trips through a forked child', async (t) => {
  const src = [true, false, null, true, undefined, false, true]
  const x = so.share(src)
  t.true(x instanceof so.SharedLogicalVector)
  t.is(x.length, 7)
  t.deepEqual(x.toArray(), [true, false, null, true, null, false, true])
  t.is(x.countTrue(), 3)
  t.deepEqual([...x], x.toArray())
  t.true(x.codes instanceof Int8Array)
  t.deepEqual(Array.from(x.codes), [1, 0, -1, 1, -1, 0, 1])
  const seen = await child.run((so, h) => {
    const v = so.open(h)
    const r = { cls: v.constructor.name, values: v.toArray(), count: v.countTrue(), kind: so.properties(v).kind }
    so.close(v)
    return r
  }, so.handleOf(x))
  t.deepEqual(seen, { cls: 'SharedLogicalVector', values: x.toArray(), count: 3, kind: 'logical' })
  so.close(x)
})

test.serial('alloc("logical") is all false; set() from a child is seen by the parent', async (t) => {
  const x = so.alloc('logical', 5)
  t.deepEqual(x.toArray(), [false, false, false, false, false])
  await child.run((so, h) => {
    const v = so.open(h)
    v.set(1, true)
    v.set(3, null)
    so.close(v)
  }, so.handleOf(x))
  t.deepEqual(x.toArray(), [false, true, false, null, false])
  t.is(x.get(3), null)
  so.close(x)
})

test.serial('all-NA and empty logical vectors', async (t) => {
  const na = so.share([null, null, null])
  t.false(so.isShared(na), 'an array of nulls only is a container of plain values, not a logical vector')
  t.deepEqual(na, [null, null, null])
  const x = so.alloc('logical', 3)
  for (let i = 0; i < 3; i++) x.set(i, null)
  t.deepEqual(x.toArray(), [null, null, null])
  t.is(x.countTrue(), 0)
  t.is(x.countNA(), 3)
  const empty = so.alloc('logical', 0)
  t.deepEqual(empty.toArray(), [])
  so.close(x)
  so.close(empty)
})

test.serial('bad indexes and values are coded errors, and the vector is unchanged', (t) => {
  const x = so.share([true, false])
  for (const i of [-1, 2, 1.5, NaN, '0']) {
    t.throws(() => x.get(i), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' })
    t.throws(() => x.set(i, true), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' })
  }
  for (const v of [1, 'true', undefined, {}]) t.throws(() => x.set(0, v), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
  t.deepEqual(x.toArray(), [true, false])
  const mixed = so.share([true, 1])
  t.false(so.isShared(mixed), 'a mixed array is a container of plain values')
  t.deepEqual(mixed, [true, 1])
  so.close(x)
  t.is(x.length, 0, 'a closed logical vector is empty')
  t.throws(() => x.get(0), { code: 'ERR_OUT_OF_RANGE' })
})

test.serial('unshare gives a boolean array; JSON gives the handle', (t) => {
  const x = so.share([true, null, false])
  const plain = so.unshare(x)
  t.deepEqual(plain, [true, null, false])
  t.true(Array.isArray(plain))
  t.deepEqual(JSON.parse(JSON.stringify({ x })), { x: { $sharedobject: so.handleOf(x) } })
  t.deepEqual(so.revive(JSON.parse(JSON.stringify({ x }))).x.toArray(), [true, null, false])
  so.close(x)
})
