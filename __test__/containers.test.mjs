import test from 'ava'
import so from '@sharedobject/core'
import { sharedChild, run, fixture, can } from './helpers.mjs'

// One child for the whole file, started before the first test and ended after the last.
const child = sharedChild(test)

const frame = () => ({
  x: Float64Array.from([1.5, 2.5, 3.5]),
  n: Int32Array.from([1, 2, 3]),
  flag: [true, null, false],
  tag: ['a', null, 'ç'],
  meta: { rows: 3, source: 'test', nested: [Uint8Array.from([7, 8])] },
})

// What a child sees of a received data frame, as plain values.
const describe = (so, df) => ({
  x: Array.from(df.x),
  n: Array.from(df.n),
  flag: df.flag.toArray(),
  tag: df.tag.toArray(),
  meta: { rows: df.meta.rows, source: df.meta.source, nested: Array.from(df.meta.nested[0]) },
  shared: [so.isShared(df.x), so.isShared(df.flag), so.isShared(df.tag), so.isShared(df.meta.nested[0]), so.isShared(df.meta.rows)],
})

const plainFrame = { x: [1.5, 2.5, 3.5], n: [1, 2, 3], flag: [true, null, false], tag: ['a', null, 'ç'], meta: { rows: 3, source: 'test', nested: [7, 8] } }

test.serial('a data-frame-like object is shared column by column and revived in a child', async (t) => {
  const df = so.share(frame())
  t.true(df.x instanceof Float64Array && so.isShared(df.x))
  t.true(df.flag instanceof so.SharedLogicalVector)
  t.true(df.tag instanceof so.SharedStringVector)
  t.true(so.isShared(df.meta.nested[0]))
  t.is(df.meta.rows, 3)
  t.true(so.isShared(df), 'a container is shared when any element is')
  // Functions travel as source: the child rebuilds `describe` from its text.
  const seen = await child.run(
    (so, msg, describeSource) => new Function(`return ${describeSource}`)()(so, so.revive(JSON.parse(msg))),
    JSON.stringify(df),
    describe.toString(),
  )
  t.deepEqual(seen, { ...plainFrame, shared: [true, true, true, true, false] })
  t.deepEqual(describe(so, df), seen)
  so.close(df)
  t.false(so.isShared(df))
})

test.serial('handleOf(container) is one short handle; open() gives the whole container back', async (t) => {
  const df = so.share(frame())
  const h = so.handleOf(df)
  t.true(h.length < 100)
  t.is(so.handleOf(df), h, 'the same handle each time')
  const seen = await child.run((so, h) => {
    const df = so.open(h)
    const r = { x: Array.from(df.x), tag: df.tag.toArray(), rows: df.meta.rows, nested: Array.from(df.meta.nested[0]) }
    so.close(df)
    return r
  }, h)
  t.deepEqual(seen, { x: [1.5, 2.5, 3.5], tag: ['a', null, 'ç'], rows: 3, nested: [7, 8] })
  const id = h.split(':')[1]
  const listed = () => so.list().some((s) => s.id === id && s.kind === 'list')
  t.true(listed())
  so.free(df)
  // Where a name lasts while any process holds the segment (Windows), the child's hold keeps it.
  if (can.removeNames) {
    t.false(listed(), 'freeing the container frees its manifest too')
    t.throws(() => so.open(h), { code: 'ERR_SHM_NOT_FOUND' })
  }
  so.close(df)
})

test.serial('R’s data.frame scenario: ten numeric columns and a character column, mustWork', async (t) => {
  const df = {}
  for (let c = 0; c < 10; c++) df[`c${c}`] = Array.from({ length: 100 }, (_, i) => i * c + 0.5)
  df.label = Array.from({ length: 100 }, (_, i) => `row${i}`)
  const shared = so.share(df, { mustWork: true })
  t.deepEqual(Object.keys(shared), Object.keys(df))
  for (let c = 0; c < 10; c++) t.true(shared[`c${c}`] instanceof Float64Array && so.isShared(shared[`c${c}`]))
  t.true(so.isShared(shared.label))
  t.deepEqual(so.unshare(shared), { ...Object.fromEntries(Object.entries(df).map(([k, v]) => [k, k === 'label' ? v : Float64Array.from(v)])) })
  const sums = await child.run((so, h) => {
    const d = so.open(h)
    return Object.keys(d).filter((k) => k !== 'label').map((k) => d[k].reduce((a, b) => a + b, 0)).concat([d.label.get(99)])
  }, so.handleOf(shared))
  t.deepEqual(sums, [...Array.from({ length: 10 }, (_, c) => df[`c${c}`].reduce((a, b) => a + b, 0)), 'row99'])
  so.close(shared)
})

