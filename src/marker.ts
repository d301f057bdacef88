/**
 * How a shared view travels through a `serialization: 'advanced'` channel once `install()` is
 * in force: Node's child-process serializer has already committed to writing an
 * ArrayBufferView when the package sees the vector, so the handle goes as a small DataView of
 * a fixed prefix and the handle's ASCII; `revive` (and `reviver`) turn it back into the vector.
 */
const PREFIX = '\u0000sharedobject:handle\u0000'

/** The DataView that carries `handle` through an advanced channel. */
export function markerOf(handle: string): DataView {
  const bytes = Buffer.from(PREFIX + handle, 'latin1')
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

/** The handle a marker carries, or undefined for any other value. */
export function markerHandle(value: unknown): string | undefined {
  if (!(value instanceof DataView) || value.byteLength <= PREFIX.length || value.byteLength > PREFIX.length + 200) return undefined
  const text = Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('latin1')
  return text.startsWith(PREFIX) ? text.slice(PREFIX.length) : undefined
}
