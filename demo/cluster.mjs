// The main job: a 400 MB Float64Array shared with 4 cluster workers, each summing it.
// Prints the time to share, the hand-over time, the workers' sums and the extra memory (PSS)
// of all five processes against the data size. `--n=1e7` for another size, `--workers=2`.
import cluster from 'node:cluster'
import fs from 'node:fs'
import { once } from 'node:events'
import so from '@sharedobject/core'

const arg = (name, dflt) => Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? dflt)
const N = arg('n', 5e7)
const W = arg('workers', 4)
const now = () => performance.now()
const MB = 1e6

function sum(a) {
  let s = 0
  for (let i = 0; i < a.length; i++) s += a[i]
  return s
}

/** Proportional set size of a process in bytes: shared pages are split among their users. */
function pss(pid) {
  const text = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8')
  return Number(/^Pss:\s+(\d+) kB/m.exec(text)[1]) * 1024
}

if (cluster.isPrimary) {
  const workers = Array.from({ length: W }, () => cluster.fork())
  const next = (w) => once(w, 'message').then(([m]) => m)
  await Promise.all(workers.map(next)) // each says 'ready'
  globalThis.gc?.()
  const pids = [process.pid, ...workers.map((w) => w.process.pid)]
  const before = pids.map(pss)

  let src = new Float64Array(N)
  for (let i = 0; i < N; i++) src[i] = (i % 1000) * 0.5
  let t = now()
  src.slice() // the reference: an ordinary private copy of the same array
  const sliceMs = now() - t

  t = now()
  const x = so.share(src)
  const shareMs = now() - t
  src = null // from here on the only copy of the data is the shared one
  const expected = sum(x)

  // Hand-over: the ordinary JSON message carries only the handle; each worker opens it and reads
  // one element before answering.
  t = now()
  const opened = workers.map(next)
  for (const w of workers) w.send({ data: x })
  const firsts = await Promise.all(opened)
  const handoverMs = now() - t
  const summed = workers.map(next)
  for (const w of workers) w.send('sum')
  const sums = await Promise.all(summed)

  globalThis.gc?.() // the private source and the slice() copy are no longer needed
  const after = pids.map(pss)
  const extra = after.reduce((a, b) => a + b, 0) - before.reduce((a, b) => a + b, 0)
  const bytes = x.byteLength

  console.log(`sharedobject demo: ${N.toLocaleString('en')} float64 (${(bytes / MB).toFixed(0)} MB) to ${W} cluster workers`)
  console.log(`  share():        ${shareMs.toFixed(1)} ms   (a plain slice() copy of the same array: ${sliceMs.toFixed(1)} ms)`)
  console.log(`  hand-over:      ${handoverMs.toFixed(2)} ms   for all ${W} workers to receive the handle, open it and read x[0] = ${firsts[0].first}`)
  console.log(`                  (of which open() + first read in a worker: ${Math.max(...firsts.map((f) => f.openMs)).toFixed(2)} ms at most)`)
  for (const [i, s] of sums.entries()) {
    console.log(`  worker ${i + 1} sum:   ${s.sum} in ${s.ms.toFixed(1)} ms ${s.sum === expected ? '(correct)' : `(WRONG: expected ${expected})`}`)
  }
  console.log(`  handle:         ${JSON.stringify(JSON.stringify({ data: x }))} (${JSON.stringify({ data: x }).length} bytes on the wire)`)
  console.log(
    `  extra memory:   ${(extra / MB).toFixed(0)} MB PSS across all ${W + 1} processes = ${(extra / bytes).toFixed(2)} × the data (copies would cost ${W + 1}×)`,
  )
  for (const w of workers) w.send('bye')
  await Promise.all(workers.map((w) => once(w, 'exit')))
  so.close(x)
  const ok = sums.every((s) => s.sum === expected)
  process.exitCode = ok ? 0 : 1
} else {
  let data
  process.on('message', (msg) => {
    if (msg === 'bye') {
      so.close(data)
      process.disconnect()
    } else if (msg === 'sum') {
      const t = now()
      const s = sum(data)
      process.send({ sum: s, ms: now() - t })
    } else {
      const t = now()
      data = so.revive(msg).data
      process.send({ first: data[0], openMs: now() - t })
    }
  })
  process.send('ready')
}
