/**
 * The user's value over a mapping, by kind: the one place that turns a buffer of any kind into
 * the value the verbs hand out.
 */
import { CTORS, type NumericKind, type SharedVector } from './kinds'
import { SharedLogicalVector, SharedStringVector, layoutFromAux } from './vectors'
import { withJSON, type Meta } from './views'
import { tableOf } from './arrow'

/** The user's value over a mapping: a TypedArray, a logical or a string vector. */
export function vectorOf(meta: Meta): SharedVector {
  if (meta.kind === 'arrow') return tableOf(meta) as unknown as SharedVector
  // The raw codes of logical and dictionary vectors are views the package makes too: they travel.
  if (meta.kind === 'logical') return new SharedLogicalVector(withJSON(new Int8Array(meta.buffer, 0, meta.length)), meta)
  if (meta.kind === 'string') {
    const v = new SharedStringVector(meta.buffer, meta.length, layoutFromAux(meta.aux), meta)
    if (v.codes) withJSON(v.codes)
    return v
  }
  const Ctor = CTORS[meta.kind as NumericKind]
  return withJSON(new Ctor(meta.buffer as ArrayBuffer, 0, meta.length))
}
