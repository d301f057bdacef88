// workerpool in process mode: a task's argument holding a shared vector crosses the default JSON
// channel as its handle, and the worker's revive() maps the same memory. Without the package,
// the data goes by copy (serialization: 'advanced'). Runs both, each in a fresh process, and
// prints the sums, then time and memory (PSS of the pool's processes) side by side.
const { fork } = require('node:child_process')
const { once } = require('node:events')
const fs = require('node:fs')
const workerpool = require('workerpool')
const so = require('@sharedobject/core')

const N = 4e6
const WORKERS = 4

/** A process's proportional set size in MB (shared pages split among their users), or RSS. */
function memoryMB() {
  try {
    return Number(/^Pss:\s+(\d+)/m.exec(fs.readFileSync('/proc/self/smaps_rollup', 'utf8'))[1]) / 1024
  } catch {
    return process.memoryUsage().rss / 2 ** 20
  }
}

if (process.argv[2] === 'worker') {
  workerpool.worker({
    sum(task) {
      const { x, from, to } = so.revive(task)
      let s = 0
      for (let i = from; i < to; i++) s += x[i]
      return { s, mb: memoryMB() }
    },
  })
} else if (process.argv[2]) {
  const shared = process.argv[2] === 'shared'
  const pool = workerpool.pool(__filename, {
    workerType: 'process',
    forkArgs: ['worker'],
    minWorkers: WORKERS,
    maxWorkers: WORKERS,
    forkOpts: shared ? {} : { serialization: 'advanced' },
  })
  const x = shared ? so.alloc('float64', N) : new Float64Array(N)
  for (let i = 0; i < N; i++) x[i] = i
  ;(async () => {
    await Promise.all(Array.from({ length: WORKERS }, () => pool.exec('sum', [{ x: [], from: 0, to: 0 }])))
    const start = performance.now()
    const step = N / WORKERS
    const parts = await Promise.all(Array.from({ length: WORKERS }, (_, k) => pool.exec('sum', [{ x, from: k * step, to: (k + 1) * step }])))
    const ms = performance.now() - start
    const mb = memoryMB() + parts.reduce((a, p) => a + p.mb, 0)
    await pool.terminate()
    process.send({ total: parts.reduce((a, p) => a + p.s, 0), ms, mb }, () => process.disconnect())
  })()
} else {
  ;(async () => {
    const runs = {}
    for (const mode of ['shared', 'copy']) {
      const child = fork(__filename, [mode])
      ;[runs[mode]] = await once(child, 'message')
      await once(child, 'exit')
    }
    for (const [mode, r] of Object.entries(runs)) console.log(`${mode}: the tasks summed ${r.total}`)
    const f = (r) => `${r.ms.toFixed(0)} ms, ${r.mb.toFixed(0)} MB`
    console.log(`figures: ${WORKERS} process workers over ${(N * 8) / 1e6} MB: sharedobject ${f(runs.shared)}; advanced serialization ${f(runs.copy)}`)
  })()
}
