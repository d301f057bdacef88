/**
 * `serialization: 'advanced'` (child_process and cluster IPC) copies every TypedArray it sends:
 * a shared vector would reach the receiver as a private copy, and its writes would be lost.
 * Node serialises each ArrayBufferView of such a message through
 * `v8.DefaultSerializer.prototype._writeHostObject` (its ChildProcessSerializer calls it), so a
 * shared vector is refused there, with a coded error that says what to send instead.
 * `v8.serialize()` asks for bytes and still gets them. Worker threads' `postMessage` does not go
 * through this serializer: there a SharedArrayBuffer-backed vector is shared, and an
 * ArrayBuffer-backed one (older Node) is copied without a word (see the README).
 */
import v8 from 'node:v8'

import { codes, coded } from './errors'
import { isKind } from './kinds'
import { metaOf } from './views'

type HostWriter = (this: v8.Serializer, view: object) => void
const proto = v8.DefaultSerializer.prototype as unknown as { _writeHostObject: HostWriter }
const original = proto._writeHostObject

function writeHostObject(this: v8.Serializer, view: object): void {
  if (this.constructor.name === 'ChildProcessSerializer') {
    const meta = metaOf(view)
    if (meta && !meta.closed && isKind(meta.kind)) {
      throw coded(
        codes.WOULD_COPY,
        `send: serialization 'advanced' would copy this shared ${meta.kind} vector (${meta.byteLength} bytes) into the message, and the receiver ` +
          'would get a private copy whose writes nobody sees. Send it over the default JSON channel ({ x } arrives as {"$sharedobject": handle}; ' +
          'revive() opens it), or send handleOf(x) and open() it there; to send a copy on purpose, send unshare(x)',
        TypeError,
      )
    }
  }
  return original.call(this, view)
}

if (typeof original === 'function') proto._writeHostObject = writeHostObject
