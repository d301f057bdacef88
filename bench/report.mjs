// Figures in a form a machine can track: each bench script prints its figures for people and
// also hands each one to `record`. When `npm run bench -- --json=FILE` runs the scripts, it
// names a file in SOBJ_BENCH_JSON and every record is appended there as one line of JSON,
// tagged with the script and the Node version that measured it; otherwise `record` does nothing.
import fs from 'node:fs'
import path from 'node:path'

const file = process.env.SOBJ_BENCH_JSON
const script = path.basename(process.argv[1] ?? '', '.mjs')

/**
 * One figure: what was measured (`figure`), its `value` in `unit`, and where it has them, the
 * reference it is judged against (`reference`, same unit), their `ratio` and the `target`.
 */
export function record(figure) {
  if (!file) return
  fs.appendFileSync(file, `${JSON.stringify({ script, node: process.version, ...figure })}\n`)
}
