// A data frame shared with cluster workers. The primary builds an Arrow table of sales and
// shares it once; each worker opens it (no copy: its columns are views of the same pages),
// takes its part of the rows, aggregates it with arquero and sends back totals per region,
// which the primary merges. Exits by itself. Run: node examples/arrow-dataframe.mjs
import cluster from 'node:cluster'
import { once } from 'node:events'
import * as aq from 'arquero'
import { Dictionary, Int32, Utf8, tableFromArrays, vectorFromArray } from 'apache-arrow'
import so from '@sharedobject/core'

const WORKERS = 4
const ROWS = 1_000_000

if (cluster.isPrimary) {
  const regions = ['north', 'south', 'east', 'west']
  const sales = tableFromArrays({
    region: vectorFromArray(
      Array.from({ length: ROWS }, (_, i) => regions[(i * 7) % 4]),
      new Dictionary(new Utf8(), new Int32()),
    ),
    amount: Float64Array.from({ length: ROWS }, (_, i) => (i % 100) + 0.5),
    qty: Int32Array.from({ length: ROWS }, (_, i) => 1 + (i % 3)),
  })
  const shared = so.share(sales) // one segment holding the table as an Arrow IPC file

  const workers = Array.from({ length: WORKERS }, () => cluster.fork())
  const parts = await Promise.all(
    workers.map(async (w, part) => {
      await once(w, 'message') // 'ready': listening, so the message below is not lost
      w.send({ sales: shared, part, of: WORKERS }) // JSON carries the table's handle
      const [totals] = await once(w, 'message')
      return totals
    }),
  )

  // Merge the workers' partial totals, and check them against arquero over the whole table.
  const merged = aq.from(parts.flat()).groupby('region').rollup({ amount: aq.op.sum('amount'), qty: aq.op.sum('qty'), rows: aq.op.sum('rows') }).orderby('region')
  const whole = aq.fromArrow(shared).groupby('region').rollup({ amount: aq.op.sum('amount'), qty: aq.op.sum('qty'), rows: aq.op.count() }).orderby('region')
  merged.print()
  console.log(JSON.stringify(merged.objects()) === JSON.stringify(whole.objects()) ? 'the workers’ totals match the whole table' : 'MISMATCH')
  so.close(shared)
} else {
  process.once('message', (message) => {
    const { sales, part, of } = so.revive(message) // an apache-arrow Table over shared memory
    const from = Math.floor((sales.numRows * part) / of)
    const to = Math.floor((sales.numRows * (part + 1)) / of)
    const totals = aq
      .fromArrow(sales)
      .slice(from, to)
      .groupby('region')
      .rollup({ amount: aq.op.sum('amount'), qty: aq.op.sum('qty'), rows: aq.op.count() })
      .objects()
    process.send(totals, () => process.disconnect())
  })
  process.send('ready')
}
