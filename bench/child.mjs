// The receiving side of bench/run.mjs. The same file runs as a forked child process (every
// transport but one) and as a worker thread (the SharedArrayBuffer transport), so that every
// transport is received and read by exactly the same code.
//
// Protocol: the parent sends one request at a time and waits for its one reply; replies come
// back in order, which is all the parent relies on.
import fs from 'node:fs'
import { createRequire } from 'node:module'
import { isMainThread, parentPort } from 'node:worker_threads'

import so from '@sharedobject/core'

import { summer } from './summer.mjs'

const require = createRequire(import.meta.url)
let shm = null
try {
  shm = require('shm-typed-array')
} catch {
  // Optional peer: the parent only uses that transport when it could load it too.
}

const reply = isMainThread ? (m) => process.send(m) : (m) => parentPort.postMessage(m)
const onRequest = (fn) => (isMainThread ? process.on('message', fn) : parentPort.on('message', fn))
// Without --expose-gc memory figures get noisier, but nothing else changes.
const gc = typeof globalThis.gc === 'function' ? globalThis.gc : () => {}

/**
 * Collects garbage and lets V8 free the memory. A second collection waits for the first one's
 * array-buffer sweeping, which runs in the background and is what returns big buffers.
 */
async function collect() {
  gc()
  await new Promise((resolve) => setImmediate(resolve))
  gc()
}

// One sum function for every vector, so that shared and private vectors run the same
// optimised machine code.
function sum(a) {
  let s = 0
  for (let i = 0; i < a.length; i++) s += a[i]
  return s
}

/** Turns a request into the vector the transport delivers, as a user would get it. */
function receive(msg) {
  switch (msg.transport) {
    case 'json': // A plain Array as JSON.parse left it; converting it would only add cost.
    case 'advanced': // A Float64Array the V8 deserializer copied out of the message.
      return msg.x
    case 'file': {
      const b = fs.readFileSync(msg.path)
      // Large reads get their own buffer, 8-aligned; a small pooled one may not be.
      return b.byteOffset % 8 === 0 ? new Float64Array(b.buffer, b.byteOffset, b.length / 8) : new Float64Array(new Uint8Array(b).buffer)
    }
    case 'sharedobject':
      return so.revive(msg).x
    case 'shm-typed-array':
      return shm.get(msg.key, 'Float64Array')
    case 'sab':
      return new Float64Array(msg.sab)
    default:
      throw new Error(`unknown transport ${msg.transport}`)
  }
}

function release(transport, v, msg) {
  if (transport === 'sharedobject') so.close(v)
  else if (transport === 'shm-typed-array') shm.detach(msg.key)
  // Everything else is garbage once dropped.
}

let held = null // { transport, v, msg }: a vector kept for the memory figure
let channels = null // { requests, replies }: the channels of channelServe, opened once

const handlers = {
  // Hand-over: get the vector, read one element, answer. Keeping and summing it is for the
  // memory figure, where every page must have been touched as real use would.
  take(msg) {
    const v = receive(msg)
    const last = v[v.length - 1]
    if (!msg.keep) {
      reply({ last })
      release(msg.transport, v, msg)
      return
    }
    held = { transport: msg.transport, v, msg }
    reply({ last, sum: sum(v) })
  },

  // The same hand-over through the package's own channels (one of its own per receiver, as each
  // Python receiver has a pipe), served the way Python's receivers serve theirs
  // (bench/py-handover.py): in a loop, asleep in receive() between hand-overs, with nothing else
  // run in between. Each takes a handle (receive() opens the vector), reads x[N-1], closes it and
  // sends x[N-1] back on a channel all share, until a message that is not a vector ends the
  // loop. The process.send reply only says this process is about to wait.
  channelServe(msg) {
    channels ??= { requests: so.open(msg.requests), replies: so.open(msg.replies) }
    reply({ waiting: true })
    for (;;) {
      const v = channels.requests.receive()
      if (!(v instanceof Float64Array)) return
      const last = v[v.length - 1]
      so.close(v)
      channels.replies.send(new Float64Array([last]))
    }
  },

  // The messaging alone: what a hand-over costs before anything is opened.
  ping() {
    reply({})
  },

  async drop() {
    if (held) release(held.transport, held.v, held.msg)
    held = null
    await collect()
    reply({})
  },

  async gc() {
    await collect()
    reply({})
  },

  // A first full read of a freshly opened shared vector (its `open` and first touch included:
  // users pay them), opened with the default (pages mapped at first touch) and with
  // `populate: 'background'`, beside the same read over the mapping once warm and over a private
  // copy. Each repetition has its own segment, read in both ways (in turn which comes first; the
  // first reader closes it, so the second maps it afresh), and its own copy, all alive at once,
  // so each lands on other physical pages: on a virtual machine the speed of a buffer depends on
  // where it landed by as much as ±20%, and one placement per side would measure that luck. The
  // copies are summed after all the shared sums, so none is fresher than the segments. The
  // reader is `summer`'s: a new, equally warmed function per timed pass.
  async sum(msg) {
    const likeShared = so.alloc('float64', 4096)
    const likePrivate = new Float64Array(4096)
    const times = { cold: [], background: [], warm: [], private: [] }
    const sums = new Set()
    let copies = []
    for (const [i, h] of msg.handles.entries()) {
      const ways = i % 2 ? ['background', 'cold'] : ['cold', 'background']
      for (const way of ways) {
        let f = summer(likeShared)
        let t = performance.now()
        const v = so.open(h, way === 'background' ? { populate: 'background' } : undefined)
        sums.add(f(v))
        times[way].push(performance.now() - t)
        if (way === 'cold') {
          f = summer(likeShared)
          t = performance.now()
          f(v)
          times.warm.push(performance.now() - t)
          copies.push(v.slice())
        }
        so.close(v)
      }
    }
    for (const c of copies) {
      const f = summer(likePrivate)
      const t = performance.now()
      sums.add(f(c))
      times.private.push(performance.now() - t)
    }
    copies = null
    so.close(likeShared)
    await collect()
    reply({ ...times, sums: [...sums] })
  },

  exit() {
    if (held) release(held.transport, held.v, held.msg)
    reply({})
    if (isMainThread) process.disconnect()
    else parentPort.close()
  },
}

onRequest(async (msg) => {
  try {
    await handlers[msg.op](msg)
  } catch (e) {
    reply({ error: String(e?.stack ?? e) })
  }
})

// Get the sum loop optimised before anything is timed.
const warm = new Float64Array(1 << 16).fill(1)
for (let i = 0; i < 50; i++) sum(warm)

reply({ ready: true, pid: process.pid })
