// Writes docs/benchmarks.md from a saved `npm run bench` output, so the page shows what the bench
// printed and nothing typed by hand:
//   npm run bench 2>&1 | tee bench.txt && node scripts/bench-doc.mjs bench.txt
// npm's own lines are dropped; a part of the bench that failed is shown as the error it threw.
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)))

/** The bench's output as the page shows it: npm's lines out, a failure's stack trace cut to its error. */
export function tidy(text) {
  const out = []
  const lines = text.replace(/\r/g, '').split('\n')
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]
    // npm's banner for each script, and a runner's exit-status line.
    if (/^> /.test(l) || /^rc=\d+$/.test(l)) continue
    // Node's report of an uncaught error: `file:///…:line`, the source line, a caret, the error,
    // its stack, then `Node.js vX`. Only the error is kept.
    if (/^(file:\/\/|node:)\S+:\d+$/.test(l)) {
      let j = i + 1
      while (j < lines.length && !/^\w*Error\b/.test(lines[j]) && !/^Node\.js v/.test(lines[j])) j++
      const error = lines[j] ?? 'an error'
      while (j < lines.length && !/^Node\.js v/.test(lines[j])) j++
      out.push(`(this part of the bench failed: ${error.trim()})`)
      i = j
      continue
    }
    out.push(l)
  }
  return out.join('\n').replace(/\n{3,}/g, '\n\n').trim()
}

/** The whole page. */
export function page(text, source) {
  const body = tidy(text)
  const node = /node (v\d+\.\d+\.\d+)/.exec(body)?.[1] ?? 'an unknown Node version'
  return `# Benchmarks

What \`npm run bench\` printed on this project's machine, run on Node ${node} (other Node
versions where the bench names them). Every figure in the README and these pages is one of
these. The page is generated (\`node scripts/bench-doc.mjs ${source}\`), so rerun the bench and
the script rather than edit it. Each line gives a figure beside its reference, measured in the
same run; the targets are the project's own.

\`\`\`text
${body}
\`\`\`

How to read it:

1. \`share\` copies a vector once into shared memory; a plain \`slice()\` is the same copy into
   private memory.
2. \`alloc\` against the bare \`posix_fallocate\` it does; \`reserve: false\` only sets the size.
3. A hand-over is the time from the parent starting to send until every receiver has the vector
   and has read its last element. Only a handle travels, so it should not grow with the size.
4. A child's first sum over a freshly opened mapping pays a page fault per page (see
   [first touch](platforms.md#first-touch)).
5. Extra memory is the proportional set size (PSS) of the parent and its children after the
   hand-over minus before, divided by the vector's size: 1× means one copy in all.

The string, Arrow, Node-version and synchronisation parts follow, each with its own header.
\`node bench/json-stringify.mjs\` (not part of \`npm run bench\`) measures what the package costs
\`JSON.stringify\` of arrays it did not make: see [the design notes](design.md#why-no-built-in-is-changed-at-import).
`
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const input = process.argv[2]
  if (!input) {
    console.error('usage: node scripts/bench-doc.mjs <saved output of npm run bench>')
    process.exit(2)
  }
  const out = path.join(root, 'docs', 'benchmarks.md')
  fs.writeFileSync(out, page(fs.readFileSync(input, 'utf8'), path.basename(input)))
  console.log(`wrote ${path.relative(root, out)}`)
}
