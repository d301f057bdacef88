// The test command: Rust tests, then the JavaScript specs, then a check that /dev/shm holds
// exactly what it held before. Output streams as it comes; the last line counts every test
// passed, failed and skipped, and the exit code is non-zero if anything failed.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { add, cargoCounts, line, tapCounts } from './counts.mjs'

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const shm = () => (fs.existsSync('/dev/shm') ? fs.readdirSync('/dev/shm').sort() : null)
const before = shm()

/**
 * Runs a step, echoing its output, and gives back its exit status and its whole output. A step
 * never hangs the run: once its process exits, output still coming is awaited a few seconds at
 * most, and anything it left running (children of a test that was cut short still holding the
 * output pipe) is killed with its process group; a step still running after `minutes` is killed
 * and counts as failed.
 */
function step(cmd, args, minutes = 60) {
  return new Promise((resolve) => {
    const group = process.platform !== 'win32'
    const child = spawn(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], detached: group })
    let out = ''
    let open = 2
    let status = null
    let exited = false
    let finished = false
    // Kills the step and whatever it left running: its whole process group.
    const killGroup = () => {
      if (!group) return
      try {
        process.kill(-child.pid, 'SIGKILL')
      } catch {
        // the group is gone already
      }
    }
    const finish = () => {
      if (finished) return
      finished = true
      clearTimeout(limit)
      killGroup()
      process.off('SIGINT', interrupted).off('SIGTERM', interrupted)
      resolve({ ok: status === 0, out })
    }
    // Its own process group does not hear the terminal's Ctrl-C: pass it on.
    const interrupted = (signal) => {
      killGroup()
      process.exit(signal === 'SIGINT' ? 130 : 143)
    }
    process.on('SIGINT', interrupted).on('SIGTERM', interrupted)
    const limit = setTimeout(() => {
      const msg = `\n${cmd} ${args[0] ?? ''}: still running after ${minutes} minutes: stopped\n`
      out += msg
      console.error(msg)
      status = -1
      finish()
    }, minutes * 60_000)
    for (const [stream, sink] of [
      [child.stdout, process.stdout],
      [child.stderr, process.stderr],
    ]) {
      stream.on('data', (d) => {
        out += d
        sink.write(d)
      })
      stream.on('end', () => --open === 0 && exited && finish())
    }
    child.on('error', (e) => {
      out += `\n${e.message}\n`
      console.error(`${cmd}: ${e.message}`)
      status = -1
      finish()
    })
    child.on('exit', (code) => {
      exited = true
      status = code
      if (open === 0) finish()
      else setTimeout(finish, 5000).unref()
    })
  })
}

// `--smaller`: for a Node whose buffers take the code paths a full run took on another (Node
// 22 and 24 take Node 26's): the specs where the engine has a say (buffers and their kinds,
// workers and transfer, serialization, the engine giving buffers back, finalizers, signals,
// module loading of apache-arrow), without what is the core's, the kernel's or the tools' alone
// and ran in full already: the Rust tests, the long loops of bounds, fuzzing, stress, hostile
// headers, coordination between processes, prefaulting, the CLI and C reader, types, packing,
// the examples and the documentation's blocks. The hand-overs (10,000 per-request rounds) stay:
// how fast the engine gives buffers back is the Node version's.
// `--arch`: for another CPU under emulation, where the JavaScript and the platform calls are
// the x64 run's and only what the CPU does can differ: the layouts of every kind of value in
// memory, atomics and waits between processes and threads, and crashes mid-operation.
const smaller = process.argv.includes('--smaller')
const arch = process.argv.includes('--arch')
const RAN_IN_FULL = new Set(['bounds', 'fuzz', 'stress', 'hostile', 'coordination', 'prefault', 'cli', 'pkgconfig', 'types', 'package', 'examples', 'docs'])
const ARCH = new Set(['numeric', 'logical', 'strings', 'factors', 'arrow', 'containers', 'sync', 'coordination', 'threads', 'crash', 'lifecycle', 'errors'])

// --no-fail-fast: every test binary runs, so the counts are complete when one fails.
const cargoRun = smaller ? { ok: true, out: '' } : await step('cargo', ['test', '--workspace', '--release', '--no-fail-fast'])
const cargo = smaller ? { passed: 0, failed: 0, skipped: 0 } : cargoCounts(cargoRun.out)
// ava's own entry point with this Node (no shell shim: the same on Windows); TAP, because its
// summary counts passed, skipped and failed tests however the run went.
const specs = fs
  .readdirSync(path.join(root, '__test__'))
  .filter((f) => f.endsWith('.test.mjs'))
  .map((f) => f.replace(/\.test\.mjs$/, ''))
  .sort()
const files = arch
  ? specs.filter((f) => ARCH.has(f)).map((f) => `__test__/${f}.test.mjs`)
  : smaller
    ? specs.filter((f) => !RAN_IN_FULL.has(f)).map((f) => `__test__/${f}.test.mjs`)
    : []
if (arch) console.log(`the CPU's suite: ${files.length} spec files (${[...ARCH].join(', ')})`)
else if (smaller) console.log(`the smaller suite: ${files.length} spec files (not ${[...RAN_IN_FULL].join(', ')})`)
// Bounded so that a hung spec fails the run instead of stopping CI: the whole suite takes
// about 4 minutes here, and 10 under Wine or an emulated CPU.
const avaRun = await step(process.execPath, [path.join(root, 'node_modules', 'ava', 'entrypoints', 'cli.mjs'), '--tap', ...files], Number(process.env.SOBJ_TEST_MINUTES ?? 45))
const ava = tapCounts(avaRun.out)

// The /dev/shm check is one more test, where there is a /dev/shm.
const after = shm()
const shmCheck = { passed: 0, failed: 0, skipped: 0 }
if (before === null || after === null) {
  shmCheck.skipped = 1
} else {
  const added = after.filter((n) => !before.includes(n))
  const removed = before.filter((n) => !after.includes(n))
  if (added.length === 0 && removed.length === 0) {
    shmCheck.passed = 1
    console.log('/dev/shm is as the tests found it')
  } else {
    shmCheck.failed = 1
    console.error(`/dev/shm changed during the tests: added ${JSON.stringify(added)}, removed ${JSON.stringify(removed)}`)
  }
}

// A step that failed without a failed test to show for it still fails the run.
const unexplained = (run, counts) => (!run.ok && counts.failed === 0 ? { passed: 0, failed: 1, skipped: 0 } : { passed: 0, failed: 0, skipped: 0 })
const total = add(cargo, unexplained(cargoRun, cargo), ava, unexplained(avaRun, ava), shmCheck)
console.log(`rust: ${smaller ? 'not run (the full suite runs them)' : line(cargo)}; ava: ${line(ava)}`)
console.log(`tests: ${line(total)}`)
process.exitCode = total.failed === 0 ? 0 : 1
