// Type tests: compiled with `tsc --noEmit --strict` by types.test.mjs, never run. Each line says
// what TypeScript must infer for a call of the public API.
import { expectTypeOf } from 'expect-type'

import * as so from '../../index'
import type { Properties, SharedLogicalVector, SharedStringVector } from '../../index'
import { Table } from 'apache-arrow'

declare const h: string

// open(h, { kind }) gives that kind's class; without kind, any vector or a container.
expectTypeOf(so.open(h, { kind: 'float64' })).toEqualTypeOf<Float64Array<ArrayBufferLike>>()
expectTypeOf(so.open(h, { kind: 'int32', populate: true })).toEqualTypeOf<Int32Array<ArrayBufferLike>>()
expectTypeOf(so.open(h, { kind: 'uint64' })).toEqualTypeOf<BigUint64Array<ArrayBufferLike>>()
expectTypeOf(so.open(h, { kind: 'logical' })).toEqualTypeOf<SharedLogicalVector>()
expectTypeOf(so.open({ $sharedobject: h }, { kind: 'string' })).toEqualTypeOf<SharedStringVector>()
expectTypeOf(so.open(h, { kind: 'float32', copy: true })).toEqualTypeOf<Float32Array<ArrayBuffer>>()
expectTypeOf(so.open(h, { kind: 'logical', copy: true })).toEqualTypeOf<(boolean | null)[]>()
expectTypeOf(so.open(h, { kind: 'string', copy: true })).toEqualTypeOf<(string | null)[]>()
expectTypeOf(so.open(h)).toEqualTypeOf<so.Opened>()
// @ts-expect-error: not a kind
so.open(h, { kind: 'complex' })

// share(x, { kind }) is typed by the kind.
expectTypeOf(so.share([1, 2], { kind: 'int32' })).toEqualTypeOf<Int32Array<ArrayBufferLike>>()
expectTypeOf(so.share([true, null], { kind: 'logical' })).toEqualTypeOf<SharedLogicalVector>()
expectTypeOf(so.share([], { kind: 'string' })).toEqualTypeOf<SharedStringVector>()
expectTypeOf(so.share(new Float64Array(2), { kind: 'float32' })).toEqualTypeOf<Float32Array<ArrayBufferLike>>()

// share(x) without kind: vectors, arrays, containers, and what stays as it is.
expectTypeOf(so.share(new Float64Array(2))).toEqualTypeOf<Float64Array<ArrayBufferLike>>()
expectTypeOf(so.share(new Uint8Array(2))).toEqualTypeOf<Uint8Array<ArrayBufferLike>>()
expectTypeOf(so.share(new BigInt64Array(2))).toEqualTypeOf<BigInt64Array<ArrayBufferLike>>()
expectTypeOf(so.share([1, 2, 3])).toEqualTypeOf<Float64Array<ArrayBufferLike>>()
expectTypeOf(so.share([true, false, null])).toEqualTypeOf<SharedLogicalVector>()
expectTypeOf(so.share(['a', null])).toEqualTypeOf<SharedStringVector>()
expectTypeOf(so.share([])).toEqualTypeOf<never[]>()
const fn = (a: number): number => a
expectTypeOf(so.share(fn)).toEqualTypeOf<(a: number) => number>()
expectTypeOf(so.share(new Date())).toEqualTypeOf<Date>()
expectTypeOf(so.share(new Map<string, number>())).toEqualTypeOf<Map<string, number>>()
expectTypeOf(so.share(42)).toEqualTypeOf<number>()
expectTypeOf(so.share('text')).toEqualTypeOf<string>()
const df = so.share({ price: new Float64Array(3), qty: new Int32Array(3), sold: [true, null], name: ['a'], when: new Date(), meta: { rows: 3 } })
expectTypeOf(df).toEqualTypeOf<{
  price: Float64Array<ArrayBufferLike>
  qty: Int32Array<ArrayBufferLike>
  sold: SharedLogicalVector
  name: SharedStringVector
  when: Date
  meta: { rows: number }
}>()

// alloc(kind, n) gives that kind's class.
expectTypeOf(so.alloc('float64', 3)).toEqualTypeOf<Float64Array<ArrayBufferLike>>()
expectTypeOf(so.alloc('logical', 3)).toEqualTypeOf<SharedLogicalVector>()

// properties(): Properties for a vector; the container's shape for a container.
expectTypeOf(so.properties(so.alloc('int8', 1))).toEqualTypeOf<Properties>()
expectTypeOf(so.properties(df).price).toEqualTypeOf<Properties | null>()
expectTypeOf(so.properties(df).meta.rows).toEqualTypeOf<null>()

// unshare() gives an ordinary value of the same shape.
expectTypeOf(so.unshare(so.alloc('float64', 3))).toEqualTypeOf<Float64Array<ArrayBufferLike>>()

