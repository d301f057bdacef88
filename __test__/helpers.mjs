// Shared test helpers: real child processes driven over IPC.
import { fork, execFile, execFileSync, spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import fs from 'node:fs'
import os from 'node:os'
import { createRequire } from 'node:module'

const packageRoot = fileURLToPath(new URL('..', import.meta.url))
export const fixture = (name) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url))
const execFileAsync = promisify(execFile)

/**
 * `execFile` as a promise. Under Wine, starting a process fails now and then while the machine
 * is loaded ("spawn UNKNOWN", before the child ran at all): such a start is tried again, at most
 * twice. Any other failure, and any failure of a child that ran, is the caller's.
 */
export async function run(file, args, options) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await execFileAsync(file, args, options)
    } catch (e) {
      if (process.platform !== 'win32' || e.syscall !== 'spawn' || e.code !== 'UNKNOWN' || attempt === 2) throw e
      await new Promise((resolve) => setTimeout(resolve, 250))
    }
  }
}

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

/** Whether /dev/shm holds a segment with this id (where `can.shmFiles`). */
export const onDisk = (id) => fs.existsSync(`/dev/shm/sobj.${id}`)

const windows = process.platform === 'win32'
const linux = process.platform === 'linux'
const works = (cmd, args) => spawnSync(cmd, args, { stdio: 'ignore' }).status === 0
const readOr = (file, otherwise) => {
  try {
    return fs.readFileSync(file, 'utf8')
  } catch {
    return otherwise
  }
}

