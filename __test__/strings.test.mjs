import test from 'ava'
import so from '@sharedobject/core'
import { sharedChild, child as script, exitedCleanly, binding } from './helpers.mjs'

// One child for the whole file, started before the first test and ended after the last.
const child = sharedChild(test)

const TRICKY = ['', 'plain', null, 'ü ñ ß', '日本語テキスト', '😀 astral 𝕏', 'a\u0000b', 'x'.repeat(3 * 1024 * 1024) + 'é', null, '']

async function roundTrip(t, values, opts) {
  const x = so.share(values, opts)
  t.true(x instanceof so.SharedStringVector)
  const expected = values.map((v) => v ?? null)
  t.deepEqual(x.toArray(), expected)
  const seen = await child.run((so, h) => {
    const v = so.open(h)
    const r = { values: v.toArray(), each: [...v], dict: v.dictionary, len: v.length }
    so.close(v)
    return r
  }, so.handleOf(x))
  t.deepEqual(seen.values, expected)
  t.deepEqual(seen.each, expected)
  t.is(seen.len, values.length)
  t.is(seen.dict, !!opts?.dictionary)
  return x
}

for (const dictionary of [false, true]) {
  const how = dictionary ? 'with a dictionary' : 'plain'
  test.serial(`empty, NA, multi-byte, astral, NUL and multi-megabyte strings round-trip exactly (${how})`, async (t) => {
    so.close(await roundTrip(t, TRICKY, { dictionary }))
  })

  test.serial(`zero-length and all-NA string vectors (${how})`, async (t) => {
    // Without a kind these would be containers: an empty array, and an array of nothing but NA.
    so.close(await roundTrip(t, [], { dictionary, kind: 'string' }))
    so.close(await roundTrip(t, [null, undefined, null], { dictionary, kind: 'string' }))
    so.close(await roundTrip(t, [''], { dictionary }))
  })

  test.serial(`get, bytes and indexOf (${how})`, (t) => {
    const x = so.share(['alpha', 'βeta', null, 'alpha', ''], { dictionary })
    t.is(x.get(1), 'βeta')
    t.is(x.get(2), null)
    const b = x.bytes(1)
    t.true(b instanceof Uint8Array)
    t.is(b.buffer, x.buffer, 'bytes(i) is a view of shared memory, not a copy')
    t.is(Buffer.from(b).toString('utf8'), 'βeta')
    t.is(x.bytes(2), null)
    t.is(x.bytes(4).length, 0)
    t.is(x.indexOf('alpha'), 0)
    t.is(x.indexOf('βeta'), 1)
    t.is(x.indexOf(''), 4)
    t.is(x.indexOf(null), 2)
    t.is(x.indexOf('gamma'), -1)
    t.is(x.indexOf('alph'), -1)
    t.true(x.includes('alpha'))
    for (const i of [-1, 5, 0.5]) {
      t.throws(() => x.get(i), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' })
      t.throws(() => x.bytes(i), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' })
    }
    so.close(x)
    t.is(x.length, 0)
    t.throws(() => x.get(0), { code: 'ERR_SHM_CLOSED' })
  })
}

test.serial('plain string vectors are immutable with a clear error', (t) => {
  const x = so.share(['a', 'b'])
  t.throws(() => x.set(0, 'b'), { instanceOf: TypeError, code: 'ERR_SHM_READ_ONLY' })
  t.deepEqual(x.toArray(), ['a', 'b'])
  so.close(x)
})

test.serial('a dictionary vector stores unique strings once and set() takes strings it holds', async (t) => {
  const src = Array.from({ length: 1000 }, (_, i) => ['red', 'green', 'blue'][i % 3])
  const plain = so.share(src)
  const dict = so.share(src, { dictionary: true })
  t.true(so.properties(dict).dictionary)
  t.true(so.properties(dict).byteLength < so.properties(plain).byteLength / 1.5)
  dict.set(0, 'blue')
  dict.set(1, null)
  t.throws(() => dict.set(2, 'purple'), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_VALUE' })
  t.throws(() => dict.set(2, 5), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
  const seen = await child.run((so, h) => {
    const v = so.open(h)
    const r = v.toArray().slice(0, 4)
    v.set(3, 'green')
    so.close(v)
    return r
  }, so.handleOf(dict))
  t.deepEqual(seen, ['blue', null, 'blue', 'red'])
  t.is(dict.get(3), 'green', 'the child’s set is seen here')
  so.close(plain)
  so.close(dict)
})

test.serial('R’s string scenarios: character(1000) with one unique, 256 and 257 uniques', async (t) => {
  const ones = so.share(new Array(1000).fill(''), { dictionary: true })
  t.is(ones.length, 1000)
  t.true(ones.toArray().every((s) => s === ''))
  for (const k of [256, 257]) {
    const src = Array.from({ length: 2 * k }, (_, i) => `s${i % k}`)
    const x = so.share(src, { dictionary: true })
    t.deepEqual(x.toArray(), src)
    t.is(x.indexOf(`s${k - 1}`), k - 1)
    const there = await child.run((so, h, k) => so.open(h).get(2 * k - 1), so.handleOf(x), k)
    t.is(there, `s${k - 1}`)
    so.close(x)
  }
  so.close(ones)
})

test.serial('non-string values in a string vector are refused, naming the element', (t) => {
  // Segments of earlier tests that a child still maps are still there where names last while
  // mapped (Windows); only new ones would be this test's.
  const before = new Set(so.list().map((s) => s.id))
  for (const bad of [['a', 5], ['a', {}], ['a', true], ['a', Symbol('s')], [1n]]) {
    const err = t.throws(() => so.share(bad, { kind: 'string' }), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
    t.regex(err.message, /element \d+ is/)
  }
  const mixed = so.share(['a', 5])
  t.false(so.isShared(mixed), 'without kind, a mixed array is a container of plain values')
  t.deepEqual(mixed, ['a', 5])
  const made = so.list().filter((s) => s.ownerPid === process.pid && s.kind === 'string' && !before.has(s.id))
  t.deepEqual(made, [], 'refusals leave no segment')
})

test.serial('share(array, { kind }) makes the vector asked for', (t) => {
  const i32 = so.share([1, 2, 3], { kind: 'int32' })
  t.true(i32 instanceof Int32Array)
  t.deepEqual(Array.from(i32), [1, 2, 3])
  const big = so.share([1n, -2n], { kind: 'int64' })
  t.deepEqual(Array.from(big), [1n, -2n])
  t.throws(() => so.share([1, 'x'], { kind: 'float64' }), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => so.share([1, 2], { kind: 'int64' }), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => so.share([true, 'x'], { kind: 'logical' }), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => so.share([1], { kind: 'complex' }), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_VALUE' })
  t.throws(() => so.share({ a: [1] }, { kind: 'float64' }), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
  so.close(i32)
  so.close(big)
})

test.serial('unshare gives a string array; attributes travel', async (t) => {
  const x = so.share(['x', null, 'z'], { attributes: { levels: ['x', 'z'] } })
  t.deepEqual(so.unshare(x), ['x', null, 'z'])
  const attrs = await child.run((so, h) => so.properties(so.open(h)).attributes, so.handleOf(x))
  t.deepEqual(attrs, { levels: ['x', 'z'] })
  so.close(x)
})

// The encoder joins blocks of strings and keeps the result only when it is one byte per UTF-16
// unit; the reader copies ASCII runs as one string, cuts well-formed UTF-8 by UTF-16 units, and
// decodes anything else string by string. Each kind of text, alone and mixed within a block.
const FAST_PATHS = {
  ascii: (n) => Array.from({ length: n }, (_, i) => `item-${i}`),
  latin1: (n) => Array.from({ length: n }, (_, i) => String.fromCharCode(0x80 + (i % 128)).repeat(1 + (i % 5)) + 'ÿ'),
  'non-ASCII': (n) => Array.from({ length: n }, (_, i) => `${'é'.repeat(i % 4)}日本${i}😀`),
  'lone surrogates': (n) => Array.from({ length: n }, (_, i) => ['\ud800', 'x\udc00', 'a\ud83d', '\ude00b', '😀', '\udbff\udbff'][i % 6]),
  'empty strings and NA': (n) => Array.from({ length: n }, (_, i) => (i % 3 === 0 ? '' : i % 3 === 1 ? null : `s${i}`)),
  'one non-ASCII string among ASCII': (n) => Array.from({ length: n }, (_, i) => (i === n >> 1 ? 'ü' : `a${i}`)),
  // Sized from the first block, the buffer must grow for what follows.
  'short first, long later': (n) => Array.from({ length: n }, (_, i) => (i < 256 ? 'a' : `${'ü'.repeat(200 + (i % 300))}${i}`)),
  'long and short': (n) => Array.from({ length: n }, (_, i) => (i % 500 === 0 ? 'λ'.repeat(70000) : i % 2 ? 'x'.repeat(i % 60) : `${i}`)),
}
// What a string becomes in UTF-8 and back: a lone surrogate is U+FFFD, as with TextEncoder.
const expected = (values) => values.map((v) => (v === null || v === undefined ? null : Buffer.from(v, 'utf8').toString('utf8')))

for (const [name, make] of Object.entries(FAST_PATHS)) {
  test.serial(`${name}: share, toArray, get in order and at random, bytes, and a child's read agree`, async (t) => {
    const values = make(3000)
    const want = expected(values)
    for (const dictionary of [false, true]) {
      const x = so.share(values, { dictionary, kind: 'string' })
      t.deepEqual(x.toArray(), want)
      const inOrder = []
      for (let i = 0; i < x.length; i++) inOrder.push(x.get(i))
      t.deepEqual(inOrder, want)
      for (let r = 0; r < 300; r++) {
        const i = (r * 7919) % x.length
        t.is(x.get(i), want[i])
      }
      for (let i = 0; i < x.length; i += 37) {
        const b = x.bytes(i)
        t.deepEqual(b === null ? null : Buffer.from(b), values[i] === null ? null : Buffer.from(values[i], 'utf8'))
      }
      const seen = await child.run((so, h) => {
        const v = so.open(h)
        const each = []
        for (let i = 0; i < v.length; i++) each.push(v.get(i))
        const r = { all: v.toArray(), each }
        so.close(v)
        return r
      }, so.handleOf(x))
      t.deepEqual(seen.all, want)
      t.deepEqual(seen.each, want)
      so.close(x)
    }
  })
}

test.serial('a string vector of a million strings round-trips, ASCII and not', (t) => {
  // Latin-1 strings among others that need UTF-16, and NA: each is cut from its own text.
  const mixed = (n) => Array.from({ length: n }, (_, i) => (i % 10 === 9 ? null : `item-${i}-${'é'.repeat(i % 4)}${i % 7 === 0 ? '日本' : ''}`))
  for (const make of [FAST_PATHS.ascii, FAST_PATHS['non-ASCII'], mixed]) {
    const values = make(1e6)
    const x = so.share(values)
    const all = x.toArray()
    t.is(all.length, values.length)
    t.true(all.every((s, i) => s === values[i]))
    t.is(x.get(999_999), values[999_999])
    // In order, through blocks that grow to hundreds of thousands of strings.
    let same = true
    for (let i = 0; i < values.length; i++) same &&= x.get(i) === values[i]
    t.true(same, 'get(i) in order')
    so.close(x)
  }
})

// Reads in order cut ASCII strings from windows of a few megabytes of the values, and toArray
// from blocks as big: strings across a window's end, a non-ASCII stretch between ASCII ones,
// strings longer than a window, and reads in order that skip back and forth.
test.serial('reads in order across many megabytes of values, ASCII with non-ASCII stretches, match the strings shared', async (t) => {
  const n = 600_000
  const values = Array.from({ length: n }, (_, i) =>
    i % 13 === 0 ? null : i >= 200_000 && i < 200_050 ? `ü${i}日本` : i % 100_003 === 7 ? `long-${i}-`.repeat(300_000) : `row-${i}-${'x'.repeat(i % 9)}`,
  )
  const x = so.share(values)
  const h = so.handleOf(x)
  const check = (so, h) => {
    const v = so.open(h)
    const each = []
    for (let i = 0; i < v.length; i++) each.push(v.get(i))
    // A read that goes back, then on in order again from there.
    const again = []
    for (let i = 199_990; i < 200_100; i++) again.push(v.get(i))
    const jumps = [599_999, 0, 300_000, 300_001, 7, 8]
    const r = { all: v.toArray(), each, again, jumped: jumps.map((i) => v.get(i)) }
    so.close(v)
    return r
  }
  for (const seen of [check(so, h), await child.run(check, h)]) {
    t.is(seen.all.length, n)
    t.true(seen.all.every((s, i) => s === values[i]), 'toArray')
    t.true(seen.each.every((s, i) => s === values[i]), 'get in order')
    t.deepEqual(seen.again, values.slice(199_990, 200_100))
    t.deepEqual(seen.jumped, [599_999, 0, 300_000, 300_001, 7, 8].map((i) => values[i]))
  }
  so.close(x)
})

test.serial('a string vector closed in a worker reads as closed in the main thread, mid-way through reads in order', async (t) => {
  const r = await script(`
    const { Worker } = require('node:worker_threads')
    const x = so.share(Array.from({ length: 100000 }, (_, i) => 'item-' + i))
    const out = { before: [] }
    for (let i = 0; i < 50; i++) out.before.push(x.get(i))
    const w = new Worker(\`
      const so = require(process.cwd())
      const { workerData, parentPort } = require('node:worker_threads')
      so.close(so.open(workerData))
      parentPort.postMessage('closed')
    \`, { eval: true, workerData: so.handleOf(x) })
    w.once('message', () => {
      out.length = x.length
      try { x.get(50); out.get = 'none' } catch (e) { out.get = e.code }
      try { x.toArray(); out.toArray = 'none' } catch (e) { out.toArray = e.code }
      console.log(JSON.stringify(out))
    })
  `)
  exitedCleanly(t, r)
  const out = r.json()
  t.deepEqual(out.before, Array.from({ length: 50 }, (_, i) => 'item-' + i))
  t.is(out.length, 0)
  t.is(out.get, 'ERR_SHM_CLOSED')
  t.is(out.toArray, 'ERR_SHM_CLOSED')
})

test.serial('a factor and a dictionary vector read through the same decoder', (t) => {
  const levels = ['', 'plain', 'ü', '日本', '😀', 'x'.repeat(100)]
  const codes = Int32Array.from({ length: 5000 }, (_, i) => (i % 11 === 0 ? -1 : i % levels.length))
  const f = so.share(so.factor(codes, levels))
  t.deepEqual(f.levels.toArray(), levels)
  t.deepEqual(
    f.toArray(),
    Array.from(codes, (c) => (c < 0 ? null : levels[c])),
  )
  so.close(f)
})

// Offsets live in shared memory: another process may rewrite them after this one opened the
// vector. Every way of reading checks them as it reads them.
test.serial('offsets a hostile writer changes after open give ERR_SHM_BAD_HEADER, not garbage or a crash', async (t) => {
  const n = 300
  for (const values of [FAST_PATHS.ascii(n), FAST_PATHS['non-ASCII'](n)]) {
    for (const [at, bad] of [
      [5, -1],
      [5, 0x7fffffff],
      [150, 1],
      [n, 1 << 30],
    ]) {
      const x = so.share(values)
      const h = so.handleOf(x)
      // The child opens first; then this process, the writer, breaks one offset.
      await child.run((so, h) => {
        globalThis.hostile = so.open(h)
      }, h)
      // The offsets follow the validity bitmap's 64-byte block (n / 8 bytes fit in one).
      new Int32Array(x.buffer, 64, n + 1)[at] = bad
      const codes = await child.run((so) => {
        const v = globalThis.hostile
        const codeOf = (f) => {
          try {
            f()
            return 'none'
          } catch (e) {
            return e.code
          }
        }
        const r = {
          toArray: codeOf(() => v.toArray()),
          get: codeOf(() => {
            for (let i = 0; i < v.length; i++) v.get(i)
          }),
          bytes: codeOf(() => {
            for (let i = 0; i < v.length; i++) v.bytes(i)
          }),
        }
        so.close(v)
        return r
      })
      t.deepEqual(codes, { toArray: 'ERR_SHM_BAD_HEADER', get: 'ERR_SHM_BAD_HEADER', bytes: 'ERR_SHM_BAD_HEADER' }, `offset ${at} set to ${bad}`)
      so.close(x)
    }
  }
})

test('the native split of a block into Latin-1 and UTF-16 texts agrees with JavaScript, and refuses bad blocks with a coded error', (t) => {
  const strings = ['a', 'é', '日本', '😀', '', 'x😀é', 'plain', 'ÿ\u0080', '\u0100']
  const values = Buffer.from(strings.join(''))
  const offsets = new Int32Array(strings.length + 1)
  for (let i = 0; i < strings.length; i++) offsets[i + 1] = offsets[i] + Buffer.byteLength(strings[i])
  const lat = Buffer.alloc(values.length)
  const wide = Buffer.alloc(2 * values.length)
  const ends = new Int32Array(strings.length + 1)
  const cut = (from, end, l) => {
    const latText = lat.latin1Slice(0, l)
    const wideText = wide.ucs2Slice(0, 2 * ends[end - from])
    const out = []
    let u = 0
    let v = 0
    for (let k = 0; k < end - from; k++) {
      const x = ends[k]
      if (x >= 0) {
        out.push(['latin1', latText.slice(u, x)])
        u = x
      } else {
        out.push(['wide', wideText.slice(v, ~x)])
        v = ~x
      }
    }
    return out
  }
  const l = binding.utf8Split(values, offsets, 0, strings.length, 0, values.length, lat, wide, ends)
  t.true(l >= 0)
  const kind = (s) => ([...s].every((c) => c.codePointAt(0) <= 0xff) ? 'latin1' : 'wide')
  t.deepEqual(cut(0, strings.length, l), strings.map((s) => [kind(s), s]))
  // A block from the third string: texts start at its first byte.
  const l2 = binding.utf8Split(values, offsets, 2, 5, offsets[2], offsets[5], lat, wide, ends)
  t.deepEqual(cut(2, 5, l2), [['wide', '日本'], ['wide', '😀'], ['latin1', '']])
  // Not UTF-8 on its own (a string cut inside a character, a lone continuation byte, an overlong
  // form, a surrogate): -1, and the caller decodes string by string.
  for (const bytes of [[0xe6, 0x97], [0x80], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xf5, 0x80, 0x80, 0x80]]) {
    const v = Buffer.from([0x61, ...bytes])
    t.is(binding.utf8Split(v, new Int32Array([0, 1, v.length]), 0, 2, 0, v.length, lat, wide, ends), -1, `bytes ${bytes}`)
  }
  // Offsets out of order or past the values: -2 less the first bad string's index.
  const bad = offsets.slice()
  bad[4] = 1
  t.is(binding.utf8Split(values, bad, 0, strings.length, 0, values.length, lat, wide, ends), -2 - 3)
  bad[4] = -5
  t.is(binding.utf8Split(values, bad, 0, strings.length, 0, values.length, lat, wide, ends), -2 - 3)
  const odd = Buffer.alloc(2 * values.length + 1).subarray(1)
  for (const args of [
    ['text', offsets, 0, 1, 0, 1, lat, wide, ends],
    [values, new Uint32Array(8), 0, 1, 0, 1, lat, wide, ends],
    [values, offsets, 0, 1, 0, 1, lat, wide, new Float64Array(4)],
    [values, offsets, 0, 99, 0, 1, lat, wide, ends],
    [values, offsets, 5, 2, 0, 1, lat, wide, ends],
    [values, offsets, 0, 1, 0, values.length + 1, lat, wide, ends],
    [values, offsets, -1, 1, 0, 1, lat, wide, ends],
    [values, offsets, 0.5, 1, 0, 1, lat, wide, ends],
    [values, offsets, 0, strings.length, 0, values.length, lat, wide, new Int32Array(2)],
    [values, offsets, 0, strings.length, 0, values.length, lat.subarray(0, 2), wide, ends],
    [values, offsets, 0, strings.length, 0, values.length, lat, wide.subarray(0, 4), ends],
    [values, offsets, 0, strings.length, 0, values.length, lat, lat, ends],
    [values, offsets, 0, strings.length, 0, values.length, lat, wide, offsets],
    [values, offsets, 0, strings.length, 0, values.length, new Uint8Array(offsets.buffer), wide, ends],
    [values, offsets, 0, strings.length, 0, values.length, lat, odd, ends],
    [],
  ]) {
    t.regex(String(t.throws(() => binding.utf8Split(...args)).code), /^ERR_/)
  }
})

test.serial('a long array that starts with strings but holds something else is still a container', (t) => {
  const before = new Set(so.list().map((s) => s.id))
  for (const odd of [5, true, {}, 1n]) {
    const values = Array.from({ length: 5000 }, (_, i) => (i === 4000 ? odd : `s${i}`))
    const x = so.share(values)
    t.false(x instanceof so.SharedStringVector)
    t.true(Array.isArray(x))
    t.deepEqual(x[4000], odd)
    t.is(x[3999], 's3999')
    t.throws(() => so.share(values, { kind: 'string' }), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE', message: /element 4000 is/ })
  }
  const made = so.list().filter((s) => s.ownerPid === process.pid && s.kind === 'string' && !before.has(s.id))
  t.deepEqual(made, [], 'a string vector begun and given up leaves no segment')
})
