// R SharedObject's memory and race tests, at the sizes a test run can afford.
import test from 'ava'
import so from '@sharedobject/core'
import { spawnChild } from './helpers.mjs'

const mine = () => so.list().filter((s) => s.ownerPid === process.pid)

test.serial('100 rounds of share → two children read → everyone releases leave nothing behind', async (t) => {
  const kids = [await spawnChild(), await spawnChild()]
  const before = mine().length
  for (let round = 0; round < 100; round++) {
    const x = so.share(Float64Array.from({ length: 1000 }, (_, i) => i + round))
    const h = so.handleOf(x)
    const firsts = await Promise.all(
      kids.map((k) =>
        k.run((so, h) => {
          const v = so.open(h)
          const r = Array.from(v.subarray(0, 10))
          so.close(v)
          return r[0]
        }, h),
      ),
    )
    t.deepEqual(firsts, [round, round])
    so.free(x)
    so.close(x)
  }
  t.is(mine().length, before)
  await Promise.all(kids.map((k) => k.exit()))
})

test.serial('ten 64 MB vectors in turn through two children: memory is returned each time', async (t) => {
  const kids = [await spawnChild(), await spawnChild()]
  for (let round = 0; round < 10; round++) {
    const x = so.alloc('float64', 8 * 1024 * 1024)
    x[x.length - 1] = round
    const lasts = await Promise.all(
      kids.map((k) =>
        k.run((so, h) => {
          const v = so.open(h)
          const r = v[v.length - 1]
          so.close(v)
          return r
        }, so.handleOf(x)),
      ),
    )
    t.deepEqual(lasts, [round, round])
    const id = so.properties(x).id
    t.true(so.free(x))
    so.close(x)
    t.false(so.list().some((s) => s.id === id), 'freed, and closed by everyone: gone')
  }
  await Promise.all(kids.map((k) => k.exit()))
})

test.serial('two processes sharing 2,000 vectors each at the same time get distinct ids and no error', async (t) => {
  const kids = [await spawnChild(), await spawnChild()]
  const ids = await Promise.all(
    kids.map((k) =>
      k.run((so) => {
        const ids = []
        for (let i = 0; i < 2000; i++) {
          const x = so.share(Int32Array.of(i))
          ids.push(so.properties(x).id)
          so.close(x)
        }
        return ids
      }),
    ),
  )
  const all = ids.flat()
  t.is(all.length, 4000)
  t.is(new Set(all).size, 4000)
  t.false(all.some((id) => so.hasSharedMemory(id)))
  await Promise.all(kids.map((k) => k.exit()))
})
