// A cluster: the primary makes a vector in shared memory and fills it in place; each worker
// opens it from its handle, sums it and reports; the primary then lets the workers go, and
// everything exits by itself.
const cluster = require('node:cluster')
const so = require('@sharedobject/core')

const N = 1e7 // 80 MB of float64
const WORKERS = 4

if (cluster.isPrimary) {
  const x = so.alloc('float64', N) // zero-filled shared memory: no private copy to make or keep
  for (let i = 0; i < N; i++) x[i] = i % 10
  for (let i = 0; i < WORKERS; i++) {
    const worker = cluster.fork({ SHARED_X: so.handleOf(x) }) // a handle of a few dozen bytes
    worker.on('message', (sum) => {
      console.log(`worker ${worker.id} summed ${sum}`)
      worker.disconnect() // the worker exits once its channel is closed
    })
  }
} else {
  const x = so.open(process.env.SHARED_X) // the primary's pages, mapped: nothing is copied
  let sum = 0
  for (let i = 0; i < x.length; i++) sum += x[i]
  process.send(sum)
}
