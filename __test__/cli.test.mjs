import test from 'ava'
import { fileURLToPath } from 'node:url'
import so from '@sharedobject/core'
import { spawnChild, run, onDisk, isLinux } from './helpers.mjs'

const cli = fileURLToPath(new URL('../dist/src/cli.js', import.meta.url))
const linuxOnly = isLinux ? test.serial : test.serial.skip

test.serial('sharedobject ls shows a table of segments, and --json the same as list()', async (t) => {
  const x = so.alloc('int16', 12, { attributes: { why: 'cli test' } })
  const id = so.properties(x).id
  const { stdout } = await run(process.execPath, [cli, 'ls'])
  t.regex(stdout.split('\n')[0], /^ID\s+KIND\s+LENGTH\s+SIZE\s+OWNER\s+ALIVE\s+PERSISTENT\s+CREATED$/)
  const row = stdout.split('\n').find((l) => l.startsWith(id))
  t.truthy(row)
  const alive = process.platform === 'win32' ? '\\?' : 'yes' // Windows cannot judge owners
  t.regex(row, new RegExp(`^${id}\\s+int16\\s+12\\s+\\S+ B\\s+${process.pid}\\s+${alive}\\s+no\\s`))
  const json = JSON.parse((await run(process.execPath, [cli, 'ls', '--json'])).stdout)
  t.like(
    json.find((s) => s.id === id),
    { kind: 'int16', length: 12, byteLength: 24, ownerPid: process.pid, ownerAlive: process.platform === 'win32' ? null : true },
  )
  so.close(x)
})

linuxOnly('sharedobject gc frees what a killed owner left, and nothing else', async (t) => {
  const child = await spawnChild()
  const id = await child.run((so) => {
    const x = so.share(Float64Array.from([1]), { named: true })
    globalThis.kept.push(x)
    return so.properties(x).id
  })
  await child.kill('SIGKILL')
  const live = so.share(Float64Array.from([2]), { named: true })
  const { stdout } = await run(process.execPath, [cli, 'gc'])
  t.regex(stdout, /^freed \d+ segment\(s\):/)
  t.true(stdout.includes(id))
  t.false(onDisk(id))
  t.true(onDisk(so.properties(live).id))
  so.close(live)
})

test('unknown commands fail with usage; help succeeds', async (t) => {
  const bad = await t.throwsAsync(run(process.execPath, [cli, 'frobnicate']))
  t.is(bad.code, 2)
  t.regex(bad.stderr, /usage: sharedobject/)
  const { stdout } = await run(process.execPath, [cli, 'help'])
  t.regex(stdout, /ls\s+list/)
})
