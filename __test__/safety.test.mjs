// What ordinary JavaScript, a hostile neighbour or a lying segment must never do: crash the
// process, hang it, touch unmapped memory, or remove anyone's data.
import test from 'ava'
import fs from 'node:fs'
import crypto from 'node:crypto'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import so from '@sharedobject/core'
import { run, spawnChild, can, when, readablePackage } from './helpers.mjs'

const require = createRequire(import.meta.url)
const root = fileURLToPath(new URL('..', import.meta.url))
const node = (code, opts = {}) => run(process.execPath, ['--expose-gc', '-e', code], { cwd: root, maxBuffer: 1 << 24, ...opts })
const linux = can.procfs ? test.serial : test.serial.skip

when(can.closeKeepsRange, test.serial)('transfer() of a vector’s buffer, then close(), does not crash and reads nothing unmapped', async (t) => {
  const { stdout } = await node(`
    const so = require('.')
    const x = so.share(Float64Array.from({ length: 4096 }, (_, i) => i))
    const b = x.buffer
    const moved = typeof b.transfer === 'function' ? b.transfer() : structuredClone(b, { transfer: b instanceof ArrayBuffer ? [b] : [] })
    so.close(x)
    const v = new Float64Array(moved)
    let sum = 0
    for (let i = 0; i < v.length; i++) sum += v[i]
    v[1] = 5
    console.log(JSON.stringify({ ok: true, length: v.length, sum }))
  `)
  const r = JSON.parse(stdout)
  t.true(r.ok)
  t.true(r.sum === 0 || r.sum === (4095 * 4096) / 2, 'either the data or zero pages, never a fault')
})

when(can.closeKeepsRange, test.serial)('close() while a thread-pool job writes into the vector does not crash', async (t) => {
  const { stdout } = await node(`
    const so = require('.')
    const crypto = require('node:crypto')
    let done = 0
    for (let i = 0; i < 50; i++) {
      const x = so.alloc('uint8', 1 << 20)
      crypto.randomFill(x, () => { done++ })
      so.close(x)
    }
    // Wait for every job (an emulated machine is slow), collecting meanwhile.
    const end = Date.now() + 60000
    const check = () => { global.gc(); if (done === 50 || Date.now() > end) console.log(JSON.stringify({ done })); else setTimeout(check, 20) }
    setTimeout(check, 20)
  `)
  t.is(JSON.parse(stdout).done, 50)
})

test.serial('a segment’s close refuses another buffer, and cannot unmap a live view', (t) => {
  const { metaOf } = require(`${root}/dist/src/views.js`)
  const { native } = require(`${root}/dist/src/native.js`)
  const x = so.share(Float64Array.from([1, 2, 3]))
  const y = so.share(Float64Array.from([4, 5, 6]))
  const { segment } = metaOf(x)
  t.throws(() => native.segmentClose(segment, new ArrayBuffer(24)), { code: 'ERR_INVALID_ARG_VALUE' })
  // A SharedArrayBuffer is never detached, so only an ArrayBuffer is checked against the segment.
  if (y.buffer instanceof ArrayBuffer) t.throws(() => native.segmentClose(segment, y.buffer), { code: 'ERR_INVALID_ARG_VALUE' })
  // What is not a segment the native side handed out is refused, never read.
  for (const other of [{}, null, 7, y.buffer]) {
    t.throws(() => native.segmentClose(other, x.buffer))
    t.throws(() => native.segmentIsLive(other))
  }
  t.deepEqual(Array.from(x), [1, 2, 3])
  t.deepEqual(Array.from(y), [4, 5, 6])
  t.true(native.segmentIsLive(segment))
  so.close(x)
  t.false(native.segmentIsLive(segment))
  t.deepEqual(Array.from(y), [4, 5, 6])
  so.close(y)
})

