// String vectors, each target beside its reference in one run, on the Node that runs this:
// 1. share of short JS strings (ASCII, and a mix with non-ASCII) against the fastest plain-JS
//    encoding of the same strings into one UTF-8 buffer with offsets (Buffer#utf8Write or
//    TextEncoder#encodeInto into a buffer and an Int32Array allocated beforehand);
// 2. a child receiving strings and reading them all (toArray(), and get(i) of each) against
//    receiving them by serialization: 'advanced';
// 3. the hand-over of a string vector (send the handle, open, get(0)) at two lengths.
// Every figure is a median; the input of each timed run is made fresh and the heap collected
// first, so no run pays for another's garbage.
// Run: node bench/strings.mjs [--quick]. Prints figures; asserts nothing.
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import v8 from 'node:v8'
import vm from 'node:vm'
import so from '@sharedobject/core'
import { record } from './report.mjs'

v8.setFlagsFromString('--expose-gc')
const gc = vm.runInNewContext('gc')

const quick = process.argv.includes('--quick')
// --only=1,3 runs those parts alone.
const only = process.argv.find((a) => a.startsWith('--only='))?.slice(7).split(',')
const part = (k) => !only || only.includes(String(k))
const REPS = quick ? 3 : 5
/** Untimed rounds of each way of reading before the timed ones (see part 2). */
const WARM_ROUNDS = quick ? 1 : 3
// Reading rounds vary the most (a child's collections land in one round or the next): more of them.
const READ_REPS = quick ? 3 : 9
const SHARE_N = quick ? 1e6 : 1e7
const READ_N = quick ? 2e5 : 1e6
const HANDOVER_N = quick ? [1e4, 1e6] : [1e4, 1e7]
const HANDOVER_REPS = quick ? 7 : 31
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const ms = (x) => (x < 1 ? `${(x * 1000).toFixed(0)} µs` : `${x.toFixed(x < 10 ? 2 : 0)} ms`)
const exp = (n) => n.toExponential(0).replace('+', '')

// Short strings like ids and labels, about 1 in 10 NA; the mix has non-ASCII in most of them.
const ascii = (n) => Array.from({ length: n }, (_, i) => (i % 10 === 9 ? null : `item-${i}`))
const mixed = (n) => Array.from({ length: n }, (_, i) => (i % 10 === 9 ? null : `item-${i}-${'é'.repeat(i % 4)}${i % 7 === 0 ? '日本' : ''}`))
const DATA = { ASCII: ascii, 'non-ASCII': mixed }

