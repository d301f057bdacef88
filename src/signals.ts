/**
 * Removing named segments when the process is ended by SIGINT, SIGTERM or SIGHUP (Ctrl-C,
 * `docker stop`, `systemctl stop`): `signal-exit` runs our handler and then lets the process die
 * of the signal, unless other listeners keep it alive, exactly as it would without us. Unnamed
 * Linux segments need nothing: the kernel frees them with their last holder.
 */
import { isMainThread } from 'node:worker_threads'

import { onExit } from 'signal-exit'

import { native } from './native'
import { getOptions } from './options'

let remove: (() => void) | undefined

/**
 * Installs the handler, once, when this process first owns a named segment. With
 * `setOptions({ signals: false })` it removes nothing.
 */
export function watchSignals(): void {
  // Only the main thread: a worker thread's exit must not remove the names of the process's
  // segments (the native side removes them when the process itself exits).
  if (remove || !isMainThread || !getOptions().signals) return
  remove = onExit(() => {
    if (getOptions().signals) native.releaseOwned()
  })
}
