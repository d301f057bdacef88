import { fileURLToPath } from 'node:url'
import test from 'ava'
import fs from 'node:fs'
import so from '@sharedobject/core'
import { spawnChild, run, onDisk, can, when } from './helpers.mjs'

// Tests here kill their children with SIGKILL, as a crash or the OOM killer would. Most look
// at what a dead owner left in /dev/shm.
const withShmFiles = when(can.shmFiles, test.serial)

async function orphan(opts = { named: true }) {
  const child = await spawnChild()
  const id = await child.run((so, opts) => {
    const x = so.share(Float64Array.from([1, 2, 3]), opts)
    globalThis.kept.push(x)
    return so.properties(x).id
  }, opts)
  await child.kill('SIGKILL')
  return { id, pid: child.pid }
}

withShmFiles('a killed owner leaves its named segment; sweep frees it and says so', async (t) => {
  const { id, pid } = await orphan()
  t.true(onDisk(id), 'SIGKILL ran no cleanup')
  const listed = so.list().find((s) => s.id === id)
  t.like(listed, { ownerPid: pid, ownerAlive: false, persistent: false })
  t.deepEqual(so.sweep({ dryRun: true }).map((s) => s.id).filter((x) => x === id), [id])
  t.true(onDisk(id), 'a dry run frees nothing')
  const freed = so.sweep()
  t.true(freed.some((s) => s.id === id))
  t.false(onDisk(id))
})

test.serial('a live owner’s segment is never swept', async (t) => {
  const child = await spawnChild()
  const id = await child.run((so) => {
    const x = so.share(Float64Array.from([1]), { named: true })
    globalThis.kept.push(x)
    return so.properties(x).id
  })
  t.false(so.sweep().some((s) => s.id === id))
  t.true(so.hasSharedMemory(id))
  t.true(so.list().find((s) => s.id === id).ownerAlive)
  await child.exit()
  t.false(so.hasSharedMemory(id), 'its owner removed it on a normal exit')
})

withShmFiles('a dead owner’s persistent segment is kept until freed', async (t) => {
  const { id } = await orphan({ persist: true })
  t.false(so.sweep().some((s) => s.id === id))
  t.true(onDisk(id))
  t.true(so.free(id))
  t.false(onDisk(id))
})

withShmFiles('a reused pid is not mistaken for a live owner', async (t) => {
  const { id } = await orphan()
  // Make the header name a pid that is alive now (this test process) but keep the dead
  // child's start time: exactly what pid reuse looks like.
  const fd = fs.openSync(`/dev/shm/sobj.${id}`, 'r+')
  const pid = Buffer.alloc(4)
  pid.writeUInt32LE(process.pid)
  fs.writeSync(fd, pid, 0, 4, 48)
  fs.closeSync(fd)
  const listed = so.list().find((s) => s.id === id)
  t.is(listed.ownerPid, process.pid)
  t.false(listed.ownerAlive)
  t.true(so.sweep().some((s) => s.id === id))
  t.false(onDisk(id))
})

withShmFiles('an owner in another pid namespace is never judged dead', async (t) => {
  const { id } = await orphan()
  const fd = fs.openSync(`/dev/shm/sobj.${id}`, 'r+')
  fs.writeSync(fd, Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]), 0, 8, 64)
  fs.closeSync(fd)
  t.is(so.list().find((s) => s.id === id).ownerAlive, null)
  t.false(so.sweep().some((s) => s.id === id))
  t.true(onDisk(id))
  t.true(so.free(id))
})

withShmFiles('loading the package removes nothing; initialSharedObjectPackageData() sweeps', async (t) => {
  const { id } = await orphan()
  t.true(onDisk(id))
  const root = JSON.stringify(fileURLToPath(new URL('..', import.meta.url)))
  await run(process.execPath, ['-e', `require(${root})`])
  t.true(onDisk(id), 'a load never deletes anything')
  await run(process.execPath, ['-e', `require(${root}).initialSharedObjectPackageData()`])
  t.false(onDisk(id))
})

test.serial('mappings made before the owner died keep working', async (t) => {
  const child = await spawnChild()
  const h = await child.run((so) => {
    const x = so.share(Float64Array.from([4, 5, 6]))
    globalThis.kept.push(x)
    return so.handleOf(x)
  })
  const mine = so.open(h)
  await child.kill('SIGKILL')
  t.deepEqual(Array.from(mine), [4, 5, 6])
  so.sweep()
  t.deepEqual(Array.from(mine), [4, 5, 6], 'sweep removed the name, not the pages')
  so.close(mine)
})
