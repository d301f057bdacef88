/**
 * Travel that needs more than a view's own `toJSON`: the `reviver` for `JSON.parse`, and
 * `install()`, the one opt-in that changes built-ins.
 *
 * Importing the package changes no built-in: the views it makes carry their own `toJSON`, and
 * `replacer` covers views it did not make. `serialization: 'advanced'` (child_process and
 * cluster IPC) copies every ArrayBufferView it sends, and Node gives a package no way to see a
 * message on that channel short of replacing `v8.DefaultSerializer.prototype._writeHostObject`,
 * a private method of Node's. `install()` does that, on request: a shared view in such a message
 * then travels as its handle (see `./marker`), and `revive` on the other side opens it. On Deno
 * and Bun, whose IPC is native, `install()` wraps `send` instead (see `installSendHandles`).
 * Where neither reaches the channel, `install()` says so once with a coded warning; nothing here
 * ever throws from inside a sending library.
 */
import { ChildProcess } from 'node:child_process'
import v8 from 'node:v8'

import { codes } from './errors'
import { isKind } from './kinds'
import { markerOf } from './marker'
import { open } from './open'
import { isBun, isDeno, sendingHandles } from './runtime'
import { MAX_DEPTH, isPlainObject, metaOf, viewHandle, viewToJSON } from './views'

type HostWriter = (this: v8.Serializer, view: object) => void
const serializerProto = v8.DefaultSerializer.prototype as unknown as { _writeHostObject: HostWriter }
const TypedArrayPrototype = Object.getPrototypeOf(Int8Array.prototype) as object

/**
 * A `JSON.parse` reviver: every `{"$sharedobject": handle}` in the text becomes the vector (or
 * container, table, mutex, barrier) it names, mapped in this process. The same as `revive`
 * after `JSON.parse`, in one pass.
 *
 * @example
 * const message = JSON.parse(text, so.reviver)
 */
export function reviver(this: unknown, _key: string, value: unknown): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value
  const keys = Object.keys(value)
  const handle = (value as { $sharedobject?: unknown }).$sharedobject
  return keys.length === 1 && keys[0] === '$sharedobject' && typeof handle === 'string' ? open(handle) : value
}

let warned = false

/** Says once per process, with code `ERR_SHM_WOULD_COPY`, that advanced messages copy shared vectors here. */
function warnCopies(why: string): void {
  if (warned) return
  warned = true
  process.emitWarning(
    `serialization 'advanced' copies shared vectors on this runtime (${why}): the receiver gets a private copy whose writes nobody sees. ` +
      'Send handleOf(x) (or { $sharedobject: handleOf(x) }) and open() it there, or use the default JSON channel',
    { type: 'SharedObjectWarning', code: codes.WOULD_COPY },
  )
}

/**
 * Whether this runtime's advanced IPC channel hands ArrayBufferViews to
 * `v8.DefaultSerializer.prototype._writeHostObject`: Node 24 and later serialise IPC messages
 * with a native codec that calls no JavaScript (checked on 24.21), and Bun and Deno have IPC of
 * their own (checked on Bun 1.4.5), so there the hook would never run; earlier Node does, if its
 * V8 serializer calls the method at all.
 */
function serializerCallsHostWriter(): boolean {
  if (isBun || isDeno) return false
  if (Number(process.versions.node.split('.')[0]) >= 24) return false
  let called = false
  class Probe extends v8.DefaultSerializer {
    _writeHostObject(view: NodeJS.TypedArray): void {
      called = true
      ;(serializerProto._writeHostObject as HostWriter).call(this, view)
    }
  }
  try {
    new Probe().writeValue(new Uint8Array(1))
  } catch {
    return false
  }
  return called
}

/**
 * `message` with every shared view in it (in arrays and plain objects, at any depth) replaced by
 * its `{ $sharedobject: handle }`, as `JSON.stringify` gives it on Node; `message` itself where
 * it holds none. A closed vector throws `ERR_SHM_CLOSED`, as its `toJSON` does.
 */
function withHandles(value: unknown, depth = 0, path: object[] = []): unknown {
  if (ArrayBuffer.isView(value)) return metaOf(value) ? viewToJSON.call(value) : value
  if (value === null || typeof value !== 'object' || depth >= MAX_DEPTH || path.includes(value)) return value
  if (!Array.isArray(value) && !isPlainObject(value)) return value
  path.push(value)
  let out: Record<string, unknown> | unknown[] | undefined
  for (const [k, v] of Object.entries(value)) {
    const h = withHandles(v, depth + 1, path)
    if (h !== v) (out ??= Array.isArray(value) ? [...(value as unknown[])] : { ...value })[k as never] = h as never
  }
  path.pop()
  return out ?? value
}

