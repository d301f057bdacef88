/**
 * What the package must know of the runtime it runs on, for messages between processes: Deno's
 * `child.send` and `process.send` write every ArrayBufferView as its bytes (in JSON mode a plain
 * array of numbers) before looking at any `toJSON`, so a shared vector arrives as a private copy
 * whose writes nobody sees. `install()` (in `./advanced`) makes them travel as handles there;
 * until it is called, the first vector this process maps says so once, with a coded warning.
 */
import { codes } from './errors'

const versions = process.versions as NodeJS.ProcessVersions & { deno?: string; bun?: string }
/** Deno, whose IPC serialises ArrayBufferViews in native code, past every hook of the package. */
export const isDeno = versions.deno !== undefined
/** Bun, whose advanced IPC channel (not its JSON one) copies ArrayBufferViews in native code. */
export const isBun = versions.bun !== undefined

let sendsHandles = false
let warned = false

/** `install()` made `send` carry shared views as handles on this runtime: no warning is needed. */
export function sendingHandles(on: boolean): void {
  sendsHandles = on
}

/**
 * Called for every buffer this process maps: on Deno, while `install()` has not been called, warns
 * once with code `ERR_SHM_WOULD_COPY` that `send` would copy the vector.
 */
export function mapped(): void {
  if (!isDeno || sendsHandles || warned) return
  warned = true
  process.emitWarning(
    "on Deno, child.send() and process.send() copy a shared vector's bytes (Deno's IPC does not call toJSON): the receiver gets a private copy " +
      'whose writes nobody sees. Call so.install() before forking to send shared vectors as their handles, or send handleOf(x) and open() it',
    { type: 'SharedObjectWarning', code: codes.WOULD_COPY },
  )
}
