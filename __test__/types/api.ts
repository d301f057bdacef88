// Type tests: compiled with `tsc --noEmit --strict` by types.test.mjs, never run. Each line says
// what TypeScript must infer for a call of the public API.
import { expectTypeOf } from 'expect-type'

import * as so from '../../index'
import type { Properties, SharedLogicalVector, SharedStringVector } from '../../index'

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
expectTypeOf(so.open(h)).toEqualTypeOf<so.SharedVector | object>()
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

// revive() and open() options; handles.
expectTypeOf(so.revive<{ x: Float64Array }>({})).toEqualTypeOf<{ x: Float64Array }>()
expectTypeOf(so.handleOf).returns.toEqualTypeOf<string>()
expectTypeOf(so.codes.WRONG_KIND).toEqualTypeOf<'ERR_SHM_WRONG_KIND'>()
expectTypeOf(so.codes.WOULD_COPY).toEqualTypeOf<'ERR_SHM_WOULD_COPY'>()

// A shared vector's buffer may be a SharedArrayBuffer: its type says so.
expectTypeOf(so.alloc('float64', 1).buffer).toEqualTypeOf<ArrayBufferLike>()
expectTypeOf(so.share(['a']).buffer).toEqualTypeOf<ArrayBufferLike>()

// Hand-overs: opens on share, alloc and handleOf; open/revive with free; stats by state.
expectTypeOf(so.share(new Float64Array(1), { opens: 1 })).toEqualTypeOf<Float64Array<ArrayBufferLike>>()
expectTypeOf(so.alloc('int32', 1, { opens: 2 })).toEqualTypeOf<Int32Array>()
expectTypeOf(so.handleOf(so.alloc('int32', 1), { opens: 1 })).toEqualTypeOf<string>()
expectTypeOf(so.open(h, { kind: 'float64', free: true })).toEqualTypeOf<Float64Array<ArrayBufferLike>>()
expectTypeOf(so.revive<{ x: Float64Array }>({}, { free: true })).toEqualTypeOf<{ x: Float64Array }>()
expectTypeOf(so.stats().descriptors).toEqualTypeOf<number>()
expectTypeOf(so.stats().byState.waitingForOpens).toEqualTypeOf<so.StateStats>()
expectTypeOf(so.stats()).toEqualTypeOf<so.Stats>()
