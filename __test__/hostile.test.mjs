// Hostile bytes and tight limits: crafted handles, tight memory limits and same-user writers get
// a coded error in a process that lives on; never an abort, a hang, an OOM kill or a SIGBUS.
import test from 'ava'
import so from '@sharedobject/core'
import { run, fixture } from './helpers.mjs'

/** Runs the attacker fixture in a child, in the test's /dev/shm; what the victim's opens gave. */
async function attack(name, ...args) {
  // A generous bound only against a hang: the child reports its own time, the test does not judge it.
  const { stdout } = await run(process.execPath, [fixture('hostile.mjs'), name, ...args], { timeout: 120_000, maxBuffer: 1 << 20 })
  return JSON.parse(stdout)
}

test('a manifest fanning out 40 ways over 6 levels is refused by the segment budget', async (t) => {
  const r = await attack('fanout')
  t.true(r.alive)
  t.true(r.handleLength < 64, 'one short handle')
  for (const how of ['map', 'copy', 'revived']) {
    t.false(r[how].ok, how)
    t.is(r[how].code, 'ERR_SHM_NO_SPACE', how)
    t.regex(r[how].message, /more than 100000 segments \(maxSegments\)/, how)
  }
})

test('a chain of 10,000 manifests is refused as a bad header, not a stack overflow', async (t) => {
  const r = await attack('chain')
  t.true(r.alive)
  for (const how of ['map', 'copy', 'revived']) {
    t.false(r[how].ok, how)
    t.is(r[how].code, 'ERR_SHM_BAD_HEADER', how)
    t.regex(r[how].message, /nest deeper than 1000 levels/, how)
  }
})

test('maxSegments and maxBytes bound one open, per call or for the process', async (t) => {
  const fits = await attack('small')
  t.true(fits.map.ok && fits.copy.ok && fits.revived.ok, 'a manifest naming one vector 4 times opens by default')
  const r = await attack('small', JSON.stringify({ maxSegments: 3 }))
  t.is(r.map.code, 'ERR_SHM_NO_SPACE')
  t.regex(r.map.message, /more than 3 segments/)
  const b = await attack('small', JSON.stringify({ maxBytes: 16 }))
  t.is(b.map.code, 'ERR_SHM_NO_SPACE', 'the 32-byte vector is past a 16-byte budget')
  t.regex(b.map.message, /more than 16 bytes/)
  const x = so.share(new Float64Array(4))
  t.throws(() => so.open(so.handleOf(x), { maxSegments: 0 }), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' })
  const old = so.setOptions({ maxBytes: 8 })
  try {
    t.throws(() => so.open(so.handleOf(x), { copy: true }), { code: 'ERR_SHM_NO_SPACE' })
    t.is(so.open(so.handleOf(x), { maxBytes: 64 }).length, 4, 'a call can raise the process default')
  } finally {
    so.setOptions(old)
  }
  t.throws(() => so.setOptions({ maxSegments: 1.5 }), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' })
  so.free(x)
  so.close(x)
})
