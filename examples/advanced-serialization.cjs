// A channel that copies TypedArrays (serialization: 'advanced', worker.postMessage) would copy a
// shared vector too: send its handle instead, and open it on the other side.
const { fork } = require('node:child_process')
const so = require('@sharedobject/core')

if (process.argv[2] !== 'child') {
  const x = so.alloc('int32', 1e6).fill(7)
  const child = fork(__filename, ['child'], { serialization: 'advanced' })
  child.send({ x: so.handleOf(x) }) // or { x: { $sharedobject: so.handleOf(x) } } and revive()
  child.on('message', ({ length, first }) => {
    console.log(`the child opened ${length} int32, the first is ${first}`)
    child.disconnect()
  })
} else {
  process.on('message', (m) => {
    const x = so.open(m.x)
    process.send({ length: x.length, first: x[0] })
  })
}
