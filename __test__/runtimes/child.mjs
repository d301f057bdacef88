// A child process for the runtime scenarios: runs the functions its parent sends (as source),
// with the package in scope, and replies with what they return. With a handle in argv instead
// (a spawned child), opens it, adds 1 to every element and exits; with --churn, see below.
import { createRequire } from 'node:module'

const so = createRequire(import.meta.url)('../..')
if (process.env.SO_INSTALL === '1') so.install()

const handle = process.argv[2]
if (handle === '--churn') {
  // Makes and drops 500 vectors, has the engine collect them (it releases their memory when and
  // on the thread it likes), keeps one, prints how many mappings are left, and ends by itself
  // with that one live. Run with the engine's gc exposed.
  for (let i = 0; i < 500; i++) so.share(new Float64Array(16))[0] = i
  const gc = globalThis.gc ?? (() => globalThis.Bun.gc(true))
  for (let i = 0; i < 40 && so.stats().mappings > 250; i++) {
    gc()
    await new Promise((r) => setTimeout(r, 25))
  }
  globalThis.kept = so.share(Float64Array.of(1))
  console.log(JSON.stringify({ mappings: so.stats().mappings }))
} else if (handle) {
  const v = so.open(handle)
  for (let i = 0; i < v.length; i++) v[i] += 1
  process.exit(0)
} else {
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
}