test.serial('a handed-out handle opens after forced GC in the owner, for 1,000 vectors', async (t) => {
  const child = await spawnChild()
  const handles = await child.run((so) => {
    const hs = []
    for (let i = 0; i < 1000; i++) hs.push(so.handleOf(so.share(Float64Array.of(i))))
    for (let i = 0; i < 5; i++) global.gc()
    return hs
  })
  await child.run(async () => {
    for (let i = 0; i < 5; i++) {
      global.gc()
      await new Promise((r) => setTimeout(r, 5))
    }
  })
  let ok = 0
  for (const [i, h] of handles.entries()) {
    const v = so.open(h)
    if (v[0] === i) ok++
    so.close(v)
  }
  t.is(ok, 1000)
  await child.exit()
})

test.serial('a worker that returns handleOf(alloc(...)) leaves a handle that opens', async (t) => {
  const { stdout } = await node(`
    const so = require('.')
    const { Worker } = require('node:worker_threads')
    // An unnamed and a named vector: a worker's exit must not remove the process's names either.
    const w = new Worker("const so = require(process.cwd()); const x = so.alloc('int32', 4); x[3] = 9; const y = so.alloc('int32', 4, { named: true }); y[3] = 8; require('node:worker_threads').parentPort.postMessage([so.handleOf(x), so.handleOf(y)])", { eval: true })
    w.once('message', async ([h, hn]) => {
      await new Promise((r) => w.once('exit', r))
      global.gc()
      console.log(JSON.stringify({ v: so.open(h)[3], named: so.open(hn)[3] }))
      so.free(h)
      so.free(hn)
      process.exit(0)
    })
  `)
  t.deepEqual(JSON.parse(stdout), { v: 9, named: 8 })
})

test.serial('open(h) without options gives the sharer’s mode, never another mode this process maps', (t) => {
  const x = so.share(Float64Array.from([1, 2]))
  const h = so.handleOf(x)
  const cow = so.open(h, { copyOnWrite: true })
  const plain = so.open(h)
  t.is(plain.buffer, x.buffer)
  plain[0] = 7
  t.is(x[0], 7)
  t.not(cow.buffer, x.buffer)
  t.is(so.open(h, { copyOnWrite: false }).buffer, x.buffer, 'one buffer per segment and mode in a thread')
  so.close(cow)
  so.close(x)
})

test.serial('allocateSharedMemory from two threads returns each its own id', async (t) => {
  const { stdout } = await node(`
    const so = require('.')
    const { Worker } = require('node:worker_threads')
    const code = "const so = require(process.cwd()); const ids = []; for (let i = 0; i < 1500; i++) ids.push(so.allocateSharedMemory(8)); for (const id of ids) so.freeSharedMemory(id); require('node:worker_threads').parentPort.postMessage(ids)"
    Promise.all([0, 1].map(() => new Promise((r) => new Worker(code, { eval: true }).once('message', r)))).then((lists) => {
      const all = lists.flat()
      console.log(JSON.stringify({ total: all.length, distinct: new Set(all).size, left: so.list().filter((s) => s.developer).length }))
    })
  `)
  t.deepEqual(JSON.parse(stdout), { total: 3000, distinct: 3000, left: 0 })
})

test.serial('developer API: a segment mapped, unmapped and mapped again; close() of its buffer, then a live one', (t) => {
  const id = so.allocateSharedMemory(16)
  const a = so.mapSharedMemory(id)
  new Uint8Array(a)[0] = 3
  so.unmapSharedMemory(id)
  const b = so.mapSharedMemory(id)
  t.is(new Uint8Array(b)[0], 3)
  so.close(b)
  const c = so.mapSharedMemory(id)
  t.is(c.byteLength, 16, 'a fresh buffer, not the closed one')
  t.is(new Uint8Array(c)[0], 3)
  so.freeSharedMemory(id)
})

