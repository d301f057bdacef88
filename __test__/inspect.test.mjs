// util.inspect (and console.log) show string and logical vectors as Node shows a TypedArray:
// their class, length and elements, NA bare; containers of them print with each leaf so.
import test from 'ava'
import { inspect } from 'node:util'
import so from '@sharedobject/core'

test('string and logical vectors print like a TypedArray, NA bare', (t) => {
  const s = so.share(['a', 'b', null])
  const l = so.share([true, false, null])
  t.is(inspect(s), "SharedStringVector(3) [ 'a', 'b', NA ]")
  t.is(inspect(l), 'SharedLogicalVector(3) [ true, false, NA ]')
  t.is(inspect(so.share(['x', null, 'x'], { dictionary: true })), "SharedStringVector(3) [ 'x', NA, 'x' ]")
  t.is(inspect(so.share(['é', ''], { dictionary: true }).levels), "SharedStringVector(2) [ 'é', '' ]")
  t.is(inspect(so.alloc('logical', 0)), 'SharedLogicalVector(0) []')
  for (const v of [s, l]) so.close(v)
})

test('long vectors stop at maxArrayLength, as Node’s own arrays do', (t) => {
  const s = so.share(['a', 'b', 'c'])
  t.is(inspect(s, { maxArrayLength: 1 }), "SharedStringVector(3) [ 'a', ... 2 more items ]")
  t.is(inspect(s, { maxArrayLength: 2 }), "SharedStringVector(3) [ 'a', 'b', ... 1 more item ]")
  const long = so.share(Array.from({ length: 150 }, () => true))
  t.regex(inspect(long), /^SharedLogicalVector\(150\) \[\n[\s\S]*\n {2}\.\.\. 50 more items\n\]$/)
  t.is(inspect(long).match(/true/g).length, 100)
  so.close(s)
  so.close(long)
})

test('containers print each shared leaf so, and depth is honoured', (t) => {
  const df = so.share({ name: ['a', null], sold: [true, null], price: Float64Array.of(1.5, 2) })
  t.is(inspect(df), "{\n  name: SharedStringVector(2) [ 'a', NA ],\n  sold: SharedLogicalVector(2) [ true, NA ],\n  price: Float64Array(2) [ 1.5, 2 ]\n}")
  t.is(inspect({ a: { df } }, { depth: 1 }), '{ a: { df: [Object] } }')
  t.is(inspect({ a: df.name }, { depth: -1 }), '[Object]')
  t.is(inspect([[df.name]], { depth: 0 }), '[ [Array] ]')
  t.is(inspect({ v: df.name }, { depth: 0 }), '{ v: [SharedStringVector] }', 'as Node shows { v: [Float64Array] }')
  t.is(inspect({ v: df.price }, { depth: 0 }), '{ v: [Float64Array] }')
  so.close(df)
})

test('a closed vector prints as empty', (t) => {
  const s = so.share(['a'])
  so.close(s)
  t.is(inspect(s), 'SharedStringVector(0) []')
})
