// String vectors: 4 forked children receive 1e6 strings and read every one of them, through a
// sharedobject handle and through serialization: 'advanced'; and the hand-over alone (send,
// open, read one element), which should not grow with N.
// Run: node bench/strings.mjs [--quick]. Prints figures; asserts nothing.
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import so from '@sharedobject/core'
// A segment whose handle was handed out stays openable until it is freed (or its owner exits):
// free it, then give this process's mapping back.
const release = (v) => {
  so.free(v)
  return so.close(v)
}

const W = 4
const quick = process.argv.includes('--quick')
const REPS = quick ? 3 : 5
const SIZES = quick ? [1e5, 1e6] : [1e4, 1e5, 1e6]
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const ms = (x) => `${x.toFixed(x < 10 ? 2 : 0)} ms`

if (process.argv[2] === 'child') {
  // Reads every string of what it receives, the same way for both transports.
  const readAll = (get, n) => {
    let chars = 0
    for (let i = 0; i < n; i++) {
      const s = get(i)
      if (s !== null) chars += s.length
    }
    return chars
  }
  process.on('message', (m) => {
    if (m.op === 'handle') {
      const v = so.open(m.h)
      const first = v.get(0)
      const chars = m.all ? readAll((i) => v.get(i), v.length) : first.length
      so.close(v)
      process.send({ chars })
    } else {
      process.send({ chars: m.all ? readAll((i) => m.arr[i], m.arr.length) : m.arr[0].length })
    }
  })
  process.send('ready')
} else {
  const self = fileURLToPath(import.meta.url)
  const start = async (serialization) => {
    const kids = Array.from({ length: W }, () => fork(self, ['child'], { serialization }))
    await Promise.all(kids.map((k) => once(k, 'message')))
    return kids
  }
  const round = async (kids, msg) => {
    const t = performance.now()
    const replies = kids.map((k) => once(k, 'message'))
    for (const k of kids) k.send(msg)
    const r = await Promise.all(replies)
    return { ms: performance.now() - t, chars: r[0][0].chars }
  }
  const strings = (n) => Array.from({ length: n }, (_, i) => (i % 10 === 9 ? null : `item-${i}-${'é'.repeat(i % 13)}`))

  console.log(`string vectors: ${W} forked children; median of ${REPS}`)
  const json = await start('json')
  const advanced = await start('advanced')
  const rows = []
  for (const n of SIZES) {
    const arr = strings(n)
    const t = performance.now()
    const x = so.share(arr)
    const shareMs = performance.now() - t
    const d = so.share(arr, { dictionary: true })
    const h = so.handleOf(x)
    const res = { n, shareMs }
    for (const [name, kids, msg] of [
      ['handover', json, { op: 'handle', h, all: false }],
      ['readAll', json, { op: 'handle', h, all: true }],
      ['readAllDict', json, { op: 'handle', h: so.handleOf(d), all: true }],
      ['advanced', advanced, { op: 'array', arr, all: true }],
    ]) {
      const times = []
      for (let r = 0; r < REPS; r++) times.push((await round(kids, msg)).ms)
      res[name] = median(times)
    }
    release(x)
    release(d)
    rows.push(res)
    console.log(
      `  N=${n.toExponential(0)}  share ${ms(res.shareMs)}   hand-over ${ms(res.handover)}   receive+read all: ` +
        `sharedobject ${ms(res.readAll)} (dictionary ${ms(res.readAllDict)})   advanced ${ms(res.advanced)}   ratio ${(res.readAll / res.advanced).toFixed(2)}×`,
    )
  }
  const big = rows[rows.length - 1]
  const small = rows[0]
  console.log('\nSummary')
  console.log(`6 strings hand-over ×${W}, N=${small.n.toExponential(0)} → ${big.n.toExponential(0)}: ${ms(small.handover)} → ${ms(big.handover)} (target: flat in N)`)
  console.log(
    `7 ${W} children receive and read all ${big.n.toExponential(0)} strings: sharedobject ${ms(big.readAll)} vs advanced ${ms(big.advanced)} = ${(big.readAll / big.advanced).toFixed(2)}× (target ≤ 0.25×)`,
  )
  for (const k of [...json, ...advanced]) k.kill()
}