type Send = (this: unknown, message: unknown, ...rest: unknown[]) => boolean

/** `send` that hands its message's shared views over as handles. */
function handing(send: Send): Send {
  return function (this: unknown, message: unknown, ...rest: unknown[]): boolean {
    return send.call(this, withHandles(message), ...rest)
  }
}

/**
 * On Deno and Bun, whose IPC writes ArrayBufferViews in native code (Deno on every channel, as
 * bytes; Bun on the advanced one, as a copy): `process.send` (a forked child's) is wrapped now,
 * and every ChildProcess's `send` when its channel sets it (both assign it to the instance, so
 * the prototype gets a setter that wraps what is assigned). A child forked before `install()`
 * keeps the plain `send`. Returns the undo.
 */
function installSendHandles(): () => void {
  const undo: (() => void)[] = []
  const proc = process as unknown as { send?: Send }
  const original = proc.send
  if (typeof original === 'function') {
    const wrapped = handing(original)
    proc.send = wrapped
    undo.push(() => {
      if (proc.send === wrapped) proc.send = original
    })
  }
  const proto = ChildProcess.prototype as object
  if (!Object.prototype.hasOwnProperty.call(proto, 'send')) {
    Object.defineProperty(proto, 'send', {
      configurable: true,
      get: () => undefined,
      set(this: object, send: unknown) {
        Object.defineProperty(this, 'send', { value: typeof send === 'function' ? handing(send as Send) : send, writable: true, configurable: true, enumerable: true })
      },
    })
    undo.push(() => delete (proto as { send?: unknown }).send)
  }
  sendingHandles(true)
  undo.push(() => sendingHandles(false))
  return () => undo.forEach((f) => f())
}

/** Undoes what `install()` did; undefined while nothing is installed. */
let uninstall: (() => void) | undefined

/**
 * Opt-in: changes two built-ins of this process so that shared views travel as handles where
 * the package cannot reach them otherwise. Nothing calls it for you; importing the package
 * changes no built-in.
 *
 * - `%TypedArray%.prototype.toJSON`: every TypedArray over shared memory (a `subarray`, a
 *   vector posted from another thread) serialises as its handle; any other TypedArray
 *   serialises as it always has. (Without `install`, pass `so.replacer` to `JSON.stringify`.)
 * - `v8.DefaultSerializer.prototype._writeHostObject` (a private method of Node's): a shared
 *   vector inside a message sent with `serialization: 'advanced'` travels as its handle instead
 *   of a copy, and `revive(message)` on the other side opens it. On a runtime whose advanced
 *   channel does not call that method, one warning with code `ERR_SHM_WOULD_COPY` says so.
 * - On Deno and Bun, `process.send` and the `send` of every child forked after the call (JSON
 *   and advanced channels alike): a shared vector in a message travels as its
 *   `{ $sharedobject }`, which `revive` opens, instead of as a copy.
 *
 * Calling it again changes nothing. Returns a function that puts both built-ins back.
 */
export function install(): () => void {
  if (uninstall) return uninstall
  const undo: (() => void)[] = []
  if (!Object.prototype.hasOwnProperty.call(TypedArrayPrototype, 'toJSON')) {
    Object.defineProperty(TypedArrayPrototype, 'toJSON', { value: viewToJSON, configurable: true, writable: true, enumerable: false })
    undo.push(() => {
      if (Object.getOwnPropertyDescriptor(TypedArrayPrototype, 'toJSON')?.value === viewToJSON) delete (TypedArrayPrototype as { toJSON?: unknown }).toJSON
    })
  }
  const original = serializerProto._writeHostObject
  if (isDeno || isBun) {
    undo.push(installSendHandles())
  } else if (typeof original === 'function' && serializerCallsHostWriter()) {
    const hooked: HostWriter = function (this: v8.Serializer, view: object): void {
      // Only IPC messages: `v8.serialize()` asks for bytes and still gets them.
      if (this.constructor.name === 'ChildProcessSerializer' && ArrayBuffer.isView(view)) {
        const meta = metaOf(view)
        if (meta && !meta.closed && isKind(meta.kind)) return original.call(this, markerOf(viewHandle(view, meta)))
      }
      return original.call(this, view)
    }
    serializerProto._writeHostObject = hooked
    undo.push(() => {
      if (serializerProto._writeHostObject === hooked) serializerProto._writeHostObject = original
    })
  } else {
    warnCopies('its serializer writes TypedArrays without calling back into JavaScript')
  }
  uninstall = () => {
    for (const f of undo) f()
    uninstall = undefined
  }
  return uninstall
}