// open(h) without kind narrows with no cast: instanceof, ArrayBuffer.isView, Array.isArray, and
// what is left is a container whose fields can be read.
export function narrow(handle: string): number | string | null | undefined {
  const v = so.open(handle)
  if (v instanceof Float64Array) return v[0]
  if (v instanceof so.SharedStringVector) return v.get(0)
  if (v instanceof so.SharedLogicalVector) return v.countTrue()
  if (v instanceof so.SharedMutex || v instanceof so.SharedBarrier) return undefined
  if (ArrayBuffer.isView(v)) return v.byteLength
  if (Array.isArray(v)) return v.length
  if (v instanceof Table) return v.numRows
  // A table is the one object in the union with a numRows of its own.
  if ('numRows' in v) return null
  const price = v.price
  expectTypeOf(price).toEqualTypeOf<so.Opened | so.Plain>()
  return price instanceof Float64Array ? price[0] : null
}

// properties() is overloaded by argument: its kind is fixed where the type fixes it.
declare const table: Table
expectTypeOf(so.properties(table).kind).toEqualTypeOf<'arrow'>()
expectTypeOf(so.properties(so.share(['a'])).kind).toEqualTypeOf<'string'>()
expectTypeOf(so.properties(so.alloc('logical', 1)).kind).toEqualTypeOf<'logical'>()
expectTypeOf(so.properties(so.mutex()).kind).toEqualTypeOf<'mutex'>()
expectTypeOf(so.properties(so.barrier(2)).kind).toEqualTypeOf<'barrier'>()
expectTypeOf(so.properties(new DataView(new ArrayBuffer(1)))).toEqualTypeOf<Properties>()
// @ts-expect-error: a table is never a string vector
expectTypeOf(so.properties(table).kind).toEqualTypeOf<'string'>()

// revive() is generic over the shape: it checks a typed message and returns that shape.
expectTypeOf(so.revive<{ x: Float64Array }>({ x: { $sharedobject: h } })).toEqualTypeOf<{ x: Float64Array }>()
expectTypeOf(so.revive<{ df: { a: SharedStringVector; n: number } }>({ df: { a: { $sharedobject: h }, n: 1 } })).toEqualTypeOf<{ df: { a: SharedStringVector; n: number } }>()
declare const received: any // eslint-disable-line @typescript-eslint/no-explicit-any
expectTypeOf(so.revive<{ x: Float64Array }>(received)).toEqualTypeOf<{ x: Float64Array }>()
declare const typed: so.Message<{ x: Int32Array; tag: string }>
expectTypeOf(so.revive<{ x: Int32Array; tag: string }>(typed).x).toEqualTypeOf<Int32Array>()
expectTypeOf(so.revive({ n: 1 })).not.toBeAny()
// @ts-expect-error: the message does not have the shape asked for
so.revive<{ x: Float64Array }>({ y: { $sharedobject: h } })
// @ts-expect-error: a number is not a handle
so.revive<{ x: Float64Array }>({ x: 1 })
expectTypeOf(so.handleOf).returns.toEqualTypeOf<string>()
expectTypeOf(so.codes.WRONG_KIND).toEqualTypeOf<'ERR_SHM_WRONG_KIND'>()
expectTypeOf(so.codes.WOULD_COPY).toEqualTypeOf<'ERR_SHM_WOULD_COPY'>()

// A shared vector's buffer may be a SharedArrayBuffer: its type says so.
expectTypeOf(so.alloc('float64', 1).buffer).toEqualTypeOf<ArrayBufferLike>()
expectTypeOf(so.share(['a']).buffer).toEqualTypeOf<ArrayBufferLike>()

// Factors: R-style input shares as a string vector; a dictionary vector's codes and levels.
expectTypeOf(so.share(so.factor(Int32Array.of(0, -1), ['a']))).toEqualTypeOf<SharedStringVector>()
expectTypeOf(so.share({ g: so.factor([0], ['a']) })).toEqualTypeOf<{ g: SharedStringVector }>()
expectTypeOf(so.share(['a']).codes).toEqualTypeOf<Int32Array | undefined>()
expectTypeOf(so.share(['a']).levels).toEqualTypeOf<SharedStringVector | undefined>()

// JSON travel: the replacer and reviver fit JSON.stringify and JSON.parse; install() gives its undo.
expectTypeOf(JSON.stringify({ x: so.alloc('float64', 1).subarray(0) }, so.replacer)).toEqualTypeOf<string>()
expectTypeOf(JSON.parse('{}', so.reviver)).toBeAny()
expectTypeOf(so.install).returns.toEqualTypeOf<() => void>()

// Hand-overs: opens on share, alloc and handleOf; open/revive with free; stats by state.
expectTypeOf(so.share(new Float64Array(1), { opens: 1 })).toEqualTypeOf<Float64Array<ArrayBufferLike>>()
expectTypeOf(so.alloc('int32', 1, { opens: 2 })).toEqualTypeOf<Int32Array>()
expectTypeOf(so.handleOf(so.alloc('int32', 1), { opens: 1 })).toEqualTypeOf<string>()
expectTypeOf(so.open(h, { kind: 'float64', free: true })).toEqualTypeOf<Float64Array<ArrayBufferLike>>()
expectTypeOf(so.revive<{ x: Float64Array }>({ x: { $sharedobject: h } }, { free: true })).toEqualTypeOf<{ x: Float64Array }>()
expectTypeOf(so.stats().descriptors).toEqualTypeOf<number>()
expectTypeOf(so.stats().byState.waitingForOpens).toEqualTypeOf<so.StateStats>()
expectTypeOf(so.stats()).toEqualTypeOf<so.Stats>()
