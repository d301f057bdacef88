// A seeded fuzz of the parsers a handle reaches (Arrow metadata, container manifests), with a
// fixed budget of rounds: every open gives a value or a coded error, and the process lives.
import test from 'ava'
import { run, fixture, can, when } from './helpers.mjs'

/** Runs `rounds` rounds of the fuzz fixture with `seed`; the child's own tally. */
async function fuzz(mode, seed, rounds) {
  const { stdout } = await run(process.execPath, [fixture('fuzz.mjs'), mode, String(seed), String(rounds)], { timeout: 300_000, maxBuffer: 1 << 20 })
  return JSON.parse(stdout)
}

for (const seed of [1, 2, 3]) {
  // The fuzz rewrites segments' files in /dev/shm.
  when(can.shmFiles, test)(`Arrow metadata, seed ${seed}: 15000 rewrites, each open a table or ERR_SHM_BAD_HEADER`, async (t) => {
    const r = await fuzz('arrow', seed, 15_000)
    t.true(r.alive)
    t.deepEqual(r.uncoded, [])
    t.deepEqual(Object.keys(r.codes), ['ERR_SHM_BAD_HEADER'])
    t.is(r.ok + r.codes.ERR_SHM_BAD_HEADER, 30_000, 'every open answered')
  })
}

for (const seed of [1, 2]) {
  when(can.shmFiles, test)(`container manifests, seed ${seed}: 2500 generated and rewritten, each open a value or a coded error`, async (t) => {
    const r = await fuzz('manifest', seed, 2500)
    t.true(r.alive)
    t.deepEqual(r.uncoded, [])
    const answered = r.ok + Object.values(r.codes).reduce((a, b) => a + b, 0)
    t.is(answered, 7500, 'every open answered')
    t.true(r.ok > 0 && r.codes.ERR_SHM_BAD_HEADER > 0, 'both outcomes are reached')
  })
}