test.serial('mustWork: an unsharable element throws and leaves nothing shared behind; without it, it stays', (t) => {
  const mine = () => so.list().filter((s) => s.ownerPid === process.pid).length
  const before = mine()
  const fn = () => 1
  const err = t.throws(() => so.share({ a: Int32Array.from([1, 2, 3]), b: fn }, { mustWork: true }), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
  t.regex(err.message, /value\.b/)
  t.is(mine(), before, 'the shared element a was released')
  const loose = so.share({ a: Int32Array.from([1, 2, 3]), b: fn, d: new Date(0) })
  t.true(so.isShared(loose.a))
  t.is(loose.b, fn)
  t.deepEqual(loose.d, new Date(0))
  const old = so.setOptions({ mustWork: true })
  try {
    t.throws(() => so.share({ s: Symbol('x') }), { code: 'ERR_INVALID_ARG_TYPE' })
    t.notThrows(() => so.close(so.share({ s: Symbol('x') }, { mustWork: false })))
  } finally {
    so.setOptions(old)
  }
  so.close(loose)
})

test.serial('minLength leaves short leaves unshared; properties and unshare keep the shape', (t) => {
  const c = so.share({ long: Float64Array.from([1, 2, 3, 4]), short: Float64Array.from([1]), list: [[true, false, true], ['s']] }, { minLength: 2 })
  t.true(so.isShared(c.long))
  t.false(so.isShared(c.short))
  t.true(c.list[0] instanceof so.SharedLogicalVector)
  t.deepEqual(c.list[1], ['s'])
  const p = so.properties(c)
  t.is(p.long.kind, 'float64')
  t.is(p.short, null)
  t.is(p.list[0].kind, 'logical')
  t.deepEqual(p.list[1], [null], 'an unshared array is a container of plain values')
  const u = so.unshare(c)
  t.false(so.isShared(u))
  t.deepEqual(u, { long: Float64Array.from([1, 2, 3, 4]), short: Float64Array.from([1]), list: [[true, false, true], ['s']] })
  t.true(so.free(c))
  t.false(so.free(c), 'nothing left to free')
  so.close(c)
})

test.serial('name, attributes and kind belong to one vector, not a container', (t) => {
  for (const opt of [{ name: 'x' }, { attributes: {} }, { kind: 'float64' }]) {
    t.throws(() => so.share({ a: [1, 2] }, opt), { instanceOf: TypeError })
  }
  t.throws(() => so.handleOf({ a: 1 }), { code: 'ERR_SHM_NOT_SHARED' })
})

test.serial('the README’s data frame reaches cluster workers over the JSON channel', async (t) => {
  const { stdout } = await run(process.execPath, [fixture('cluster-frame.cjs')])
  t.deepEqual(JSON.parse(stdout), [
    ['fig', 29, 1, 'EUR'],
    ['fig', 29, 1, 'EUR'],
  ])
})

test.serial('open(h, { copy: true }) reads a private copy without mapping: the fallback for runtimes without external buffers', async (t) => {
  const df = so.share({ x: Float64Array.from([1, 2]), b: [true, null], s: ['p', null, 'ü'], n: 5 })
  const [h, hx] = [so.handleOf(df), so.handleOf(df.x)]
  const before = so.stats()
  const got = await child.run((so, h, hx) => {
    const base = so.stats().mappings
    const all = so.open(h, { copy: true })
    const x = so.open(hx, { copy: true })
    x[0] = 99
    return { x: Array.from(all.x), b: all.b, s: all.s, n: all.n, shared: so.isShared(all) || so.isShared(x), type: Object.prototype.toString.call(x), mapped: so.stats().mappings - base }
  }, h, hx)
  t.deepEqual(got, { x: [1, 2], b: [true, null], s: ['p', null, 'ü'], n: 5, shared: false, type: '[object Float64Array]', mapped: 0 })
  t.is(df.x[0], 1, 'writes to the copy stay in the copy')
  t.deepEqual(so.stats().mappings, before.mappings)
  t.deepEqual(so.revive({ v: { $sharedobject: so.handleOf(df.s) } }, { copy: true }), { v: ['p', null, 'ü'] })
  so.close(df)
})
