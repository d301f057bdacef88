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

/** Runs a step, echoing its output, and gives back its exit status and its whole output. */
function step(cmd, args) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d) => {
      out += d
      process.stdout.write(d)
    })
    child.stderr.on('data', (d) => {
      out += d
      process.stderr.write(d)
    })
    child.on('error', (e) => {
      out += `\n${e.message}\n`
      console.error(`${cmd}: ${e.message}`)
    })
    child.on('close', (status) => resolve({ ok: status === 0, out }))
  })
}

// --no-fail-fast: every test binary runs, so the counts are complete when one fails.
const cargoRun = await step('cargo', ['test', '--workspace', '--release', '--no-fail-fast'])
const cargo = cargoCounts(cargoRun.out)
// ava's own entry point with this Node (no shell shim: the same on Windows); TAP, because its
// summary counts passed, skipped and failed tests however the run went.
// `--smaller`: for a platform where the same code paths already ran in full (another Node of
// the same buffers), every spec but the long loops, fuzzing, packing, the examples and the
// documentation's blocks, which test nothing there that the full run did not. The hand-overs
// (10,000 per-request rounds) stay: how fast the engine gives buffers back is the Node version's.
// `--arch`: for another CPU under emulation, where the JavaScript and the platform calls are
// the x64 run's and only what the CPU does can differ: the layouts of every kind of value in
// memory, atomics and waits between processes and threads, and crashes mid-operation.
const LONG = new Set(['fuzz', 'stress', 'segments', 'examples', 'package', 'docs'])
const ARCH = new Set(['numeric', 'logical', 'strings', 'factors', 'arrow', 'containers', 'sync', 'coordination', 'threads', 'crash', 'lifecycle', 'errors'])
const specs = fs
  .readdirSync(path.join(root, '__test__'))
  .filter((f) => f.endsWith('.test.mjs'))
  .map((f) => f.replace(/\.test\.mjs$/, ''))
  .sort()
const files = process.argv.includes('--arch')
  ? specs.filter((f) => ARCH.has(f)).map((f) => `__test__/${f}.test.mjs`)
  : process.argv.includes('--smaller')
    ? specs.filter((f) => !LONG.has(f)).map((f) => `__test__/${f}.test.mjs`)
    : []
if (process.argv.includes('--arch')) console.log(`the CPU's suite: ${files.length} spec files (${[...ARCH].join(', ')})`)
else if (files.length > 0) console.log(`the smaller suite: ${files.length} spec files (not ${[...LONG].join(', ')})`)
const avaRun = await step(process.execPath, [path.join(root, 'node_modules', 'ava', 'entrypoints', 'cli.mjs'), '--tap', ...files])
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
console.log(`rust: ${line(cargo)}; ava: ${line(ava)}`)
console.log(`tests: ${line(total)}`)
process.exitCode = total.failed === 0 ? 0 : 1
