// JSON.stringify of a plain (not shared) 10^6-element Float64Array: without the package, with
// the package imported, and after so.install() (which puts a toJSON on %TypedArray%.prototype,
// as importing the package once did). Each case runs in a fresh process. Prints medians of 7.
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
for (const [name, setup] of cases) {
  const ms = execFileSync(process.execPath, ['-e', body(setup)], { cwd: root, encoding: 'utf8' }).trim()
  console.log(`${name.padEnd(22)} ${ms} ms  (Node ${process.version})`)
}
