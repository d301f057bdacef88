// Every file in examples/ runs to the end by itself (no hang, exit code 0) and prints what it
// promises; the README shows the examples it embeds exactly as they are in the files.
import test from 'ava'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { run } from './helpers.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))
const dir = path.join(root, 'examples')
const lines = (stdout) => stdout.trim().split('\n').sort()

/** What each example prints, line by line in any order (workers answer in any order). */
const expected = {
  'quickstart.cjs': ['the child summed 5000000'],
  'cluster.cjs': [1, 2, 3, 4].map((id) => `worker ${id} summed 45000000`),
  'data-frame.cjs': ['fig: 29 EUR; sold: 1', 'fig: 29 EUR; sold: 1'],
  'advanced-serialization.cjs': ['the child opened 1000000 int32, the first is 7'],
  'worker-threads.cjs': ['elements 0 to 499999 sum to 124999750000', 'elements 500000 to 999999 sum to 374999750000'],
  'developer-api.cjs': ['has it: true', 'has it after free: false', 'size: true'],
  // Throughput goes to stderr; stdout says the answers agree and nothing waits for an open.
  'per-request.cjs': ['both answered every request alike; segments waiting for their open: 0'],
  // Throughputs vary; the two lines that print them, and the check that both queues agree.
  'job-queue.cjs': (out) => {
    const l = out.trim().split('\n')
    return /^channel: 4000 jobs .* jobs\/s$/.test(l[0]) && /^process\.send: 4000 jobs .* jobs\/s$/.test(l[1]) && l[2] === 'both queues computed the same 1000000 outputs'
  },
  // arquero prints a table of the workers' totals, then whether they match the whole table's.
  'arrow-dataframe.mjs': (out) => out.trim().split('\n').at(-1) === 'the workers’ totals match the whole table',
  // Pool recipes: the same sums shared and copied, then figures that vary from run to run.
  'piscina.mjs': pooled,
  'workerpool.cjs': pooled,
}

/** A pool recipe's output: both runs summed 0 … 4e6 - 1, then a line of figures. */
function pooled(out) {
  const [shared, copy, figures] = out.trim().split('\n')
  return shared === 'shared: the tasks summed 7999998000000' && copy === 'copy: the tasks summed 7999998000000' && /^figures: .* sharedobject \d+ ms, \d+ MB; /.test(figures)
}

test('every example has its expected output here', (t) => {
  t.deepEqual(fs.readdirSync(dir).sort(), Object.keys(expected).sort())
})

for (const [file, want] of Object.entries(expected)) {
  test.serial(`examples/${file} exits 0 by itself`, async (t) => {
    const { stdout } = await run(process.execPath, [path.join(dir, file)], { cwd: root, timeout: 60_000, killSignal: 'SIGKILL' })
    if (typeof want === 'function') t.true(want(stdout), stdout)
    else t.deepEqual(lines(stdout), [...want].sort())
    const figures = stdout.split('\n').find((l) => l.startsWith('figures: '))
    if (figures) t.log(figures)
  })
}

test('the README and the guide embed their examples exactly as the files are', (t) => {
  const read = (page) => fs.readFileSync(path.join(root, page), 'utf8')
  const pages = { 'quickstart.cjs': 'README.md', 'data-frame.cjs': 'docs/guide.md', 'advanced-serialization.cjs': 'docs/guide.md', 'developer-api.cjs': 'docs/guide.md' }
  for (const [file, page] of Object.entries(pages)) {
    // The file's header comment is what the prose around the block says.
    const body = fs.readFileSync(path.join(dir, file), 'utf8').replace(/^(\/\/.*\n)+/, '').trim()
    t.true(read(page).includes(`\`\`\`js\n${body}\n\`\`\``), `${page} shows examples/${file}`)
    t.true(read(page).includes(`examples/${file}`), `${page} links examples/${file}`)
  }
})
