/**
 * Making a segment: the options the native side takes, and the record of what this thread
 * created. The layer under every kind of value; it knows no kind of value itself.
 */
import { type CreateOptions, type ViewInfo } from './native'
import { codes, coded } from './errors'
import type { Kind } from './kinds'
import type { Resolved } from './options'
import { remember, type Meta } from './views'
import { watchSignals } from './signals'

/** The native side's options for a new segment of `kind`, from a call's resolved options. */
export function createOptions(kind: Kind | 'list' | 'arrow', length: number, o: Resolved, extra: Partial<CreateOptions> = {}): CreateOptions {
  let attributes: string | undefined
  if (o.attributes !== undefined) {
    try {
      attributes = JSON.stringify(o.attributes)
    } catch (e) {
      throw coded(codes.INVALID_ARG_VALUE, `attributes must be JSON-serialisable: ${(e as Error).message}`, TypeError)
    }
  }
  if (o.name !== undefined || o.named || process.platform !== 'linux') watchSignals()
  return { kind, length, id: o.name, attributes, copyOnWrite: o.copyOnWrite, persist: o.persist, named: o.named, reserve: o.reserve, ...extra }
}

/** Records a segment this thread just created: its view is also what this thread gets when it opens the handle. */
export function created(info: ViewInfo): Meta {
  return remember(info)
}
