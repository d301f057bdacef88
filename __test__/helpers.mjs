// Shared test helpers: real child processes driven over IPC.
import { fork, execFile, execFileSync } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import fs from 'node:fs'
import { createRequire } from 'node:module'

export const fixture = (name) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url))
export const run = promisify(execFile)

/**
 * Forks a child that runs functions sent to it: `await child.run((so, a) => ..., a)`. The
 * function's source is sent, so it must not close over anything but its arguments; it may
 * stash values in `globalThis.kept` to keep them alive.
 */
export async function spawnChild() {
  const proc = fork(fixture('child.mjs'), [], { serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const [first] = await once(proc, 'message')
  if (!first.ready) throw new Error('child did not start')
  let next = 0
  const pending = new Map()
  proc.on('message', (m) => {
    const p = pending.get(m.id)
    if (!p) return
    pending.delete(m.id)
    if (m.ok) p.resolve(m.value)
    else p.reject(Object.assign(new Error(m.error.message), m.error))
  })
  const exited = once(proc, 'exit')
  return {
    pid: proc.pid,
    run(fn, ...args) {
      const id = next++
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject })
        proc.send({ id, fn: fn.toString(), args })
      })
    },
    async kill(signal = 'SIGKILL') {
      proc.kill(signal)
      return exited
    },
    async exit() {
      proc.disconnect()
      return exited
    },
  }
}

/** One child for a whole test file: started before its first test, ended after its last. */
export function sharedChild(test) {
  let child
  test.before(async () => {
    child = await spawnChild()
  })
  test.after.always(async () => {
    await child?.exit()
  })
  return { run: (fn, ...args) => child.run(fn, ...args) }
}

/** Whether /dev/shm holds a segment with this id (Linux). */
export const onDisk = (id) => fs.existsSync(`/dev/shm/sobj.${id}`)

export const isLinux = process.platform === 'linux'
/**
 * POSIX segments have names that outlive mappings and that `free` removes; Windows mappings end
 * with their last view and have no name to remove. Tests of name removal run where names exist.
 */
export const isPosix = process.platform !== 'win32'

/** Another local user, made if this is root and it does not exist; undefined otherwise. */
function otherUser() {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return undefined
  const name = 'sobjtest'
  const find = () => fs.readFileSync('/etc/passwd', 'utf8').split('\n').map((l) => l.split(':')).find((f) => f[0] === name)
  let row = find()
  if (!row) {
    try {
      execFileSync('useradd', ['-M', '-s', '/usr/sbin/nologin', name], { stdio: 'ignore' })
    } catch {
      return undefined
    }
    row = find()
  }
  return row && { name, uid: Number(row[2]), gid: Number(row[3]) }
}

const binding = createRequire(import.meta.url)('../dist/binding.js')

/** What this platform can do; tests of platform behaviour are gated here and nowhere else. */
export const can = {
  /**
   * Views are SharedArrayBuffers (Node-API's node_api_create_external_sharedarraybuffer): posted
   * to a worker they are shared, and Atomics.wait works on them. Elsewhere external ArrayBuffers.
   */
  sharedBuffers: binding.sharedBuffers(),
  /** Linux /proc and /dev/shm: memfd segments, named files, owners judged by start time. */
  procfs: process.platform === 'linux' && fs.existsSync('/proc/self/fd'),
  otherUser: otherUser(),
  /** Root on Linux: `unshare --pid` makes another pid namespace. */
  pidNamespaces: process.platform === 'linux' && process.getuid?.() === 0,
}
