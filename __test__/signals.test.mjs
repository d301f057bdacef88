// Owners and readers ended by signals, as Ctrl-C, docker stop, systemctl stop, a crash or the
// OOM killer end them: what they leave behind.
import test from 'ava'
import fs from 'node:fs'
import { once } from 'node:events'
import { fork } from 'node:child_process'
import so from '@sharedobject/core'
import { fixture, spawnChild, can } from './helpers.mjs'

const linux = can.procfs ? test.serial : test.serial.skip
const shmemKiB = () => Number(/Shmem:\s+(\d+) kB/.exec(fs.readFileSync('/proc/meminfo', 'utf8'))[1])
const settle = async (check) => {
  for (let i = 0; i < 100 && !check(); i++) await new Promise((r) => setTimeout(r, 20))
  return check()
}

/** An owner that shares a named and an unnamed 32 MiB vector, and a listener-free exit. */
async function owner(extra = []) {
  const p = fork(fixture('owner.mjs'), extra, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const [m] = await once(p, 'message')
  return { p, ...m }
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  linux(`an owner ended by ${signal} removes its names and still dies of ${signal}`, async (t) => {
    const { p, named, unnamed } = await owner()
    t.true(fs.existsSync(`/dev/shm/sobj.${named}`))
    t.true(so.list().some((s) => s.id === unnamed))
    const [code, sig] = await (p.kill(signal), once(p, 'exit'))
    t.is(code, null)
    t.is(sig, signal)
    t.false(fs.existsSync(`/dev/shm/sobj.${named}`))
    t.false(so.list().some((s) => s.id === named || s.id === unnamed))
  })
}

linux('an owner with its own SIGTERM listener keeps running, and removes its names when it exits', async (t) => {
  const { p, named } = await owner(['listen'])
  p.kill('SIGTERM')
  const [m] = await once(p, 'message')
  t.is(m, 'still here')
  t.true(fs.existsSync(`/dev/shm/sobj.${named}`), 'nothing removed while the process lives on')
  const [code] = await (p.send('exit'), once(p, 'exit'))
  t.is(code, 0)
  t.false(fs.existsSync(`/dev/shm/sobj.${named}`))
})

async function killScenario(t, who) {
  const base = shmemKiB()
  const { p, unnamedHandle } = await owner()
  const readers = [await spawnChild(), await spawnChild()]
  for (const r of readers) {
    const first = await r.run((so, h) => {
      const v = so.open(h)
      globalThis.kept.push(v)
      return v[v.length - 1]
    }, unnamedHandle)
    t.is(first, 7)
  }
  t.true(shmemKiB() - base > 60 * 1024, 'the vectors are in shared memory')
  if (who !== 'readers') {
    p.kill('SIGKILL')
    await once(p, 'exit')
  }
  if (who !== 'owner') await Promise.all(readers.map((r) => r.kill('SIGKILL')))
  if (who === 'owner') {
    // Readers keep reading after their owner died...
    t.is(await readers[0].run(() => globalThis.kept[0][5]), 7)
    await Promise.all(readers.map((r) => r.exit()))
  } else if (who === 'readers') {
    p.kill('SIGKILL')
    await once(p, 'exit')
  }
  // ...and once every holder is gone, the unnamed segment's memory is back (the named one waits for gc).
  const named = so.sweep()
  t.true(named.length <= 1)
  t.true(await settle(() => shmemKiB() - base < 8 * 1024), `Shmem ${shmemKiB() - base} KiB above where it was`)
  t.deepEqual(fs.readdirSync('/dev/shm').filter((f) => f.startsWith('sobj.')), [])
}

linux('SIGKILL of the owner: readers keep their pages; nothing is left once they end', (t) => killScenario(t, 'owner'))
linux('SIGKILL of the readers: the owner is unaffected; nothing is left once it ends', (t) => killScenario(t, 'readers'))
linux('SIGKILL of owner and readers together: nothing is left', (t) => killScenario(t, 'all'))

linux('SIGKILL in the middle of large named shares leaves only segments that list() and gc see', async (t) => {
  const child = fork(fixture('owner.mjs'), ['churn'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  await once(child, 'message')
  await new Promise((r) => setTimeout(r, 150))
  child.kill('SIGKILL')
  await once(child, 'exit')
  const files = fs.readdirSync('/dev/shm').filter((f) => f.startsWith('sobj.')).map((f) => f.slice(5))
  const listed = new Set(so.list().map((s) => s.id))
  t.deepEqual(files.filter((id) => !listed.has(id)), [], 'every file a crash left has a header naming its owner')
  so.sweep()
  t.deepEqual(fs.readdirSync('/dev/shm').filter((f) => f.startsWith('sobj.')), [])
})
