/**
 * The types of what travels and what opens: `open(h)` without a kind, a received message, and
 * what `revive` makes of it. Types only; no code.
 */
import type { ArrowTableLike, Kept, SharedVector } from './kinds'
import type { SharedBarrier, SharedMutex } from './sync'

/**
 * An apache-arrow `Table` (or `RecordBatch`) over shared memory, known by its shape so that the
 * package's types never require apache-arrow. `instanceof Table` narrows it to the real class.
 */
export type ArrowTable = ArrowTableLike

/** A value in a container that is not shared: containers keep these as they are. */
export type Plain = string | number | boolean | bigint | null | undefined

/**
 * What `open(h)` gives when no `kind` is passed: a vector of any kind, a view over part of one
 * (`DataView` included), an Arrow table, a mutex or barrier, or a container of them. Narrow it
 * with `instanceof` (`Float64Array`, `SharedStringVector`, `SharedMutex`, apache-arrow's
 * `Table`), `ArrayBuffer.isView` or `Array.isArray`; or pass `{ kind }` to `open` and get that
 * kind's class directly.
 */
export type Opened = SharedVector | DataView | ArrowTable | SharedMutex | SharedBarrier | OpenedContainer

/** A container (a plain object or array) as `open` gives it: shared leaves and plain values. */
export type OpenedContainer = OpenedObject | OpenedArray

/** An object container as `open` gives it. */
export interface OpenedObject {
  [key: string]: Opened | Plain
}

/** An array container as `open` gives it. */
export type OpenedArray = (Opened | Plain)[]

/** A handle in its JSON form: how every shared value crosses a JSON channel. */
export interface HandleObject {
  $sharedobject: string
}

/**
 * A message carrying a `T` as it arrives from another process: every shared value in it is its
 * `{"$sharedobject": handle}` (or, where it crossed no process boundary, still the value
 * itself); containers keep their shape. `revive` turns a `Message<T>` back into a `T`.
 */
export type Message<T> = T extends SharedVector | DataView | ArrowTable | SharedMutex | SharedBarrier
  ? T | HandleObject
  : T extends Kept
    ? T
    : T extends readonly unknown[]
      ? { [K in keyof T]: Message<T[K]> }
      : T extends object
        ? { [K in keyof T]: Message<T[K]> }
        : T
