// Hostile bytes and tight limits: crafted handles, tight memory limits and same-user writers get
// a coded error in a process that lives on; never an abort, a hang, an OOM kill or a SIGBUS.
import test from 'ava'
import so from '@sharedobject/core'
import fs from 'node:fs'
import { run, fixture, spawnChild, can, when, memoryCgroup, binding, child } from './helpers.mjs'

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

when(can.manySegments, test)('a chain of 10,000 manifests is refused as a bad header, not a stack overflow', async (t) => {
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
    t.throws(() => so.open(so.handleOf(x)), { code: 'ERR_SHM_NO_SPACE', message: /more than 8 bytes/ }, 'with no options too')
    t.throws(() => so.revive({ x: { $sharedobject: so.handleOf(x) } }), { code: 'ERR_SHM_NO_SPACE' }, 'and in a message')
    t.is(so.open(so.handleOf(x), { maxBytes: 64 }).length, 4, 'a call can raise the process default')
  } finally {
    so.setOptions(old)
  }
  t.throws(() => so.setOptions({ maxSegments: 1.5 }), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' })
  so.free(x)
  so.close(x)
})

test('the native open of a plain handle refuses what is not one with a coded error, and maps nothing past its bounds', (t) => {
  const x = so.share(Float64Array.of(1, 2, 3))
  const h = so.handleOf(x)
  const codeOf = (f) => {
    try {
      return f() === null ? 'null' : 'value'
    } catch (e) {
      return e.code
    }
  }
  for (const args of [[], [123, 1e9, 1e9], [null, 1e9, 1e9], ['sobj1:nothing', 1e9, 1e9], [h.slice(0, -3) + 'zzz', 1e9, 1e9]]) {
    t.regex(String(codeOf(() => binding.openPlain(...args))), /^ERR_SHM_/, JSON.stringify(args))
  }
  // Past the bytes left, past the engine's length, or with bounds that are no numbers: null.
  for (const [left, max] of [[8, 1e9], [1e9, 8], [-1, 1e9], [undefined, undefined], [NaN, 1e9]]) {
    t.is(codeOf(() => binding.openPlain(h, left, max)), 'null', `${left}, ${max}`)
  }
  // This thread's buffer over the live mapping, the owner's.
  t.is(binding.openPlain(h, 1e9, 1e9), x.buffer)
  t.deepEqual(Array.from(so.open(h)), [1, 2, 3])
  so.free(x)
  so.close(x)
})

when(can.memoryCgroup, test)('alloc past a memory cgroup’s limit is ERR_SHM_NO_SPACE naming the cgroup, not an OOM kill', async (t) => {
  const group = memoryCgroup(300 * 1024 * 1024)
  try {
    const inner = group.command(`exec "${process.execPath}" "${fixture('limits.mjs')}" ${2 ** 30}`)
    const { stdout } = await run('sh', ['-c', inner], { timeout: 120_000 })
    const r = JSON.parse(stdout)
    t.true(r.alive)
    t.is(r.small, 2, 'what fits still works')
    for (const how of ['unnamed', 'named']) {
      t.false(r[how].ok, how)
      t.is(r[how].code, 'ERR_SHM_NO_SPACE', how)
      t.regex(r[how].message, /needs 1024\.0 MiB/, how)
      t.true(r[how].message.includes(`the memory cgroup ${group.dir}`), r[how].message)
      t.regex(r[how].message, /(memory\.limit_in_bytes|memory\.max) 300\.0 MiB/, how)
    }
  } finally {
    group.remove()
  }
})

when(can.prlimit, test)('alloc past RLIMIT_AS is ERR_SHM_NO_SPACE naming it', async (t) => {
  // Room for Node itself (its address space when idle, measured) and 512 MiB more (Node grows its heap into some of it); 1 GiB asked.
  const { stdout: idle } = await run(process.execPath, ['-e', "console.log(require('fs').readFileSync('/proc/self/status','utf8').match(/VmSize:\\s+(\\d+)/)[1])"])
  const limit = Number(idle) * 1024 + 512 * 1024 * 1024
  const { stdout } = await run('prlimit', [`--as=${limit}`, process.execPath, fixture('limits.mjs'), String(2 ** 30)], { timeout: 120_000 })
  const r = JSON.parse(stdout)
  t.true(r.alive)
  for (const how of ['unnamed', 'named']) {
    t.is(r[how].code, 'ERR_SHM_NO_SPACE', how)
    t.regex(r[how].message, /RLIMIT_AS/, how)
  }
})

when(can.prlimit, test.serial)('open past RLIMIT_AS is ERR_SHM_NO_SPACE naming it, and the process goes on', async (t) => {
  const x = so.alloc('float64', (512 << 20) / 8)
  try {
    const { stdout: idle } = await run(process.execPath, ['-e', "console.log(require('fs').readFileSync('/proc/self/status','utf8').match(/VmSize:\\s+(\\d+)/)[1])"])
    const limit = Number(idle) * 1024 + 256 * 1024 * 1024
    const r = await child(
      `let out
      try { so.open(process.env.H); out = { opened: true } } catch (e) { out = { code: e.code, message: e.message } }
      out.small = so.share(Float64Array.of(1, 2)).length
      console.log(JSON.stringify(out))`,
      { env: { H: so.handleOf(x) }, wrap: ['prlimit', `--as=${limit}`] },
    )
    t.is(r.code, 0, r.stderr)
    const out = r.json()
    t.is(out.code, 'ERR_SHM_NO_SPACE')
    t.regex(out.message, /RLIMIT_AS/)
    t.is(out.small, 2)
  } finally {
    so.free(x)
    so.close(x)
  }
})

