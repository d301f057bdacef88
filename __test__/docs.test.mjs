// Every fenced code block of README.md and docs/*.md is checked, by its language:
//   ```js      a program. It is written to a fresh directory where `@sharedobject/core` resolves to
//              this checkout (as an ES module when it has an `import` statement, CommonJS
//              otherwise) and run with this Node: it must exit 0 by itself within a minute and
//              leave /dev/shm as it found it.
//   ```text    what the program just before it prints, line by line in any order (processes
//              answer in any order). A text block after anything else is a format or a listing,
//              with nothing to run.
//   ```sh      commands a reader types. Each must be one this repository answers: `npm i` of this
//              package, `npm run <script>` or `npm test [-- ...]` of a script in package.json,
//              `npx sharedobject <command>` of a command the CLI's help lists, or `node`/`bash`
//              of a file in the repository.
//   ```python  run with the Python of scripts/python-env.mjs (pyarrow, duckdb), its first
//              argument the path of a table { region: n s n, amount: 3 4 5 } this test shares.
// Any other language, or none, fails: no block goes unchecked. The same file checks that every
// error code is in the README's table and in docs/errors.md, that relative links resolve, and
// that every figure the README quotes is one the saved bench output shows.
import test from 'ava'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { run, isLinux, when } from './helpers.mjs'
import { pythonEnv } from '../scripts/python-env.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))
const require = createRequire(import.meta.url)
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))
const pages = ['README.md', ...fs.readdirSync(path.join(root, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`)]

/** The fenced blocks of a Markdown text: language, first line number, body. */
function blocks(text) {
  const out = []
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(.*)$/.exec(lines[i])
    if (!open) continue
    const start = i
    const body = []
    while (++i < lines.length && lines[i] !== '```') body.push(lines[i])
    out.push({ lang: open[1].trim(), line: start + 1, body: body.join('\n') })
  }
  return out
}

// A directory where the blocks run as a user's files would: `@sharedobject/core` is this checkout,
// and every other package (apache-arrow, arquero) is the repository's own. On POSIX, a temporary
// folder whose node_modules links to them; on Windows (where links need rights a test may not
// have), a temporary folder inside the checkout, where the package's name resolves to itself.
function workDir() {
  if (process.platform === 'win32') return fs.mkdtempSync(path.join(root, '.docs-blocks-'))
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sharedobject-docs-'))
  const modules = path.join(dir, 'node_modules')
  fs.mkdirSync(path.join(modules, '@sharedobject'), { recursive: true })
  fs.symlinkSync(root, path.join(modules, '@sharedobject', 'core'))
  for (const name of fs.readdirSync(path.join(root, 'node_modules'))) {
    if (name.startsWith('.') || name === '@sharedobject') continue
    fs.symlinkSync(path.join(root, 'node_modules', name), path.join(modules, name))
  }
  return dir
}
const work = workDir()
test.after.always(() => fs.rmSync(work, { recursive: true, force: true }))

const shm = () => (fs.existsSync('/dev/shm') ? fs.readdirSync('/dev/shm').sort() : [])
const sortedLines = (s) => s.trim().split('\n').sort()

/** Each command a `sh` block may hold, and why it is right. */
const cliHelp = () => require('node:child_process').execFileSync(process.execPath, [path.join(root, 'dist', 'src', 'cli.js'), '--help'], { encoding: 'utf8' })
function checkCommand(t, command) {
  let m
  if ((m = /^npm (?:i|install) (\S+)$/.exec(command))) return t.is(m[1], pkg.name, command)
  if ((m = /^npm run (\S+)/.exec(command))) return t.truthy(pkg.scripts[m[1]], `${command}: package.json has the script ${m[1]}`)
  if (/^npm test( -- .+)?$/.test(command)) return t.truthy(pkg.scripts.test, command)
  if ((m = /^npx sharedobject (\S+)/.exec(command))) {
    if (m[1] === '--help') return t.pass()
    return t.regex(cliHelp(), new RegExp(`^\\s+${m[1]}\\b`, 'm'), `${command}: the CLI has the command ${m[1]}`)
  }
  if ((m = /^(?:node|bash) (\S+)/.exec(command))) return t.true(fs.existsSync(path.join(root, m[1])), `${command}: ${m[1]} exists`)
  t.fail(`${command}: not a command this test knows how to check`)
}

/** The Python reader's table, shared for as long as the test runs. */
async function sharedTable() {
  const so = require(root)
  const { tableFromArrays } = require('apache-arrow')
  return so.share(tableFromArrays({ region: ['n', 's', 'n'], amount: Float64Array.of(3, 4, 5) }))
}

let count = 0
for (const page of pages) {
  const list = blocks(fs.readFileSync(path.join(root, page), 'utf8'))
  list.forEach((block, k) => {
    const next = list[k + 1]
    const output = next?.lang === 'text' ? next.body : undefined
    const title = `${page}:${block.line} (${block.lang || 'no language'})`
    const file = path.join(work, `block-${++count}`)
    if (block.lang === 'js') {
      test.serial(`${title} runs to the end${output === undefined ? '' : ' and prints what follows it'}`, async (t) => {
        const name = `${file}.${/^import\s/m.test(block.body) ? 'mjs' : 'cjs'}`
        fs.writeFileSync(name, `${block.body}\n`)
        const before = shm()
        const { stdout } = await run(process.execPath, [name], { cwd: work, timeout: 60_000, killSignal: 'SIGKILL', maxBuffer: 16 << 20 })
        if (output !== undefined) t.deepEqual(sortedLines(stdout), sortedLines(output))
        t.deepEqual(shm(), before, '/dev/shm is as the block found it')
      })
    } else if (block.lang === 'python') {
      when(isLinux, test.serial)(`${title} reads a table shared from Node`, async (t) => {
        const python = pythonEnv()
        const so = require(root)
        const table = await sharedTable()
        t.teardown(() => so.close(table))
        fs.writeFileSync(`${file}.py`, `${block.body}\n`)
        const { stdout } = await run(python, [`${file}.py`, so.properties(table).path], { timeout: 60_000, killSignal: 'SIGKILL' })
        if (output !== undefined) t.deepEqual(sortedLines(stdout), sortedLines(output))
        else t.pass()
      })
    } else if (block.lang === 'sh') {
      test(`${title} names only commands this repository has`, (t) => {
        const commands = block.body.split('\n').map((l) => l.replace(/\s+#.*$/, '').trim()).filter(Boolean)
        t.true(commands.length > 0)
        for (const c of commands) checkCommand(t, c)
      })
    } else if (block.lang === 'text') {
      // Checked as the output of the block before it, or a listing with nothing to run.
    } else {
      test(`${title} is in a language the docs test knows`, (t) => t.fail(`a \`\`\`${block.lang} block: use js, text, sh or python`))
    }
  })
}

test('the README and docs/errors.md list every error code', (t) => {
  const so = require(root)
  const all = [...Object.values(so.codes), 'ERR_SHM_NO_BINARY']
  for (const page of ['README.md', 'docs/errors.md']) {
    const text = fs.readFileSync(path.join(root, page), 'utf8')
    t.deepEqual(all.filter((c) => !text.includes(`\`${c}\``)), [], `${page} names every code`)
  }
})

test('the README is a landing page of at most 300 lines', (t) => {
  const lines = fs.readFileSync(path.join(root, 'README.md'), 'utf8').trimEnd().split('\n').length
  t.true(lines <= 300, `${lines} lines`)
})

/** GitHub's anchor for a heading. */
const slug = (heading) => heading.trim().toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, '').replace(/ /g, '-')

test('relative links in the README and docs lead to files and headings that exist', (t) => {
  const anchors = (file) =>
    new Set(
      fs
        .readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => /^#+ /.test(l))
        .map((l) => slug(l.replace(/^#+ /, ''))),
    )
  const broken = []
  for (const page of pages) {
    const text = fs.readFileSync(path.join(root, page), 'utf8').replace(/```[\s\S]*?```/g, '')
    for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/.test(target)) continue
      const [file, anchor] = target.split('#')
      const resolved = file ? path.resolve(path.dirname(path.join(root, page)), file) : path.join(root, page)
      if (!fs.existsSync(resolved)) broken.push(`${page}: ${target}`)
      else if (anchor && !anchors(resolved).has(anchor)) broken.push(`${page}: ${target} (no such heading)`)
    }
  }
  t.deepEqual(broken, [])
})

test('every figure the README quotes is one docs/benchmarks.md shows', (t) => {
  const prose = (page) => fs.readFileSync(path.join(root, page), 'utf8').replace(/```[\s\S]*?```/g, '')
  const bench = fs.readFileSync(path.join(root, 'docs', 'benchmarks.md'), 'utf8').replace(/ +×/g, '×')
  const figures = [...prose('README.md').matchAll(/\b\d+(?:\.\d+)? ?(?:ms|s|µs|×)(?![\w])/g)].map((m) => m[0].replace(/ ×$/, '×'))
  t.true(figures.length >= 5, `the README quotes figures: ${figures.join(', ')}`)
  t.deepEqual(
    figures.filter((f) => !bench.includes(f)),
    [],
    'each is in the bench output',
  )
})