test.serial('free(staleHandle) leaves a newer segment of the same name alone', (t) => {
  const name = `stale-${process.pid}`
  const first = so.share(Float64Array.of(1), { name })
  const stale = so.handleOf(first)
  t.true(so.free(stale))
  so.close(first)
  const second = so.share(Float64Array.of(2), { name })
  t.false(so.free(stale))
  t.true(so.hasSharedMemory(name))
  t.is(so.open(so.handleOf(second))[0], 2)
  t.true(so.free(second))
  so.close(second)
})

test.serial('a container share that fails part-way leaves no leaf behind, persistent ones included', (t) => {
  const before = so.list().filter((s) => s.ownerPid === process.pid).length
  t.throws(() => so.share({ a: Float64Array.of(1), b: [true], c: () => 1 }, { persist: true, mustWork: true }), { code: 'ERR_INVALID_ARG_TYPE' })
  t.is(so.list().filter((s) => s.ownerPid === process.pid).length, before)
})

test.serial('deep, cyclic and self-referencing values are coded errors, not stack overflows', (t) => {
  let deep = {}
  const top = deep
  for (let i = 0; i < 20000; i++) deep = deep.n = {}
  t.throws(() => so.share(top), { code: 'ERR_OUT_OF_RANGE' })
  const cyclic = { x: Float64Array.of(1) }
  cyclic.self = cyclic
  t.throws(() => so.share(cyclic), { code: 'ERR_INVALID_ARG_VALUE' })
  const deepText = `${'{"n":'.repeat(20000)}{}${'}'.repeat(20000)}`
  t.throws(() => so.revive(JSON.parse(deepText)), { code: 'ERR_OUT_OF_RANGE' })
})

test.serial('a container’s handle opens in the thread that made it', (t) => {
  const df = so.share({ x: Float64Array.of(1, 2), tag: ['a', 'b'] })
  const h = so.handleOf(df)
  const again = so.open(h)
  t.is(again.x.buffer, df.x.buffer)
  t.deepEqual(again.tag.toArray(), ['a', 'b'])
  so.free(df)
  so.close(df)
})

test.serial('developer API arguments of the wrong type are coded errors at once', (t) => {
  const start = process.hrtime.bigint()
  t.throws(() => so.hasSharedMemory(new Float64Array(1e7)), { code: 'ERR_SHM_NAME', instanceOf: TypeError })
  t.true(Number(process.hrtime.bigint() - start) < 1e9, 'the argument is not serialised into the message')
  for (const f of ['mapSharedMemory', 'unmapSharedMemory', 'freeSharedMemory', 'getSharedMemorySize']) {
    t.throws(() => so[f](42), { code: 'ERR_SHM_NAME' }, f)
  }
  t.throws(() => so.allocateSharedMemory('8'), { code: 'ERR_OUT_OF_RANGE' })
})