when(can.smallShm, test)('a reserve: false segment on a full /dev/shm: readers get a coded error or zeros, never SIGBUS', async (t) => {
  const inner = `mount -t tmpfs -o size=4m tmpfs /dev/shm && exec "${process.execPath}" "${fixture('full-shm.mjs')}"`
  const cmd = process.getuid() === 0 ? ['unshare', ['-m', 'sh', '-c', inner]] : ['sudo', ['-n', 'unshare', '-m', 'sh', '-c', inner]]
  const { stdout } = await run(cmd[0], cmd[1], { timeout: 120_000 })
  const r = JSON.parse(stdout)
  // Without asking, the reader is refused before anything is mapped.
  t.deepEqual([r.plain.status, r.plain.signal], [0, null])
  t.false(r.plain.result.ok)
  t.is(r.plain.result.code, 'ERR_SHM_BAD_HEADER')
  t.regex(r.plain.result.message, /reserve: false/)
  // A reader that accepts the risk lives: its touch of a hole that /dev/shm cannot fill reads zeros.
  t.deepEqual([r.accepted.status, r.accepted.signal], [0, null], r.accepted.stderr)
  t.deepEqual(r.accepted.result, { ok: true, first: 1.5, hole: 0, last: 0 })
  // A copy reads holes as zeros without mapping them.
  t.deepEqual(r.copy.result, { ok: true, first: 1.5, hole: 0, last: 0 })
  t.deepEqual(r.leftover, [])
})

when(can.shmFiles, test)('a named segment cut short under a reader: the reader reads zeros and lives', async (t) => {
  const x = so.share(new Float64Array(1 << 17).fill(1.5), { named: true })
  const path = so.properties(x).path ?? `/dev/shm/sobj.${so.properties(x).id}`
  const child = await spawnChild()
  try {
    const before = await child.run((so, h) => {
      globalThis.kept.push(so.open(h))
      return [globalThis.kept[0][0], globalThis.kept[0][1000]]
    }, so.handleOf(x))
    t.deepEqual(before, [1.5, 1.5])
    // Another process of the same user cuts the file to nothing.
    fs.truncateSync(path, 0)
    const after = await child.run(() => {
      const v = globalThis.kept[0]
      const read = [v[1000], v[v.length - 1]]
      v[2000] = 3 // a write there lands in a private zero page
      return [...read, v[2000], process.pid]
    })
    t.deepEqual(after.slice(0, 3), [0, 0, 3])
    t.is(after[3], child.pid, 'the reader is alive')
    // Opening it again is refused: the header says it is longer than the file.
    await t.throwsAsync(child.run((so, h) => so.open(h), so.handleOf(x)), { code: 'ERR_SHM_BAD_HEADER' })
  } finally {
    await child.exit()
    // free reads the header to know the segment is still ours: a cut file no longer has one.
    so.close(x)
    fs.rmSync(path, { force: true })
  }
})

when(can.shmFiles, test)('a reserved named segment with holes made by another writer is not mapped', async (t) => {
  const x = so.share(new Float64Array(1 << 14).fill(2.5), { named: true })
  const path = so.properties(x).path ?? `/dev/shm/sobj.${so.properties(x).id}`
  const header = fs.readFileSync(path).subarray(0, 4096)
  const size = fs.statSync(path).size
  // Cut and regrown to its size: the header is back, the data is holes.
  fs.truncateSync(path, 0)
  fs.truncateSync(path, size)
  const fd = fs.openSync(path, 'r+')
  fs.writeSync(fd, header, 0, header.length, 0)
  fs.closeSync(fd)
  const child = await spawnChild()
  try {
    const got = await child.run((so, h) => {
      try {
        so.open(h, { reserve: false })
        return { ok: true }
      } catch (e) {
        return { code: e.code, message: e.message }
      }
    }, so.handleOf(x))
    t.is(got.code, 'ERR_SHM_BAD_HEADER')
    t.regex(got.message, /without memory behind them/)
  } finally {
    await child.exit()
    so.free(x)
    so.close(x)
  }
})

// The attacker rewrites the segment's file in /dev/shm.
when(can.shmFiles, test)('Arrow metadata rewritten with a recomputed hash (lengths of 2^40) is ERR_SHM_BAD_HEADER', async (t) => {
  const { stdout } = await run(process.execPath, [fixture('fuzz.mjs'), 'arrow-rows'], { timeout: 120_000 })
  const r = JSON.parse(stdout)
  t.true(r.alive)
  t.deepEqual(r.uncoded, [])
  t.is(r.ok, 0, 'neither the mapped nor the copied open accepts it')
  t.deepEqual(r.codes, { ERR_SHM_BAD_HEADER: 2 })
})