export const isPosix = process.platform !== 'win32'
export const isLinux = linux

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
  if (!row) return undefined
  const user = { name, uid: Number(row[2]), gid: Number(row[3]) }
  // In a user namespace (qemu's runs) root is mapped but other uids are not: check it can be one.
  const ok = spawnSync('setpriv', [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', 'true'], { stdio: 'ignore' }).status === 0
  return ok ? user : undefined
}

/** The native addon itself, for tests that call it as no public function would. */
export const binding = createRequire(import.meta.url)('../dist/binding.js')

/**
 * What this platform lets the tests see. A test of behaviour some platform does not have is
 * declared with `when(can.x, test)`, so it shows as skipped there, never as passed; this is the
 * one place that knows which platform has what.
 */
export const can = {
  /**
   * `free`, and an owner's last release or exit, remove a segment's name while other processes
   * still map it (POSIX `shm_unlink`). Windows keeps a name while any process holds the mapping.
   */
  removeNames: !windows,
  /**
   * Segments outlive every process that holds them: persistent and developer segments stay after
   * their creator exits, a killed owner's stay until swept. On Windows a segment ends with the
   * last process that holds it.
   */
  outliveProcesses: !windows,
  /**
   * A copy-on-write mapping copies a page when it is first written, and shows others' writes to
   * pages it has not written. macOS copies the whole vector when it is opened.
   */
  copyPageByPage: process.platform !== 'darwin',
  /** Segments are files in /dev/shm that tests can read, forge and corrupt (Linux). */
  shmFiles: linux && fs.existsSync('/dev/shm'),
  /** `/proc/self/fd` lists this process's descriptors (Linux). */
  procfs: linux && fs.existsSync('/proc/self/fd'),
  /**
   * A private, small /dev/shm in a mount namespace: Linux, as root with the right to make one
   * (not in an unprivileged container), or with password-less sudo.
   */
  smallShm: linux && (process.getuid?.() === 0 ? works('unshare', ['-m', 'true']) : works('sudo', ['-n', 'unshare', '-m', 'true'])),
  /** A C compiler and `shm_open`, for the C reader of the package's header. */
  cReader: linux && fs.existsSync('/dev/shm') && works('gcc', ['--version']),
  /**
   * Views are SharedArrayBuffers (Node-API's node_api_create_external_sharedarraybuffer): posted
   * to a worker they are shared, and Atomics.wait works on them. Elsewhere external ArrayBuffers.
   */
  sharedBuffers: binding.sharedBuffers(),
  /** Another local user to test permissions with (Linux, as root). */
  otherUser: otherUser(),
  /**
   * A process can `exec` another program under its pid (`process.execve`, Node 22.15+ and 23.11+
   * on POSIX), and a mutex sees that its holder did: Linux with address-space randomisation,
   * where exec moves the stack that `/proc/<pid>/stat` shows to the process's user.
   */
  execHolder: linux && typeof process.execve === 'function' && Number(readOr('/proc/sys/kernel/randomize_va_space', '0')) > 0,
  /** Root on Linux: `unshare --pid` makes another pid namespace. */
  pidNamespaces: linux && process.getuid?.() === 0,
  /**
   * `close()` replaces a view's pages in place and keeps its address range, so a late writer (a
   * thread-pool job, a transferred buffer) writes into nothing. Windows cannot replace a view:
   * its pages go when the engine releases the buffer.
   */
  closeKeepsRange: !windows,
  /**
   * 256 GiB of closed ranges are held before the engine is made to collect: 64-bit Linux with
   * 2^47 bytes of address space or more (its stack at 2^46 or above: x86-64, most arm64), no
   * RLIMIT_AS and no strict overcommit (each would lower the bound).
   */
  roomyAddressSpace:
    linux &&
    Number.parseInt(/^([0-9a-f]+)-.*\[stack\]$/m.exec(readOr('/proc/self/maps', ''))?.[1] ?? '0', 16) >= 2 ** 46 &&
    /^Max address space\s+unlimited/m.test(readOr('/proc/self/limits', '')) &&
    readOr('/proc/sys/vm/overcommit_memory', '0').trim() !== '2',
  /**
   * `close` ends this process's waits on a segment at once with ERR_SHM_CLOSED (kernel waits:
   * futex, os_sync). Windows waits by polling, and there a close does not yet end them: a known
   * gap, left open in the coordination work.
   */
  closeEndsWaits: !windows,
  /**
   * Ten thousand segments at once. Windows commits each in the pagefile (64 KiB at least), and
   * Wine's commit limit refuses that many.
   */
  manySegments: !windows,
  /** npm runs here, so packed tarballs can be installed (not under Wine, which has no npm). */
  npmPack: spawnSync('npm', ['--version'], { stdio: 'ignore', shell: windows }).status === 0,
  /**
   * A memory cgroup the tests can make and put a child in (Linux as root: cgroup v1's memory
   * hierarchy, or v2 with the memory controller): see `memoryCgroup`.
   */
  memoryCgroup: memoryCgroupRoot() !== undefined,
  /**
   * `open(h, { populate: 'background' })` populates on a thread of the package: Linux 5.14 and
   * later (MADV_POPULATE_READ). Elsewhere pages are mapped at first touch and no thread starts.
   */
  populateRead: linux && kernelAtLeast(5, 14),
  /** `prlimit` sets a child's limits (util-linux). */
  prlimit: linux && works('prlimit', ['--as=unlimited', 'true']),
  /**
   * Pending async waits share a bounded set of watcher threads (`futex_waitv`, Linux 5.16 and
   * later), and `/proc/self/status` counts this process's threads. Elsewhere each holds a thread.
   */
  sharedWaiters: linux && fs.existsSync('/proc/self/status') && kernelAtLeast(5, 16),
  /**
   * A Python with pyarrow, duckdb and polars (scripts/python-env.mjs makes it from PyPI the first
   * time) to read shared tables by their path, which only Linux has. Asked when first read, as
   * making it may install; where it cannot be had, the reason is printed once.
   */
  get python() {
    return pythonCapability()
  },
}

let pythonState
function pythonCapability() {
  if (pythonState === undefined) {
    if (!linux) pythonState = { ok: false, why: 'segments have paths only on Linux' }
    else {
      try {
        execFileSync(process.execPath, [fileURLToPath(new URL('../scripts/python-env.mjs', import.meta.url))], { stdio: ['ignore', 'ignore', 'pipe'] })
        pythonState = { ok: true }
      } catch (e) {
        pythonState = { ok: false, why: String(e.stderr || e.message).trim() }
      }
    }
    if (!pythonState.ok) console.log(`Python readers skipped: ${pythonState.why}`)
  }
  return pythonState.ok
}

/** Whether this Linux kernel is at least `major.minor`. */
function kernelAtLeast(major, minor) {
  const [a, b] = os.release().split('.').map((x) => parseInt(x, 10))
  return a > major || (a === major && b >= minor)
}

/** Where a test may make a memory cgroup, and which files limit it; undefined where it cannot. */
function memoryCgroupRoot() {
  if (!linux || process.getuid?.() !== 0) return undefined
  const places = [
    { root: '/sys/fs/cgroup/memory', max: 'memory.limit_in_bytes' },
    { root: '/sys/fs/cgroup', max: 'memory.max' },
  ]
  for (const p of places) {
    if (!fs.existsSync(`${p.root}/${p.max}`) && !fs.existsSync(`${p.root}/cgroup.controllers`)) continue
    if (p.max === 'memory.max' && !fs.readFileSync(`${p.root}/cgroup.subtree_control`, 'utf8').includes('memory')) continue
    const probe = `${p.root}/sobj-probe-${process.pid}`
    try {
      fs.mkdirSync(probe)
      const ok = fs.existsSync(`${probe}/${p.max}`)
      fs.rmdirSync(probe)
      if (ok) return p
    } catch {
      // Not allowed here (no root in this hierarchy, or a read-only mount): try the next place.
      try {
        fs.rmdirSync(probe)
      } catch {
        // The probe was never made.
      }
    }
  }
  return undefined
}

/**
 * Makes a memory cgroup limited to `bytes`; `command(inner)` wraps a shell command so that it
 * runs inside it, and `remove()` deletes it once its processes have exited.
 */
export function memoryCgroup(bytes) {
  const place = memoryCgroupRoot()
  const dir = `${place.root}/sobj-test-${process.pid}-${Math.random().toString(36).slice(2, 8)}`
  fs.mkdirSync(dir)
  fs.writeFileSync(`${dir}/${place.max}`, String(bytes))
  return {
    dir,
    command: (inner) => `echo $$ > ${dir}/cgroup.procs && ${inner}`,
    remove: () => fs.rmdirSync(dir),
  }
}

/**
 * A copy of the built package (package.json, dist/ and its runtime dependencies) in a fresh
 * directory every user can read, for a child that runs as `can.otherUser`: the repository
 * itself may sit in a directory only its owner can enter (a `mktemp -d` clone is 0700).
 * Returns the directory and a Node binary that user can run; the caller removes the directory.
 */
export function readablePackage() {
  const root = fileURLToPath(new URL('..', import.meta.url))
  const dir = fs.mkdtempSync('/tmp/sharedobject-pkg-')
  const pkg = JSON.parse(fs.readFileSync(`${root}/package.json`, 'utf8'))
  fs.copyFileSync(`${root}/package.json`, `${dir}/package.json`)
  fs.cpSync(`${root}/dist`, `${dir}/dist`, { recursive: true })
  for (const dep of Object.keys(pkg.dependencies ?? {})) {
    fs.cpSync(`${root}/node_modules/${dep}`, `${dir}/node_modules/${dep}`, { recursive: true, dereference: true })
  }
  // The Node binary too, where it sits inside such a directory (.ci's unpacked Node builds).
  let node = process.execPath
  const user = can.otherUser
  if (user && spawnSync('setpriv', [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', node, '--version'], { stdio: 'ignore' }).status !== 0) {
    node = `${dir}/node`
    fs.copyFileSync(process.execPath, node)
  }
  execFileSync('chmod', ['-R', 'a+rX', dir])
  return { dir, node }
}

/**
 * Runs `code` in a fresh Node with the package as `so`, in the package's folder (so a worker's
 * code loads it as `require(process.cwd())`: a Windows path would not survive a nested template);
 * resolves with its exit and output.
 */
export async function child(code, { env = {}, timeout = 90000, wrap = [] } = {}) {
  // `wrap`: a command that runs this Node, e.g. ['prlimit', '--as=...'].
  const argv = [...wrap, process.execPath, '--expose-gc', '-e', `const so = require(${JSON.stringify(packageRoot)});\n${code}`]
  const proc = spawn(argv[0], argv.slice(1), {
    cwd: packageRoot,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  proc.stdout.on('data', (d) => (stdout += d))
  proc.stderr.on('data', (d) => (stderr += d))
  const timer = setTimeout(() => proc.kill('SIGKILL'), timeout)
  const [code_, signal] = await once(proc, 'exit')
  clearTimeout(timer)
  return { code: code_, signal, stdout, stderr, json: () => JSON.parse(stdout.trim().split('\n').pop()) }
}

/** Asserts that a `child` exited by itself, with status 0 (its stderr says why if not). */
export const exitedCleanly = (t, r) => {
  t.is(r.signal, null, `no signal: ${r.stderr}`)
  t.is(r.code, 0, r.stderr)
}

/**
 * Polls `ok()` (which may return a promise) every `every` ms until it holds or `ms` have passed,
 * and gives back its last answer. Every wait for another process or thread goes through it, so a
 * condition that never comes fails its test instead of hanging the run.
 */
export async function until(ok, ms = 10_000, every = 5) {
  const end = Date.now() + ms
  for (;;) {
    const answer = await ok()
    if (answer || Date.now() >= end) return answer
    await new Promise((r) => setTimeout(r, every))
  }
}

/** `t` (test, test.serial, ...) when `capability` holds, its `.skip` otherwise. */
export const when = (capability, t) => (capability ? t : t.skip)
