import test from 'ava'
import so from '@sharedobject/core'
import { spawnChild, can, when } from './helpers.mjs'


// The seed's example, step by step, unnamed and named.
test('the developer API follows the seed’s example with a generated id', (t) => {
  const size = 10
  const id = so.allocateSharedMemory(size)
  t.is(typeof id, 'string')
  t.is(so.getLastIndex(), id)
  t.true(so.hasSharedMemory(id))
  const ptr = so.mapSharedMemory(id)
  t.true(ptr instanceof ArrayBuffer)
  t.is(ptr.byteLength, size)
  t.true(so.getSharedMemorySize(id) >= size)
  t.is(so.mapSharedMemory(id), ptr, 'mapping again gives the same buffer')
  so.unmapSharedMemory(id)
  t.is(ptr.byteLength, size, 'still mapped once more')
  so.unmapSharedMemory(id)
  t.is(ptr.byteLength, 0, 'the last unmap detaches the buffer')
  t.true(so.hasSharedMemory(id), 'unmapping does not free')
  so.freeSharedMemory(id)
  t.false(so.hasSharedMemory(id))
})

test('the developer API follows the seed’s example with a name', (t) => {
  const name = 'SharedObjectExample'
  if (!so.hasSharedMemory(name)) {
    t.is(so.allocateSharedMemory(10, name), name)
    t.true(so.hasSharedMemory(name))
    const ptr = so.mapSharedMemory(name)
    new Uint8Array(ptr).set([1, 2, 3])
    t.true(so.getSharedMemorySize(name) >= 10)
    so.unmapSharedMemory(name)
    so.freeSharedMemory(name)
    t.false(so.hasSharedMemory(name))
  } else {
    t.fail('a segment named SharedObjectExample was left on this machine')
  }
})

test('re-allocating a name: same size is accepted, larger is refused (as in R)', (t) => {
  const name = 'SharedObjectPackageTest'
  so.allocateSharedMemory(10, name)
  t.is(so.allocateSharedMemory(10, name), name)
  t.throws(() => so.allocateSharedMemory(1e6, name), { code: 'ERR_SHM_EXISTS' })
  so.freeSharedMemory(name)
  t.false(so.hasSharedMemory(name))
})

test('free while still mapped removes the segment and detaches this process’s buffer', (t) => {
  const id = so.allocateSharedMemory(100)
  const buf = so.mapSharedMemory(id)
  so.freeSharedMemory(id)
  t.false(so.hasSharedMemory(id))
  t.is(buf.byteLength, 0)
})

when(can.outliveProcesses, test)('developer segments are shared with another process by id and outlive their creator', async (t) => {
  const child = await spawnChild()
  const id = await child.run((so) => {
    const id = so.allocateSharedMemory(16)
    new Uint8Array(so.mapSharedMemory(id)).set([9, 8, 7])
    so.unmapSharedMemory(id)
    return id
  })
  await child.exit()
  t.true(so.hasSharedMemory(id))
  t.true(so.list().some((s) => s.id === id && s.developer && s.ownerAlive === false))
  t.false(so.sweep().some((s) => s.id === id), 'sweep keeps developer segments')
  t.deepEqual(Array.from(new Uint8Array(so.mapSharedMemory(id)).subarray(0, 3)), [9, 8, 7])
  so.freeSharedMemory(id)
  t.false(so.hasSharedMemory(id))
})

test('a zero-byte developer segment works and sizes are checked', (t) => {
  const id = so.allocateSharedMemory(0)
  t.is(so.mapSharedMemory(id).byteLength, 0)
  so.freeSharedMemory(id)
  t.throws(() => so.allocateSharedMemory(-1), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' })
  t.throws(() => so.allocateSharedMemory(1.5), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' })
  t.throws(() => so.allocateSharedMemory(10, 'bad/name'), { instanceOf: TypeError, code: 'ERR_SHM_NAME' })
  t.throws(() => so.mapSharedMemory('nosuchsegment'), { code: 'ERR_SHM_NOT_FOUND' })
  t.false(so.hasSharedMemory('nosuchsegment'))
})

test('package data: initial sweeps, release removes what this process owns', (t) => {
  so.initialSharedObjectPackageData()
  const x = so.share(Float64Array.from([1]), { named: true })
  const id = so.properties(x).id
  t.true(so.releaseSharedObjectPackageData() >= 1)
  t.false(so.hasSharedMemory(id))
  t.is(x[0], 1, 'the view keeps working')
  so.close(x)
})
