import test from 'ava'
import { fileURLToPath } from 'node:url'
import so from '../index.js'
import { spawnChild, run, can, when } from './helpers.mjs'

const cli = fileURLToPath(new URL('../cli.js', import.meta.url))

test.serial('sharedobject ls shows a table of segments, and --json the same as list()', async (t) => {
  const x = so.alloc('int16', 12, { attributes: { why: 'cli test' } })
  const id = so.properties(x).id
  const { stdout } = await run(process.execPath, [cli, 'ls'])
  t.regex(stdout.split('\n')[0], /^ID\s+KIND\s+LENGTH\s+SIZE\s+OWNER\s+ALIVE\s+PERSISTENT\s+CREATED$/)
  const row = stdout.split('\n').find((l) => l.startsWith(id))
  t.truthy(row)
  // The size is in bytes, or in whole pages where the OS sizes segments so (Windows).
  t.regex(row, new RegExp(`^${id}\\s+int16\\s+12\\s+\\S+ (?:B|KiB)\\s+${process.pid}\\s+yes\\s+no\\s`))
  const json = JSON.parse((await run(process.execPath, [cli, 'ls', '--json'])).stdout)
  t.like(
    json.find((s) => s.id === id),
    { kind: 'int16', length: 12, byteLength: 24, ownerPid: process.pid, ownerAlive: true },
  )
  so.close(x)
})

when(can.outliveProcesses, test.serial)('sharedobject gc frees what a killed owner left, and nothing else', async (t) => {
  const child = await spawnChild()
  const id = await child.run((so) => {
    const x = so.share(Float64Array.from([1]))
    globalThis.kept.push(x)
    return so.properties(x).id
  })
  await child.kill('SIGKILL')
  const live = so.share(Float64Array.from([2]))
  const { stdout } = await run(process.execPath, [cli, 'gc'])
  t.regex(stdout, /^freed \d+ segment\(s\):/)
  t.true(stdout.includes(id))
  t.false(so.hasSharedMemory(id))
  t.true(so.hasSharedMemory(so.properties(live).id))
  so.close(live)
})

test('unknown commands fail with usage; help succeeds', async (t) => {
  const bad = await t.throwsAsync(run(process.execPath, [cli, 'frobnicate']))
  t.is(bad.code, 2)
  t.regex(bad.stderr, /usage: sharedobject/)
  const { stdout } = await run(process.execPath, [cli, 'help'])
  t.regex(stdout, /ls\s+list/)
})
