// Counts passed, failed and skipped tests in the output of `cargo test` and of ava's TAP
// reporter, whether or not something failed. Used by scripts/test.mjs, and by the CI scripts on
// logs of runs made elsewhere (under Wine):
//   node scripts/counts.mjs cargo=<log> tap=<log> ...   prints the total, "N passed, N failed, N skipped"
import fs from 'node:fs'
import { fileURLToPath } from 'node:url'

const count = (text, re) => [...text.matchAll(re)].length

/**
 * `test result: ok. 9 passed; 0 failed; 2 ignored; ...` lines, one per test binary. A run that
 * stopped before reporting any (a build error, a crashed test binary) counts as one failure.
 */
export function cargoCounts(text) {
  const results = [...text.matchAll(/^test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored/gm)]
  const counts = { passed: 0, failed: 0, skipped: 0 }
  for (const [, p, f, i] of results) {
    counts.passed += Number(p)
    counts.failed += Number(f)
    counts.skipped += Number(i)
  }
  // Cargo reports every failed test binary; one that crashed (a signal, an abort) printed no
  // result line of its own, so it is a failure the lines above do not count.
  const failedBinaries = count(text, /^error: test failed, to rerun pass /gm)
  const failedResults = count(text, /^test result: FAILED\./gm)
  counts.failed += Math.max(0, failedBinaries - failedResults)
  if (results.length === 0) counts.failed += 1
  return counts
}

/**
 * The summary ava's TAP reporter ends with: `# pass N`, `# skip N`, `# fail N` (failures,
 * crashes, timeouts and tests left pending). No summary means ava itself failed: one failure.
 */
export function tapCounts(text) {
  const last = (re) => {
    const all = [...text.matchAll(re)]
    return all.length ? Number(all.at(-1)[1]) : undefined
  }
  const passed = last(/^# pass (\d+)$/gm)
  if (passed === undefined) return { passed: 0, failed: 1, skipped: 0 }
  return { passed, failed: last(/^# fail (\d+)$/gm) ?? 0, skipped: last(/^# skip (\d+)$/gm) ?? 0 }
}

export const add = (...cs) => cs.reduce((a, c) => ({ passed: a.passed + c.passed, failed: a.failed + c.failed, skipped: a.skipped + c.skipped }))

export const line = (c) => `${c.passed} passed, ${c.failed} failed, ${c.skipped} skipped`

if (process.argv[1] && fs.realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const parsers = { cargo: cargoCounts, tap: tapCounts }
  const args = process.argv.slice(2).map((a) => a.match(/^(cargo|tap)=(.+)$/))
  if (args.length === 0 || args.some((m) => !m)) {
    console.error('usage: node scripts/counts.mjs cargo=<log> | tap=<log> ...')
    process.exit(2)
  }
  const read = (f) => (fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : '')
  console.log(line(add(...args.map(([, kind, file]) => parsers[kind](read(file))))))
}
