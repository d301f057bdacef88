// A data frame (an object of columns) shared with cluster workers over the ordinary JSON channel:
// every column travels as a handle and revive() opens them all.
const cluster = require('node:cluster')
const so = require('@sharedobject/core')

if (cluster.isPrimary) {
  const df = so.share({
    price: new Float64Array([9.5, 12, 7.25]),
    qty: new Int32Array([3, 1, 4]),
    sold: [true, null, false],
    name: ['apple', 'pear', 'fig'],
    meta: { currency: 'EUR', rows: 3 },
  })
  for (let i = 0; i < 2; i++) {
    const worker = cluster.fork()
    worker.send({ df })
    worker.on('message', (line) => {
      console.log(line)
      worker.disconnect()
    })
  }
} else {
  process.on('message', (msg) => {
    const { df } = so.revive(msg) // or so.open(handle) with a handle from so.handleOf(df)
    const total = df.price[2] * df.qty[2]
    process.send(`${df.name.get(2)}: ${total} ${df.meta.currency}; sold: ${df.sold.countTrue()}`)
  })
}
