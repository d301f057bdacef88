// JSON.stringify of a plain (not shared) 10^6-element Float64Array: without the package, with
// the package imported, and after so.install() (which puts a toJSON on %TypedArray%.prototype,
// as importing the package once did). Each case runs in a fresh process, five times, the cases
// taking turns so that other load on the machine falls on all of them alike. Prints medians.
// Run: node bench/json-stringify.mjs
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const body = (setup) => `
${setup}
const a = Float64Array.from({ length: 1e6 }, (_, i) => i / 7)
const times = []
for (let r = 0; r < 9; r++) {
  const t = performance.now()
  JSON.stringify(a)
  times.push(performance.now() - t)
}
times.sort((x, y) => x - y)
console.log(times[4].toFixed(1))`

const cases = [
  ['without the package', ''],
  ['package imported', "require('@sharedobject/core')"],
  ['after so.install()', "require('@sharedobject/core').install()"],
]
const runs = cases.map(() => [])
for (let round = 0; round < 5; round++) {
  cases.forEach(([, setup], k) => {
    const out = execFileSync(process.execPath, ['-e', body(setup)], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
    runs[k].push(Number(out.trim()))
  })
}
cases.forEach(([name], k) => {
  const sorted = runs[k].sort((a, b) => a - b)
  console.log(`${name.padEnd(22)} ${sorted[2].toFixed(0)} ms (${sorted[0].toFixed(0)}–${sorted[4].toFixed(0)})  Node ${process.version}`)
})
