// piscina (worker threads): every task gets the handle of one shared vector and reads the same
// memory; without the package, each task's data is a structured-clone copy. Runs both, each in
// a fresh process, and prints the sums, then time and memory side by side.
import { fork } from 'node:child_process'
import { once } from 'node:events'
import fs from 'node:fs'
import { fileURLToPath } from 'node:url'
import { isMainThread } from 'node:worker_threads'
import Piscina from 'piscina'
import so from '@sharedobject/core'

const N = 4e6
const TASKS = 4

/** The task: sum part of the data, mapped from its handle or received as a copy. */
export default function sum({ handle, data, from, to }) {
  const x = handle ? so.open(handle, { kind: 'float64' }) : data
  let s = 0
  for (let i = from; i < to; i++) s += x[i]
  return s
}

/** This process's proportional set size in MB (shared pages split among their users), or RSS. */
function memoryMB() {
  try {
    return Number(/^Pss:\s+(\d+)/m.exec(fs.readFileSync('/proc/self/smaps_rollup', 'utf8'))[1]) / 1024
  } catch {
    return process.memoryUsage().rss / 2 ** 20
  }
}

async function measure(shared) {
  const pool = new Piscina({ filename: import.meta.url, minThreads: TASKS, maxThreads: TASKS })
  const x = shared ? so.alloc('float64', N) : new Float64Array(N)
  for (let i = 0; i < N; i++) x[i] = i
  await Promise.all(Array.from({ length: TASKS }, () => pool.run({ data: new Float64Array(1), from: 0, to: 1 })))
  const start = performance.now()
  const step = N / TASKS
  const parts = await Promise.all(
    Array.from({ length: TASKS }, (_, k) => {
      const part = { from: k * step, to: (k + 1) * step }
      return pool.run(shared ? { handle: so.handleOf(x), ...part } : { data: x, ...part })
    }),
  )
  const ms = performance.now() - start
  const mb = memoryMB()
  await pool.destroy()
  return { total: parts.reduce((a, b) => a + b), ms, mb }
}

if (isMainThread && process.argv[2]) {
  process.send(await measure(process.argv[2] === 'shared'), () => process.disconnect())
} else if (isMainThread) {
  const runs = {}
  for (const mode of ['shared', 'copy']) {
    const child = fork(fileURLToPath(import.meta.url), [mode])
    ;[runs[mode]] = await once(child, 'message')
    await once(child, 'exit')
  }
  for (const [mode, r] of Object.entries(runs)) console.log(`${mode}: the tasks summed ${r.total}`)
  const f = (r) => `${r.ms.toFixed(0)} ms, ${r.mb.toFixed(0)} MB`
  console.log(`figures: ${TASKS} tasks over ${(N * 8) / 1e6} MB: sharedobject ${f(runs.shared)}; structured clone ${f(runs.copy)}`)
}
