import test from 'ava'
import so from '@sharedobject/core'
import { sharedChild } from './helpers.mjs'

// One child for the whole file, started before the first test and ended after the last.
const child = sharedChild(test)

test.serial('shared mode: a child’s writes are seen by the parent at once, and the parent’s by the child', async (t) => {
  const x = so.alloc('int32', 4)
  await child.run((so, h) => {
    const v = so.open(h)
    globalThis.kept.push(v)
    v[1] = 123
    Atomics.store(v, 2, 456)
  }, so.handleOf(x))
  t.deepEqual(Array.from(x), [0, 123, 456, 0])
  x[3] = 789
  t.is(await child.run(() => globalThis.kept.pop()[3]), 789)
  so.close(x)
})

test.serial('copy-on-write chosen by the sharer: a child’s writes stay in the child', async (t) => {
  const x = so.share(Float64Array.from([1, 2, 3]), { copyOnWrite: true })
  t.true(so.properties(x).copyOnWrite)
  const r = await child.run((so, h) => {
    const v = so.open(h)
    v[0] = 100
    const out = { mine: v[0], cow: so.properties(v).copyOnWrite }
    so.close(v)
    return out
  }, so.handleOf(x))
  t.deepEqual(r, { mine: 100, cow: true })
  t.is(x[0], 1, 'the parent does not see the child’s write')
  const again = await child.run((so, h) => {
    const v = so.open(h)
    const first = v[0]
    so.close(v)
    return first
  }, so.handleOf(x))
  t.is(again, 1, 'nor does a later opener')
  so.close(x)
})

test.serial('the sharer’s copy-on-write owner view keeps its own writes too', async (t) => {
  const x = so.share(Float64Array.from([1, 2]), { copyOnWrite: true })
  x[0] = 50
  const seen = await child.run((so, h) => {
    const v = so.open(h)
    const r = v[0]
    so.close(v)
    return r
  }, so.handleOf(x))
  t.is(seen, 1)
  so.close(x)
})

test.serial('open(h, { copyOnWrite }) overrides the sharer’s default in both directions', async (t) => {
  const shared = so.share(Float64Array.from([1]))
  const privately = await child.run((so, h) => {
    const v = so.open(h, { copyOnWrite: true })
    v[0] = -1
    const r = so.properties(v).copyOnWrite
    so.close(v)
    return r
  }, so.handleOf(shared))
  t.true(privately)
  t.is(shared[0], 1)

  const cow = so.share(Float64Array.from([1]), { copyOnWrite: true })
  await child.run((so, h) => {
    const v = so.open(h, { copyOnWrite: false })
    v[0] = 77
    so.close(v)
  }, so.handleOf(cow))
  const fresh = so.open(so.handleOf(cow))
  t.is(fresh[0], 77, 'a shared-mode opener writes into the segment itself')
  so.close(fresh)
  so.close(cow)
  so.close(shared)
})

test.serial('setOptions({ copyOnWrite: true }) makes it the default for new vectors', (t) => {
  const old = so.setOptions({ copyOnWrite: true })
  try {
    const x = so.alloc('uint8', 8)
    t.true(so.properties(x).copyOnWrite)
    so.close(x)
  } finally {
    so.setOptions(old)
  }
  t.false(so.getOptions().copyOnWrite)
})
