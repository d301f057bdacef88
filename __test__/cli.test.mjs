import test from 'ava'
import { fileURLToPath } from 'node:url'
import so from '@sharedobject/core'
import { spawnChild, run, onDisk, isLinux, can, when } from './helpers.mjs'

const cli = fileURLToPath(new URL('../dist/src/cli.js', import.meta.url))
const linuxOnly = isLinux ? test.serial : test.serial.skip

test.serial('sharedobject ls shows a table of segments, and --json the same as list()', async (t) => {
  const x = so.alloc('int16', 12, { attributes: { why: 'cli test' } })
  const id = so.properties(x).id
  const { stdout } = await run(process.execPath, [cli, 'ls'])
  t.regex(stdout.split('\n')[0], /^ID\s+KIND\s+LENGTH\s+SIZE\s+OWNER\s+ALIVE\s+NAMED\s+PERSISTENT\s+CREATED$/)
  const row = stdout.split('\n').find((l) => l.startsWith(id))
  t.truthy(row)
  // The size is in bytes, or in whole pages where the OS sizes segments so (Windows).
  t.regex(row, new RegExp(`^${id}\\s+int16\\s+12\\s+\\S+ (?:B|KiB)\\s+${process.pid}\\s+yes\\s+(yes|no)\\s+no\\s`))
  t.regex(stdout, /\d+ segment\(s\), .*; \d+ with a dead owner/, 'totals')
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
    const x = so.share(Float64Array.from([1]), { named: true })
    globalThis.kept.push(x)
    return so.properties(x).id
  })
  await child.kill('SIGKILL')
  const live = so.share(Float64Array.from([2]), { named: true })
  const { stdout } = await run(process.execPath, [cli, 'gc'])
  t.regex(stdout, /^freed \d+ segment\(s\):/)
  t.true(stdout.includes(id))
  t.false(so.hasSharedMemory(id))
  t.true(so.hasSharedMemory(so.properties(live).id))
  so.close(live)
})

test('unknown commands and flags fail with usage; --help succeeds', async (t) => {
  const bad = await t.throwsAsync(run(process.execPath, [cli, 'frobnicate']))
  t.is(bad.code, 2)
  t.regex(bad.stderr, /usage: sharedobject/)
  const flag = await t.throwsAsync(run(process.execPath, [cli, 'gc', '--dry-rnu']))
  t.is(flag.code, 2, 'an unknown flag is an error, never ignored')
  for (const args of [['help'], ['--help'], ['-h'], ['ls', '--help']]) {
    const { stdout } = await run(process.execPath, [cli, ...args])
    t.regex(stdout, /ls\s+list/)
  }
})

linuxOnly('ls changes nothing; gc --dry-run frees nothing; free <id> frees one', async (t) => {
  const child = await spawnChild()
  const id = await child.run((so) => {
    const x = so.share(Float64Array.from([1]), { named: true })
    globalThis.kept.push(x)
    return so.properties(x).id
  })
  await child.kill('SIGKILL')
  await run(process.execPath, [cli, 'ls'])
  t.true(onDisk(id), 'ls never deletes')
  const dry = await run(process.execPath, [cli, 'gc', '--dry-run'])
  t.regex(dry.stdout, /^would free \d+ segment\(s\):/)
  t.true(dry.stdout.includes(id))
  t.true(onDisk(id), 'a dry run frees nothing')
  const freed = await run(process.execPath, [cli, 'free', id])
  t.regex(freed.stdout, /^freed /)
  t.false(onDisk(id))
  const again = await t.throwsAsync(run(process.execPath, [cli, 'free', id]))
  t.is(again.code, 1)
})

linuxOnly('ls lists this user’s unnamed segments too', async (t) => {
  const x = so.alloc('float64', 10)
  const { stdout } = await run(process.execPath, [cli, 'ls', '--json'])
  t.like(JSON.parse(stdout).find((s) => s.id === so.properties(x).id), { named: false, ownerAlive: true, kind: 'float64' })
  so.close(x)
})
