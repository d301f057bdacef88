const { fork } = require('node:child_process')
const so = require('@sharedobject/core')

if (process.argv[2] !== 'child') {
  const x = so.alloc('float64', 1e7).fill(0.5) // 80 MB of shared memory, filled in place
  const child = fork(__filename, ['child'])
  child.send({ x }) // only a handle travels
  child.on('message', (sum) => { console.log(`the child summed ${sum}`); child.disconnect() })
} else {
  process.on('message', (msg) => process.send(so.revive(msg).x.reduce((a, b) => a + b))) // no copy
}
