// A cluster HTTP service that shares a fresh result per request: the primary computes 80 KB
// straight into shared memory (alloc with { opens: 1 }), sends it to a worker and forgets it; the worker opens it (the one
// open), summarises it, and the primary answers the HTTP request. The same service then sends
// the result itself with process.send, for comparison, and prints each one's throughput and
// memory (Σ PSS of the primary and its workers where /proc tells it, else the primary's RSS) on
// stderr. Loopback only; a fixed number of requests; everything exits by itself.
const cluster = require('node:cluster')
const fs = require('node:fs')
const http = require('node:http')
const so = require('@sharedobject/core')

const REQUESTS = 2000
const CONCURRENCY = 16
const WORKERS = 2
const LENGTH = 10240 // float64: 80 KB per result

if (cluster.isPrimary) {
  const workers = Array.from({ length: WORKERS }, () => cluster.fork())
  const pending = new Map()
  for (const w of workers) w.on('message', ({ id, sum }) => pending.get(id)(sum))
  let next = 0
  /** What the service holds in memory now, in MB. */
  const memory = () => {
    const pss = (pid) => Number(/^Pss:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))[1]) * 1024
    try {
      return `${Math.round([process.pid, ...workers.map((w) => w.process.pid)].reduce((a, pid) => a + pss(pid), 0) / 1e6)} MB (Σ PSS of the primary and ${WORKERS} workers)`
    } catch {
      return `${Math.round(process.memoryUsage().rss / 1e6)} MB (the primary's RSS)`
    }
  }
  const compute = (n, r = new Float64Array(LENGTH)) => {
    for (let k = 0; k < LENGTH; k++) r[k] = (n % 97) + k
    return r
  }
  // Asks a worker to summarise request n's result, sent as `how` says.
  const viaWorker = (n, how) =>
    new Promise((resolve) => {
      const id = next++
      pending.set(id, (sum) => {
        pending.delete(id)
        resolve(sum)
      })
      const worker = workers[id % WORKERS]
      if (how === 'sharedobject') {
        const r = so.alloc('float64', LENGTH, { opens: 1 }) // released once the worker has opened it
        worker.send({ id, r: compute(n, r) }) // travels as {"$sharedobject": handle}; nothing else to do
      } else {
        worker.send({ id, data: Array.from(compute(n)) }) // the whole result, as JSON
      }
    })

  const server = http.createServer(async (req, res) => {
    const [, how, n] = req.url.split('/')
    res.end(String(await viaWorker(Number(n), how)))
  })
  server.listen(0, '127.0.0.1', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY })
    const { port } = server.address()
    const get = (path) =>
      new Promise((resolve, reject) => {
        http
          .get({ host: '127.0.0.1', port, path, agent }, (res) => {
            let body = ''
            res.on('data', (c) => (body += c))
            res.on('end', () => resolve(Number(body)))
          })
          .on('error', reject)
      })
    const serve = async (how, requests = REQUESTS) => {
      const answers = new Array(requests)
      let n = 0
      const start = process.hrtime.bigint()
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (n < requests) {
            const mine = n++
            answers[mine] = await get(`/${how}/${mine}`)
          }
        }),
      )
      const seconds = Number(process.hrtime.bigint() - start) / 1e9
      if (requests === REQUESTS) {
        console.error(`${how}: ${requests} requests of ${(LENGTH * 8) / 1024} KB in ${seconds.toFixed(2)} s, ${Math.round(requests / seconds)} requests/s, ${memory()}`)
      }
      return answers
    }
    // A few untimed requests of each kind first, so that neither pays for starting up.
    await serve('process.send', 200)
    await serve('sharedobject', 200)
    const sent = await serve('process.send')
    const shared = await serve('sharedobject')
    // Nothing waits for garbage collection: what the primary handed out is let go of already.
    for (let i = 0; i < 50 && so.stats().byState.waitingForOpens.segments > 0; i++) await new Promise((r) => setTimeout(r, 20))
    const left = so.stats().byState.waitingForOpens.segments
    const alike = shared.every((s, i) => s === sent[i] && s === compute(i).reduce((a, b) => a + b, 0))
    console.log(`${alike ? 'both answered every request alike' : 'the answers differ'}; segments waiting for their open: ${left}`)
    agent.destroy()
    server.close()
    for (const w of workers) w.disconnect() // each worker exits once its channel is closed
  })
} else {
  process.on('message', (m) => {
    if (m.data) return process.send({ id: m.id, sum: m.data.reduce((a, b) => a + b, 0) })
    const { id, r } = so.revive(m) // maps the primary's pages: nothing is copied
    let sum = 0
    for (let k = 0; k < r.length; k++) sum += r[k]
    so.close(r) // done: this process's pages go back now
    process.send({ id, sum })
  })
}