if (process.argv[2] === 'child') {
  // The vector of the last hand-over, closed by the next settle: a close right after the reply
  // (unmapping, page tables freed, other cores' TLBs flushed) would run while the parent takes
  // the reply in, and is no part of a hand-over.
  let held
  process.on('message', (m) => {
    if (m.op === 'handover') {
      if (held) so.close(held)
      const t = performance.now()
      const v = so.open(m.h)
      const first = v.get(0)
      const open = performance.now() - t
      process.send({ open, first })
      held = v
    } else if (m.op === 'toArray' || m.op === 'get') {
      const v = so.open(m.h)
      let chars = 0
      if (m.op === 'toArray') {
        const a = v.toArray()
        for (let i = 0; i < a.length; i++) if (a[i] !== null) chars += a[i].length
      } else {
        for (let i = 0; i < v.length; i++) {
          const s = v.get(i)
          if (s !== null) chars += s.length
        }
      }
      process.send({ chars })
      so.close(v)
    } else if (m.op === 'advanced') {
      let chars = 0
      const a = m.arr
      for (let i = 0; i < a.length; i++) if (a[i] !== null) chars += a[i].length
      process.send({ chars })
    } else if (m.op === 'settle') {
      if (held) so.close(held)
      held = undefined
      gc()
      process.send({})
    }
  })
  process.send('ready')
} else {
  const self = fileURLToPath(import.meta.url)
  console.log(`string vectors on Node ${process.version}; median of ${REPS}${part(2) ? ` (reading: of ${READ_REPS}, after ${WARM_ROUNDS} untimed rounds of each way)` : ''}${quick ? ' (--quick)' : ''}`)

  // 1. share against the plain-JS encoders.
  const encoders = {
    utf8Write(arr, buf, off) {
      let pos = 0
      for (let i = 0; i < arr.length; i++) {
        off[i] = pos
        const s = arr[i]
        if (s !== null) pos += buf.utf8Write(s, pos)
      }
      off[arr.length] = pos
    },
    encodeInto(arr, buf, off) {
      const enc = new TextEncoder()
      let pos = 0
      for (let i = 0; i < arr.length; i++) {
        off[i] = pos
        const s = arr[i]
        if (s !== null) pos += enc.encodeInto(s, buf.subarray(pos)).written
      }
      off[arr.length] = pos
    },
  }
  // `prep` (the encoders' buffer, worst case 3 bytes per UTF-16 unit) is made before the clock starts.
  const timed = (make, f, prep = () => undefined) => {
    let arr = make(SHARE_N)
    const p = prep(arr)
    gc()
    const t = performance.now()
    f(arr, p)
    const took = performance.now() - t
    arr = null
    return took
  }
  const prealloc = (arr) => {
    let units = 0
    for (const s of arr) if (s !== null) units += s.length
    return { buf: Buffer.allocUnsafe(3 * units), off: new Int32Array(arr.length + 1) }
  }
  const shareRatios = {}
  if (part(1)) console.log(`\n1. share of ${exp(SHARE_N)} short strings (target ≤ 1.5× the fastest plain-JS encoding)`)
  for (const [name, make] of part(1) ? Object.entries(DATA) : []) {
    const t = { share: [], utf8Write: [], encodeInto: [] }
    for (let r = 0; r < REPS; r++) {
      t.share.push(
        timed(make, (arr) => {
          const x = so.share(arr)
          // Outside the time: freeing and closing belong to no encoder.
          queueMicrotask(() => so.close(x))
        }),
      )
      for (const [e, f] of Object.entries(encoders)) t[e].push(timed(make, (arr, p) => f(arr, p.buf, p.off), prealloc))
      await new Promise((r) => setImmediate(r))
    }
    const s = median(t.share)
    const [best, refMs] = Object.entries(encoders)
      .map(([e]) => [e, median(t[e])])
      .sort((a, b) => a[1] - b[1])[0]
    shareRatios[name] = s / refMs
    console.log(
      `  ${name.padEnd(9)}  share ${ms(s)}   utf8Write ${ms(median(t.utf8Write))}   encodeInto ${ms(median(t.encodeInto))}   ` +
        `share / ${best} = ${(s / refMs).toFixed(2)}×`,
    )
  }

  // 2. A child receives strings and reads them all.
  const start = async (serialization) => {
    const k = fork(self, ['child'], { serialization })
    await once(k, 'message')
    return k
  }
  const round = async (kid, msg) => {
    const t = performance.now()
    const reply = once(kid, 'message')
    kid.send(msg)
    const [r] = await reply
    return { ms: performance.now() - t, r }
  }
  const settle = async (kid) => {
    gc()
    await round(kid, { op: 'settle' })
  }
  const json = await start('json')
  const advanced = await start('advanced')
  if (part(2)) console.log(`\n2. a child receives ${exp(READ_N)} strings and reads them all (target: toArray ≤ 0.5×, get(i) ≤ 0.75× of advanced)`)
  const readRatios = {}
  for (const [name, make] of part(2) ? Object.entries(DATA) : []) {
    const arr = make(READ_N)
    const x = so.share(arr)
    const h = so.handleOf(x)
    const t = { toArray: [], get: [], advanced: [] }
    // Untimed rounds first, for every way alike: a child's young generation grows to fit a
    // million strings over the first rounds (toArray of ASCII strings here: 120, 85, 60, then
    // 30 ms), and a worker that receives vectors again and again runs at the grown size.
    for (let r = -WARM_ROUNDS; r < READ_REPS; r++) {
      for (const op of Object.keys(t)) {
        const kid = op === 'advanced' ? advanced : json
        await settle(kid)
        const { ms: took } = await round(kid, op === 'advanced' ? { op, arr } : { op, h })
        if (r >= 0) t[op].push(took)
      }
    }
    so.free(x)
    so.close(x)
    const adv = median(t.advanced)
    readRatios[name] = { toArray: median(t.toArray) / adv, get: median(t.get) / adv }
    console.log(
      `  ${name.padEnd(9)}  toArray ${ms(median(t.toArray))}   get(i) each ${ms(median(t.get))}   advanced ${ms(adv)}   ` +
        `ratios ${readRatios[name].toArray.toFixed(2)}× / ${readRatios[name].get.toFixed(2)}×`,
    )
  }

  // 3. The hand-over alone: send the handle, open, get(0); the child closes before the next.
  if (part(3)) console.log(`\n3. hand-over of a string vector (send handle, open, get(0)) at ${HANDOVER_N.map(exp).join(' and ')} (target: within ±20 %; median of ${HANDOVER_REPS} rounds, after ${WARM_ROUNDS} untimed)`)
  const handRatios = {}
  for (const [name, make] of part(3) ? Object.entries(DATA) : []) {
    // Both sizes in turn, round after round: the machine's drift over the minutes of a run
    // falls on both alike instead of on whichever was measured second.
    const res = HANDOVER_N.map((n) => {
      const x = so.share(make(n))
      return { n, x, h: so.handleOf(x), rts: [], opens: [] }
    })
    // Untimed rounds first: a child's first few opens of each size run slower (its code warms).
    // Each round is a fraction of a millisecond, within the noise of the messaging: many of them.
    for (let r = 0; r < WARM_ROUNDS; r++) for (const v of res) await round(json, { op: 'handover', h: v.h })
    for (let r = 0; r < HANDOVER_REPS; r++) {
      for (const v of res) {
        await settle(json)
        const { ms: took, r: reply } = await round(json, { op: 'handover', h: v.h })
        v.rts.push(took)
        v.opens.push(reply.open)
      }
    }
    for (const v of res) {
      so.free(v.x)
      so.close(v.x)
      v.rt = median(v.rts)
      v.open = median(v.opens)
    }
    const [a, b] = res
    handRatios[name] = b.rt / a.rt
    console.log(
      `  ${name.padEnd(9)}  ${exp(a.n)}: ${ms(a.rt)} (open+get(0) in the child ${ms(a.open)})   ${exp(b.n)}: ${ms(b.rt)} (${ms(b.open)})   ` +
        `ratio ${(b.rt / a.rt).toFixed(2)}×`,
    )
  }

  console.log(`\nSummary, Node ${process.version}`)
  const x = (r) => (r === undefined ? '—' : `${r.toFixed(2)}×`)
  for (const name of Object.keys(DATA)) {
    console.log(
      `  ${name.padEnd(9)}  share ${x(shareRatios[name])} (≤ 1.5)   toArray ${x(readRatios[name]?.toArray)} (≤ 0.5)   ` +
        `get(i) ${x(readRatios[name]?.get)} (≤ 0.75)   hand-over ${x(handRatios[name])} (0.8–1.2)`,
    )
    const figure = (what, ratio, target) => ratio !== undefined && record({ figure: `${name} strings: ${what}`, value: ratio, unit: '×', ratio, target })
    figure(`share ${exp(SHARE_N)}, vs the fastest plain-JS encoding`, shareRatios[name], '≤ 1.5×')
    figure(`a child reads ${exp(READ_N)} by toArray(), vs advanced serialization`, readRatios[name]?.toArray, '≤ 0.5×')
    figure(`a child reads ${exp(READ_N)} by get(i), vs advanced serialization`, readRatios[name]?.get, '≤ 0.75×')
    figure(`hand-over at ${HANDOVER_N.map(exp).join(' vs ')}`, handRatios[name], '0.8–1.2×')
  }
  json.kill()
  advanced.kill()
}
