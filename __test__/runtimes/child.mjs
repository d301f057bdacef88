// A child process for the runtime scenarios: runs the functions its parent sends (as source),
// with the package in scope, and replies with what they return. With a handle in argv instead
// (a spawned child), opens it, adds 1 to every element and exits.
import { createRequire } from 'node:module'

const so = createRequire(import.meta.url)('../..')
if (process.env.SO_INSTALL === '1') so.install()

const handle = process.argv[2]
if (handle) {
  const v = so.open(handle)
  for (let i = 0; i < v.length; i++) v[i] += 1
  process.exit(0)
}
globalThis.kept = []
process.on('message', async (m) => {
  if (m === 'exit') return process.exit(0)
  // A message to send back as it arrived: what the channel made of it.
  if (m.echo !== undefined) return process.send({ echo: m.echo })
  const { id, fn, args } = m
  try {
    const value = await new Function(`return (${fn})`)()(so, ...args)
    process.send({ id, ok: true, value })
  } catch (e) {
    process.send({ id, ok: false, error: { code: e?.code, message: e?.message } })
  }
})
process.send({ ready: true })
