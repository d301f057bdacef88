// worker_threads: give each thread the handle (in workerData or postMessage), not the vector,
// which structured clone would copy. Each thread maps the segment once, however often it opens it.
const { Worker, isMainThread, workerData, parentPort } = require('node:worker_threads')
const so = require('@sharedobject/core')

if (isMainThread) {
  const x = so.alloc('float64', 1e6)
  for (let i = 0; i < x.length; i++) x[i] = i
  const half = x.length / 2
  for (const [from, to] of [[0, half], [half, x.length]]) {
    const worker = new Worker(__filename, { workerData: { handle: so.handleOf(x), from, to } })
    worker.on('message', (sum) => console.log(`elements ${from} to ${to - 1} sum to ${sum}`))
  }
} else {
  const x = so.open(workerData.handle)
  let sum = 0
  for (let i = workerData.from; i < workerData.to; i++) sum += x[i]
  parentPort.postMessage(sum) // the thread then ends by itself
}
