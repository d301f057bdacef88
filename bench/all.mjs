// `npm run bench`: every benchmark, on every Node version users run, in one run. Each script
// prints its own figures beside their references (measured in the same script run); at the end
// comes one summary table per Node version, and with --json=FILE every figure as JSON, for
// tracking runs over time.
//
//   node bench/all.mjs [--quick] [--node=26,24,22] [--only=run,strings,arrow,sync,node-versions] [--json=FILE]
//
// Node versions other than this one are official binaries from the npm registry (see
// nodes.mjs); a version that cannot be had is reported and skipped. Nothing here asserts a time.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

import { MAJORS, nodeOf, thisMajor } from './nodes.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const SCRIPTS = {
  run: { flags: ['--expose-gc'], what: 'float64 vectors: share, alloc, hand-over to 4 processes, first read, memory' },
  strings: { flags: [], what: 'string vectors: share, hand-over, reading every string' },
  arrow: { flags: ['--expose-gc'], what: 'Arrow tables to 4 processes' },
  sync: { flags: [], what: 'round trips, mutexes and channels' },
  // Runs once, under this Node: it starts each version itself, to put them side by side.
  'node-versions': { flags: [], what: 'the versions side by side: hand-over, fresh open, worker threads, first read', once: true },
}

const { values: opts } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    node: { type: 'string', default: [...new Set([...MAJORS, thisMajor()])].join(',') },
    only: { type: 'string', default: Object.keys(SCRIPTS).join(',') },
    json: { type: 'string' },
  },
})
const majors = opts.node.split(',').map(Number)
const only = opts.only.split(',')
for (const m of majors) if (!Number.isInteger(m) || m < 18) throw new Error(`--node: not a Node major version: ${m}`)
for (const s of only) if (!(s in SCRIPTS)) throw new Error(`--only: no bench named ${s} (${Object.keys(SCRIPTS).join(', ')})`)

const records = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sobj-bench-')), 'figures.jsonl')
fs.writeFileSync(records, '')

/** Runs one script under one Node binary, its output streamed; resolves to its exit status. */
function runScript(bin, name) {
  const args = [...SCRIPTS[name].flags, path.join(here, `${name}.mjs`), ...(opts.quick ? ['--quick'] : [])]
  return new Promise((resolve) => {
    const child = spawn(bin, args, { cwd: path.dirname(here), stdio: 'inherit', env: { ...process.env, SOBJ_BENCH_JSON: records } })
    child.on('error', (e) => {
      console.log(`  ${name}: could not start: ${e.message}`)
      resolve(1)
    })
    child.on('close', (code, signal) => resolve(signal ? 128 : (code ?? 1)))
  })
}

const started = new Date()
const runs = []
let failed = 0
for (const major of majors) {
  const node = nodeOf(major)
  if (!node.bin) {
    console.log(`\n==== Node ${major}: skipped: ${node.why}`)
    runs.push({ major, skipped: node.why })
    continue
  }
  for (const name of only.filter((s) => !SCRIPTS[s].once)) {
    console.log(`\n==== Node ${major}: ${name}.mjs (${SCRIPTS[name].what})\n`)
    const status = await runScript(node.bin, name)
    if (status !== 0) {
      failed++
      console.log(`\n  ${name}.mjs exited with status ${status} on Node ${major}`)
    }
    runs.push({ major, script: name, status })
  }
}

for (const name of only.filter((s) => SCRIPTS[s].once)) {
  console.log(`\n==== ${name}.mjs (${SCRIPTS[name].what})\n`)
  const status = await runScript(process.execPath, name)
  if (status !== 0) failed++
  runs.push({ major: thisMajor(), script: name, status })
}

// One summary table per Node version, from the figures the scripts recorded.
const figures = fs
  .readFileSync(records, 'utf8')
  .split('\n')
  .filter(Boolean)
  .map((l) => JSON.parse(l))
const fmt = (v, unit) => (v === undefined ? '' : `${Number(v.toPrecision(3))} ${unit}`.trim())
for (const node of [...new Set(figures.map((f) => f.node))]) {
  const rows = [['figure', 'measured', 'reference', 'ratio', 'target']]
  for (const f of figures.filter((x) => x.node === node)) {
    rows.push([`${f.script}: ${f.figure}`, fmt(f.value, f.unit), f.reference === undefined ? '' : `${fmt(f.reference, f.unit)}${f.referenceName ? ` (${f.referenceName})` : ''}`, f.ratio === undefined ? '' : `${f.ratio.toFixed(2)}×`, f.target ?? ''])
  }
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)))
  console.log(`\nSummary, Node ${node}`)
  for (const [i, r] of rows.entries()) {
    console.log(r.map((c, j) => (j === 0 ? c.padEnd(w[j]) : c.padStart(w[j]))).join('  '))
    if (i === 0) console.log(w.map((x) => '-'.repeat(x)).join('  '))
  }
}
if (opts.json) {
  const doc = { started: started.toISOString(), quick: opts.quick, machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, memory: os.totalmem(), os: `${os.type()} ${os.release()}` }, runs, figures }
  fs.writeFileSync(opts.json, `${JSON.stringify(doc, null, 2)}\n`)
  console.log(`\nfigures written to ${opts.json}`)
}
fs.rmSync(path.dirname(records), { recursive: true, force: true })
if (failed) console.log(`\n${failed} bench script run(s) failed`)
process.exitCode = failed ? 1 : 0
