// The test command: Rust tests, then the JavaScript specs, then a check that /dev/shm holds
// exactly what it held before. Ends with one summary line.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const shm = () => (fs.existsSync('/dev/shm') ? fs.readdirSync('/dev/shm').sort() : [])
const before = shm()

function step(cmd, args, parse) {
  const r = spawnSync(cmd, args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  process.stdout.write(r.stdout)
  process.stderr.write(r.stderr)
  const counts = parse(`${r.stdout}\n${r.stderr}`)
  return { ok: r.status === 0, ...counts }
}

const count = (text, re) => [...text.matchAll(re)].reduce((n, m) => n + Number(m[1]), 0)
const cargo = step('cargo', ['test', '--workspace', '--release'], (out) => ({
  passed: count(out, /test result: \w+\. (\d+) passed/g),
  failed: count(out, /test result: \w+\. \d+ passed; (\d+) failed/g),
}))
const ava = step(path.join(root, 'node_modules', '.bin', 'ava'), [], (out) => ({
  passed: count(out, /^\s*(\d+) tests? passed/gm),
  failed: count(out, /^\s*(\d+) tests? failed/gm) + count(out, /^\s*(\d+) (?:uncaught exceptions?|unhandled rejections?|tests? remained pending)/gm),
}))

const after = shm()
const added = after.filter((n) => !before.includes(n))
const removed = before.filter((n) => !after.includes(n))
const shmOk = added.length === 0 && removed.length === 0
if (!shmOk) console.error(`/dev/shm changed during the tests: added ${JSON.stringify(added)}, removed ${JSON.stringify(removed)}`)
else console.log('/dev/shm is as the tests found it')

const passed = cargo.passed + ava.passed
const failed = cargo.failed + ava.failed + (cargo.ok ? 0 : cargo.failed ? 0 : 1) + (ava.ok ? 0 : ava.failed ? 0 : 1) + (shmOk ? 0 : 1)
console.log(`tests: ${passed} passed, ${failed} failed`)
process.exitCode = failed === 0 && cargo.ok && ava.ok && shmOk ? 0 : 1