linux('named segments that lie are coded errors: corrupt attributes, a self-referencing manifest, bad string offsets, a 1 TiB claim', (t) => {
  const patch = (id, at, bytes) => {
    const fd = fs.openSync(`/dev/shm/sobj.${id}`, 'r+')
    fs.writeSync(fd, bytes, 0, bytes.length, at)
    fs.closeSync(fd)
  }
  // Attributes that are not JSON.
  const a = so.share(Float64Array.of(1), { attributes: { k: 1 }, named: true })
  const ha = so.handleOf(a)
  const aid = so.properties(a).id
  so.close(a)
  patch(aid, 128, Buffer.from('x'))
  t.throws(() => so.properties(so.open(ha)), { code: 'ERR_SHM_BAD_HEADER' })
  so.free(ha)
  // A string vector whose offsets point outside its values.
  const s = so.share(['abc', 'de'], { named: true })
  const id = so.properties(s).id
  const layout = fs.readFileSync(`/dev/shm/sobj.${id}`)
  const dataOffset = Number(layout.readBigUInt64LE(32))
  const offsets = Number(layout.readBigUInt64LE(88))
  patch(id, dataOffset + offsets + 4, Buffer.from(Int32Array.of(1 << 20).buffer))
  t.throws(() => s.bytes(0), { code: 'ERR_SHM_BAD_HEADER' })
  t.throws(() => s.get(0), { code: 'ERR_SHM_BAD_HEADER' })
  so.free(s)
  so.close(s)
  // A sparse segment whose header claims 1 TiB of data.
  const big = so.alloc('uint8', 8, { named: true })
  const hb = so.handleOf(big)
  const bid = so.properties(big).id
  so.close(big)
  const tib = 2 ** 40
  let sparse = true
  try {
    fs.truncateSync(`/dev/shm/sobj.${bid}`, 256 + tib)
  } catch {
    sparse = false
  }
  const claim = Buffer.alloc(16)
  claim.writeBigUInt64LE(BigInt(tib), 0)
  claim.writeBigUInt64LE(BigInt(tib), 8)
  patch(bid, 16, claim)
  // A sparse file is refused as holes in a reserved segment (ERR_SHM_BAD_HEADER), or as more
  // than this process can hold.
  const codes = sparse ? ['ERR_OUT_OF_RANGE', 'ERR_SHM_NO_SPACE', 'ERR_SHM_BAD_HEADER'] : ['ERR_SHM_BAD_HEADER']
  const e1 = t.throws(() => so.open(hb, { copy: true }))
  t.true(codes.includes(e1.code), e1.code)
  // Where one buffer may hold 2^53 bytes (Node 22 and later) and the file really is sparse, the
  // claim is true: a 1 TiB view of holes opens. Either way, never a crash.
  let e2
  try {
    const v = so.open(hb)
    e2 = { code: v.length === tib ? 'opened' : `opened ${v.length}` }
    so.close(v)
  } catch (e) {
    e2 = e
  }
  t.true(codes.includes(e2.code) || (sparse && e2.code === 'opened'), e2.code)
  so.free(bid)
})

linux('a manifest that names itself is refused, not followed forever', (t) => {
  const df = so.share({ x: Float64Array.of(1) })
  const h = so.handleOf(df)
  const id = h.split(':')[1]
  // An unnamed manifest cannot be patched from outside; make a named one by hand instead.
  const selfId = `selfref${crypto.randomBytes(4).toString('hex')}`
  const attrs = Buffer.from(JSON.stringify({ $container: { me: { $sharedobject: `sobj1:${selfId}:0000000000000001` } } }))
  const head = Buffer.alloc(128)
  head.write('SHAREDOB', 0, 'latin1')
  head.writeUInt16LE(1, 8)
  head.writeUInt16LE(128, 10)
  head.writeUInt16LE(14, 12)
  head.writeBigUInt64LE(BigInt(Math.ceil((128 + attrs.length) / 64) * 64), 32)
  head.writeBigUInt64LE(1n, 40)
  head.writeUInt32LE(process.pid, 48)
  head.writeUInt32LE(attrs.length, 52)
  const total = Number(head.readBigUInt64LE(32))
  const file = Buffer.alloc(total)
  head.copy(file, 0)
  attrs.copy(file, 128)
  fs.writeFileSync(`/dev/shm/sobj.${selfId}`, file, { mode: 0o600 })
  t.throws(() => so.open(`sobj1:${selfId}:0000000000000001`), { code: 'ERR_SHM_BAD_HEADER' })
  t.true(fs.existsSync(`/dev/shm/sobj.${selfId}`), 'a failed open removes nothing')
  fs.rmSync(`/dev/shm/sobj.${selfId}`)
  t.truthy(id)
  so.free(df)
  so.close(df)
})

