// pkgconfig() and include/sharedobject.h: a C program built with nothing but the flags the
// package gives reads a segment that JavaScript shared, and rejects a corrupt one.
import test from 'ava'
import { execFile } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import so from '@sharedobject/core'
import { can, when } from './helpers.mjs'

const run = promisify(execFile)
const source = fileURLToPath(new URL('./fixtures/read_segment.c', import.meta.url))

// sharedobject.h error codes the reader prints.
const SOBJ_E_MAGIC = -3

// The C reader opens the path sobj_handle_path() gives; the corrupt segment is a file in /dev/shm.

/** Builds the C reader with nothing but the pkgconfig flags, in a directory the test removes. */
async function buildReader(t) {
  const cppflags = so.pkgconfig('PKG_CPPFLAGS')
  t.is(so.pkgconfig('PKG_LIBS'), '')
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sobj-pkgconfig-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const exe = path.join(dir, 'read_segment')
  // The flag is one argument: no shell, so a package path with spaces still works.
  await run('gcc', ['-std=c99', '-Wall', '-Wextra', '-Werror', '-pedantic', cppflags, source, '-o', exe, '-lrt'])
  return exe
}

test('pkgconfig gives the include flag, no libraries, and refuses anything else', (t) => {
  const cppflags = so.pkgconfig('PKG_CPPFLAGS')
  t.true(cppflags.startsWith('-I'))
  const dir = cppflags.slice(2)
  t.true(path.isAbsolute(dir))
  t.true(fs.existsSync(path.join(dir, 'sharedobject.h')))
  t.is(so.pkgconfig('PKG_LIBS'), '')
  const err = t.throws(() => so.pkgconfig('foo'), { instanceOf: TypeError })
  t.is(err.code, 'ERR_INVALID_ARG_VALUE')
})

when(can.cReader, test)('a C reader built with the pkgconfig flags reads a shared vector and rejects a corrupt segment', async (t) => {
  const exe = await buildReader(t)

  const x = so.share(new Float64Array([1.5, 2.5, 3]), { attributes: { dim: [3] } })
  t.teardown(() => so.close(x)) // a no-op once the test has closed it
  const id = so.handleOf(x).split(':')[1]
  const { stdout } = await run(exe, [so.handleOf(x)])
  t.deepEqual(JSON.parse(stdout), { kind: 1, length: 3, sum: 7, attributes: '{"dim":[3]}' })

  // A segment file full of garbage, under an id no one else uses.
  const badId = `ctest${crypto.randomBytes(8).toString('hex')}`
  const badFile = `/dev/shm/sobj.${badId}`
  const garbage = crypto.randomBytes(4096)
  garbage[0] = 0 // so that it can never start with the magic "SHAREDOB"
  fs.writeFileSync(badFile, garbage, { flag: 'wx', mode: 0o600 })
  t.teardown(() => fs.rmSync(badFile, { force: true }))
  const err = await t.throwsAsync(run(exe, [`sobj1:${badId}:0000000000000001`]))
  t.is(err.code, 3, 'exit status 3: a bad header')
  t.deepEqual(JSON.parse(err.stdout).error, SOBJ_E_MAGIC)

  t.true(so.free(x))
  t.true(so.close(x))
  t.false(so.list().some((s) => s.id === id), 'freed and closed: nothing left')
})

when(can.cReader, test)('the C reader reads string vectors, plain and with a dictionary, with sobj_string_get', async (t) => {
  const exe = await buildReader(t)
  const read = async (v) => JSON.parse((await run(exe, [so.handleOf(v)])).stdout)

  const values = ['a', null, 'ü😀', '']
  const x = so.share(values)
  t.teardown(() => so.close(x))
  const xid = so.handleOf(x).split(':')[1]
  const got = await read(x)
  t.is(got.kind, 13)
  t.is(got.length, 4)
  t.is(got.sum, null)
  t.deepEqual(got.strings, values, 'NA is null; multi-byte and astral UTF-8 and the empty string come through')

  const d = so.share(['x', 'y', 'x'], { dictionary: true })
  t.teardown(() => so.close(d))
  t.true(d.dictionary)
  const did = so.handleOf(d).split(':')[1]
  const gotD = await read(d)
  t.is(gotD.kind, 13)
  t.is(gotD.length, 3)
  t.deepEqual(gotD.strings, ['x', 'y', 'x'])
  // The owner changes a code; the C reader follows the codes of the live segment.
  d.set(1, null)
  d.set(2, 'y')
  t.deepEqual((await read(d)).strings, ['x', null, 'y'])

  t.true(so.free(x) && so.free(d))
  t.true(so.close(x))
  t.true(so.close(d))
  t.false(so.list().some((s) => s.id === xid || s.id === did))
})
