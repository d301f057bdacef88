// Dictionary string vectors as R's factors: `codes` (int32, 0-based, -1 for NA) is a view of the
// shared memory itself, `levels` a string vector of the distinct strings; `share(so.factor(codes,
// levels))` makes one from R-style input. Checked across real processes.
import test from 'ava'
import so from '@sharedobject/core'
import { sharedChild } from './helpers.mjs'

const child = sharedChild(test)

test.serial('a dictionary vector’s codes and levels, in this process and in a child', async (t) => {
  const x = so.share(['lo', 'hi', null, 'lo', 'mid'], { dictionary: true })
  t.true(x.codes instanceof Int32Array)
  t.deepEqual(Array.from(x.codes), [0, 1, -1, 0, 2])
  t.is(x.codes.buffer, x.buffer, 'no copy: a view of the vector’s own buffer')
  t.is(x.codes, x.codes, 'the same view every time')
  t.deepEqual(x.levels.toArray(), ['lo', 'hi', 'mid'])
  t.true(x.levels instanceof so.SharedStringVector)
  t.is(x.levels.length, 3)
  t.is(x.levels.indexOf('mid'), 2)
  t.deepEqual(JSON.parse(JSON.stringify({ l: x.levels })), { l: ['lo', 'hi', 'mid'] }, 'levels travel by value')
  const seen = await child.run((so, h) => {
    const v = so.open(h)
    const r = { codes: Array.from(v.codes), levels: v.levels.toArray(), same: v.codes.buffer === v.buffer }
    v.codes[0] = 2 // 'mid', written through the shared codes
    return r
  }, so.handleOf(x))
  t.deepEqual(seen, { codes: [0, 1, -1, 0, 2], levels: ['lo', 'hi', 'mid'], same: true })
  t.is(x.get(0), 'mid', 'the child’s write through codes is seen here')
  t.is(x.codes[0], 2)
  so.close(x)
})

test.serial('a vector without a dictionary has no codes or levels', (t) => {
  const x = so.share(['a', 'b'])
  t.is(x.codes, undefined)
  t.is(x.levels, undefined)
  so.close(x)
})

test.serial('share(so.factor(codes, levels)) from R-style input, read by a child, in a container too', async (t) => {
  const codes = Int32Array.of(1, 0, -1, 1, 2)
  const f = so.share(so.factor(codes, ['a', 'b', 'ünï']))
  t.true(f instanceof so.SharedStringVector)
  t.true(f.dictionary)
  t.true(so.properties(f).dictionary)
  t.deepEqual(f.toArray(), ['b', 'a', null, 'b', 'ünï'])
  t.deepEqual(Array.from(f.codes), [1, 0, -1, 1, 2])
  codes[0] = 0
  t.is(f.get(0), 'b', 'the codes were copied once into shared memory')
  const df = so.share({ grade: so.factor([0, 0, 1], ['x', 'y', 'unused']), n: [1, 2, 3] })
  t.deepEqual(df.grade.levels.toArray(), ['x', 'y', 'unused'], 'levels no element uses are kept, as R keeps them')
  const seen = await child.run((so, h, hf) => {
    const d = so.open(h)
    const g = so.open(hf)
    g.set(1, 'ünï')
    return { grade: d.grade.toArray(), levels: d.grade.levels.toArray(), codes: Array.from(d.grade.codes), n: Array.from(d.n) }
  }, so.handleOf(df), so.handleOf(f))
  t.deepEqual(seen, { grade: ['x', 'x', 'y'], levels: ['x', 'y', 'unused'], codes: [0, 0, 1], n: [1, 2, 3] })
  t.is(f.get(1), 'ünï')
  t.is(f.codes[1], 2)
  so.close(f)
  so.close(df)
})

test.serial('a round trip: a vector’s own codes and levels make the same factor', (t) => {
  const x = so.share(['p', 'q', null, 'q'], { dictionary: true })
  const y = so.share(so.factor(x.codes, x.levels.toArray()))
  t.deepEqual(y.toArray(), x.toArray())
  t.not(y.buffer, x.buffer)
  so.close(x)
  so.close(y)
})

test.serial('bad factor input is a coded error', (t) => {
  t.throws(() => so.factor(Int32Array.of(0, 2), ['a', 'b']), { code: 'ERR_OUT_OF_RANGE', instanceOf: RangeError })
  t.throws(() => so.factor(Int32Array.of(-2), ['a']), { code: 'ERR_OUT_OF_RANGE' })
  t.throws(() => so.factor([0.5], ['a']), { code: 'ERR_OUT_OF_RANGE' })
  t.throws(() => so.factor([0], ['a', 'a']), { code: 'ERR_INVALID_ARG_VALUE' })
  t.throws(() => so.factor([0], ['a', 1]), { code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => so.factor(null, ['a']), { code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => so.factor([0], 'a'), { code: 'ERR_INVALID_ARG_TYPE' })
})

test.serial('a closed dictionary vector’s levels throw ERR_SHM_CLOSED', (t) => {
  const x = so.share(['a', 'b', 'a'], { dictionary: true })
  so.close(x)
  t.throws(() => x.levels, { code: 'ERR_SHM_CLOSED' })
})

test.serial('codes travel by JSON as a part of the segment, like any view the package makes', async (t) => {
  const x = so.share(['a', 'b', 'a'], { dictionary: true })
  const l = so.share([true, null])
  const seen = await child.run((so, json) => {
    const { codes, logical } = so.revive(JSON.parse(json))
    codes[2] = 1
    return { codes: Array.from(codes), logical: Array.from(logical) }
  }, JSON.stringify({ codes: x.codes, logical: l.codes }))
  t.deepEqual(seen, { codes: [0, 1, 1], logical: [1, -1] })
  t.is(x.get(2), 'b', 'the child wrote through the codes it revived')
  so.close(x)
  so.close(l)
})