linux('a FIFO, a symlink and another user’s 0666 file named like segments give coded errors within a second and stay', async (t) => {
  const tag = crypto.randomBytes(4).toString('hex')
  const fifo = `fifo${tag}`
  const link = `link${tag}`
  const foreign = `foreign${tag}`
  const target = so.share(Float64Array.of(1), { named: true })
  try {
    await run('mkfifo', [`/dev/shm/sobj.${fifo}`])
    fs.symlinkSync(`/dev/shm/sobj.${so.properties(target).id}`, `/dev/shm/sobj.${link}`)
    fs.writeFileSync(`/dev/shm/sobj.${foreign}`, Buffer.alloc(4096), { mode: 0o666 })
    fs.chmodSync(`/dev/shm/sobj.${foreign}`, 0o666)
    if (can.otherUser) fs.chownSync(`/dev/shm/sobj.${foreign}`, can.otherUser.uid, can.otherUser.gid)
    const start = Date.now()
    const { stdout } = await node(`
      const so = require('.')
      const out = {}
      for (const id of ${JSON.stringify([fifo, link, foreign])}) {
        const r = []
        for (const f of [() => so.open('sobj1:' + id + ':0000000000000001'), () => so.mapSharedMemory(id)]) {
          try { f(); r.push('opened') } catch (e) { r.push(e.code) }
        }
        out[id] = r
      }
      so.list(); so.sweep(); so.initialSharedObjectPackageData()
      console.log(JSON.stringify(out))
    `, { timeout: 10000 })
    t.true(Date.now() - start < 5000)
    const out = JSON.parse(stdout)
    t.deepEqual(out[fifo], ['ERR_SHM_PERMISSION', 'ERR_SHM_PERMISSION'])
    t.deepEqual(out[link], ['ERR_SHM_PERMISSION', 'ERR_SHM_PERMISSION'])
    if (can.otherUser) t.deepEqual(out[foreign], ['ERR_SHM_PERMISSION', 'ERR_SHM_PERMISSION'])
    for (const id of [fifo, link, foreign]) t.true(fs.lstatSync(`/dev/shm/sobj.${id}`) !== undefined, `${id} is still there`)
  } finally {
    for (const id of [fifo, link, foreign]) fs.rmSync(`/dev/shm/sobj.${id}`, { force: true })
    so.free(target)
    so.close(target)
  }
})

;(can.otherUser ? test.serial : test.serial.skip)('another user cannot open an unnamed segment: ERR_SHM_PERMISSION from /proc', async (t) => {
  const x = so.share(Float64Array.of(1, 2))
  const h = so.handleOf(x)
  const { uid, gid } = can.otherUser
  const pkg = readablePackage()
  try {
    const code = `try { require(${JSON.stringify(pkg.dir)}).open(${JSON.stringify(h)}); console.log('opened') } catch (e) { console.log(e.code) }`
    const { stdout } = await run('setpriv', [`--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', pkg.node, '-e', code], { cwd: '/' })
    t.is(stdout.trim(), 'ERR_SHM_PERMISSION')
  } finally {
    fs.rmSync(pkg.dir, { recursive: true, force: true })
    so.free(x)
    so.close(x)
  }
})

;(can.pidNamespaces ? test.serial : test.serial.skip)('a receiver in another pid namespace is told to share with { named: true }', async (t) => {
  const x = so.share(Float64Array.of(1, 2))
  const h = so.handleOf(x)
  const code = `try { require(${JSON.stringify(root)}).open(${JSON.stringify(h)}); console.log(JSON.stringify({ opened: true })) } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })) }`
  const { stdout } = await run('unshare', ['--pid', '--fork', '--mount-proc', process.execPath, '-e', code])
  const r = JSON.parse(stdout)
  t.is(r.code, 'ERR_SHM_NOT_FOUND')
  t.regex(r.message, /named: true/)
  const named = so.share(Float64Array.of(3), { named: true })
  const hn = so.handleOf(named)
  const ok = await run('unshare', ['--pid', '--fork', '--mount-proc', process.execPath, '-e', `console.log(require(${JSON.stringify(root)}).open(${JSON.stringify(hn)})[0])`])
  t.is(ok.stdout.trim(), '3', 'a named segment opens across pid namespaces')
  for (const v of [x, named]) {
    so.free(v)
    so.close(v)
  }
})
