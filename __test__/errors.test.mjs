import test from 'ava'
import fs from 'node:fs'
import { randomBytes } from 'node:crypto'
import so from '@sharedobject/core'
import { constants as bufferConstants } from 'node:buffer'
import { run, fixture, spawnChild, can, when } from './helpers.mjs'


test('bad handles give ERR_SHM_INVALID_HANDLE and the process lives', (t) => {
  for (const h of ['', 'garbage', 'sobj1:abc', 'sobj1:abc:xyz', 'sobj1:../x:0000000000000001', 'sobj9:abc:0000000000000001', 'x'.repeat(10000)]) {
    t.throws(() => so.open(h), { instanceOf: TypeError, code: 'ERR_SHM_INVALID_HANDLE' }, h.slice(0, 30))
  }
  for (const h of [undefined, null, 42, {}, [], { $sharedobject: 5 }]) {
    t.throws(() => so.open(h), { instanceOf: TypeError, code: 'ERR_SHM_INVALID_HANDLE' })
  }
  t.throws(() => so.open('sobj1:neverexisted:0000000000000001'), { code: 'ERR_SHM_NOT_FOUND' })
})

test('bad kinds and lengths give TypeError / RangeError with codes', (t) => {
  t.throws(() => so.alloc('complex', 3), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_VALUE' })
  t.throws(() => so.alloc(undefined, 3), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_VALUE' })
  for (const n of [-1, 1.5, NaN, Infinity, '3', 2 ** 60]) {
    t.throws(() => so.alloc('float64', n), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' }, String(n))
  }
  // One element past the largest ArrayBuffer this Node.js makes (4 GiB on Node 20, 2^53 - 1
  // bytes from Node 22), in doubles so that the length is still a safe integer.
  const pastLargest = Math.floor(bufferConstants.MAX_LENGTH / 8) + 1
  t.throws(() => so.alloc('float64', pastLargest), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE', message: /more than this Node\.js can view/ }, 'larger than any ArrayBuffer')
  t.throws(() => so.share(new Float64Array(1), { attributes: { n: 1n } }), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_VALUE' })
  t.throws(() => so.share(new Float64Array(1), 'opts'), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => so.open('sobj1:abc:0000000000000001', { copyOnWrite: 1 }), { instanceOf: TypeError })
})

test('functions that need a shared vector refuse other values with a code', (t) => {
  for (const f of [so.handleOf, so.properties, so.free]) {
    t.throws(() => f(new Float64Array(2)), { instanceOf: TypeError, code: 'ERR_SHM_NOT_SHARED' })
    t.throws(() => f(new Map()), { instanceOf: TypeError, code: 'ERR_SHM_NOT_SHARED' })
  }
  t.false(so.close(new Float64Array(2)))
  t.false(so.isShared(null))
})

test('user names: validated, exclusive, and a clash removes nothing', (t) => {
  for (const name of ['', '.x', '-x', 'a/b', 'a b', 'é', 'x'.repeat(26)]) {
    t.throws(() => so.alloc('float64', 1, { name }), { instanceOf: TypeError, code: 'ERR_SHM_NAME' }, name)
  }
  t.throws(() => so.alloc('float64', 1, { name: 5 }), { code: 'ERR_SHM_NAME' })
  const name = `errors-test-${process.pid}`
  const x = so.share(Float64Array.from([1, 2]), { name })
  t.is(so.properties(x).id, name)
  t.throws(() => so.alloc('float64', 1, { name }), { code: 'ERR_SHM_EXISTS' })
  t.deepEqual(Array.from(so.open(so.handleOf(x))), [1, 2], 'the clash left the first segment alone')
  so.close(x)
})

test('a closed vector throws ERR_SHM_CLOSED where a live one is needed', (t) => {
  const x = so.share(Float64Array.from([1]))
  so.close(x)
  t.throws(() => so.properties(x), { code: 'ERR_SHM_CLOSED' })
  t.throws(() => so.unshare(x), { code: 'ERR_SHM_CLOSED' })
  t.throws(() => JSON.stringify({ x }), { code: 'ERR_SHM_CLOSED' })
  // An ArrayBuffer is detached; a SharedArrayBuffer cannot be, and reads zero pages.
  if (can.sharedBuffers) t.deepEqual(Array.from(x), [0])
  else t.is(x.length, 0)
})

// A segment that is not ours, or is ours but corrupt, under our prefix.
function foreignSegment(bytes) {
  const id = `errtest${randomBytes(6).toString('hex')}`
  fs.writeFileSync(`/dev/shm/sobj.${id}`, bytes, { mode: 0o600 })
  return id
}

when(can.shmFiles, test)('segments that are not ours or are corrupt give ERR_SHM_BAD_HEADER and are left in place', (t) => {
  const real = so.share(Float64Array.from([1, 2, 3]), { attributes: { a: 1 }, named: true })
  const good = fs.readFileSync(`/dev/shm/sobj.${so.properties(real).id}`)
  so.close(real)
  const corrupt = (at, value) => {
    const b = Buffer.from(good)
    b.writeUInt8(value, at)
    return b
  }
  const cases = {
    garbage: randomBytes(4096),
    tooSmall: good.subarray(0, 100),
    magic: corrupt(0, 0x58),
    version: corrupt(8, 9),
    kind: corrupt(12, 200),
    flags: corrupt(14, 0x80),
    lengthPastEnd: corrupt(23, 1),
    dataOffset: corrupt(32, 0),
    attributesPastData: corrupt(52, 250),
    // The last 8 bytes are the control word: cutting into the data takes more.
    truncated: good.subarray(0, good.length - 16),
  }
  for (const [what, bytes] of Object.entries(cases)) {
    const id = foreignSegment(bytes)
    try {
      const gen = good.readBigUInt64LE(40).toString(16).padStart(16, '0')
      t.throws(() => so.open(`sobj1:${id}:${gen}`), { code: 'ERR_SHM_BAD_HEADER' }, what)
      t.throws(() => so.mapSharedMemory(id), { code: 'ERR_SHM_BAD_HEADER' }, what)
      t.false(so.list().some((s) => s.id === id), `${what}: not listed as ours`)
      so.sweep()
      t.true(fs.existsSync(`/dev/shm/sobj.${id}`), `${what}: still there after a failed open and a sweep`)
    } finally {
      fs.rmSync(`/dev/shm/sobj.${id}`)
    }
  }
})

test('a handle whose generation does not match names a segment that is gone', (t) => {
  const x = so.share(Float64Array.from([1]))
  const [tag, id] = so.handleOf(x).split(':')
  t.throws(() => so.open(`${tag}:${id}:00000000000000ff`), { code: 'ERR_SHM_NOT_FOUND' })
  t.is(x[0], 1)
  so.close(x)
})

when(can.shmFiles, test)('another user’s segment gives ERR_SHM_PERMISSION', async (t) => {
  if (process.getuid() === 0) {
    // Root reads anything; check that segments are created 0600 instead.
    const x = so.share(Float64Array.from([1]), { named: true })
    const mode = fs.statSync(`/dev/shm/sobj.${so.properties(x).id}`).mode & 0o777
    t.is(mode, 0o600)
    so.close(x)
    return
  }
  const id = foreignSegment(Buffer.alloc(0))
  fs.chmodSync(`/dev/shm/sobj.${id}`, 0o000)
  try {
    t.throws(() => so.mapSharedMemory(id), { code: 'ERR_SHM_PERMISSION' })
  } finally {
    fs.rmSync(`/dev/shm/sobj.${id}`)
  }
})

when(can.smallShm, test)('a small /dev/shm gives ERR_SHM_NO_SPACE at creation, never a SIGBUS later', async (t) => {
  // A private mount namespace with a 16 MiB tmpfs, as in a Docker container.
  const inner = `mount -t tmpfs -o size=16m tmpfs /dev/shm && exec "${process.execPath}" "${fixture('no-space.mjs')}"`
  const cmd = process.getuid() === 0 ? ['unshare', ['-m', 'sh', '-c', inner]] : ['sudo', ['-n', 'unshare', '-m', 'sh', '-c', inner]]
  const { stdout } = await run(cmd[0], cmd[1])
  const r = JSON.parse(stdout)
  t.deepEqual(r.small, { ok: true, first: 1.5 })
  t.deepEqual(r.unnamed64, { ok: true, length: (64 * 1024 * 1024) / 8, last: 2.5 }, 'an unnamed segment is not limited by /dev/shm')
  t.false(r.tooBigAlloc.ok)
  t.is(r.tooBigAlloc.code, 'ERR_SHM_NO_SPACE')
  t.regex(r.tooBigAlloc.message, /needs 32\.0 MiB/)
  t.regex(r.tooBigAlloc.message, /free of 16\.0 MiB/)
  t.regex(r.tooBigAlloc.message, /--shm-size/)
  t.is(r.tooBigShare.code, 'ERR_SHM_NO_SPACE')
  t.is(r.partlyFits.code, 'ERR_SHM_NO_SPACE', 'a copy that runs out half way is refused too')
  t.deepEqual(r.leftover, [], 'failed creations leave nothing behind (the small vector is unnamed: no file)')
})

test('a child keeps running after every kind of bad input', async (t) => {
  const child = await spawnChild()
  const codes = await child.run((so) => {
    const out = []
    for (const f of [() => so.open('nope'), () => so.open('sobj1:zz:0000000000000001'), () => so.alloc('float64', -1), () => so.mapSharedMemory('zz')]) {
      try {
        f()
      } catch (e) {
        out.push(e.code)
      }
    }
    return out
  })
  t.deepEqual(codes, ['ERR_SHM_INVALID_HANDLE', 'ERR_SHM_NOT_FOUND', 'ERR_OUT_OF_RANGE', 'ERR_SHM_NOT_FOUND'])
  t.is(await child.run(() => 'alive'), 'alive')
  await child.exit()
})

test('every error code is defined once and exported', (t) => {
  t.like(so.codes, {
    NOT_FOUND: 'ERR_SHM_NOT_FOUND',
    NO_SPACE: 'ERR_SHM_NO_SPACE',
    INVALID_HANDLE: 'ERR_SHM_INVALID_HANDLE',
    BAD_HEADER: 'ERR_SHM_BAD_HEADER',
    CLOSED: 'ERR_SHM_CLOSED',
    EXISTS: 'ERR_SHM_EXISTS',
    PERMISSION: 'ERR_SHM_PERMISSION',
    NAME: 'ERR_SHM_NAME',
    EXTERNAL_BUFFERS: 'ERR_SHM_EXTERNAL_BUFFERS',
  })
})
