// A cluster work queue: the primary puts jobs on a channel, any free worker takes the next one,
// reads its inputs from a shared vector, writes its outputs to another, and reports on a second
// channel. Then the same work through process.send, for comparison. Both throughputs are
// printed, the outputs are checked to match, and everything exits by itself.
const cluster = require('node:cluster')
const so = require('@sharedobject/core')

const N = 1_000_000 // inputs, float64
const CHUNK = 250 // inputs per job
const JOBS = N / CHUNK
const WORKERS = 4

const work = (inputs, outputs, job) => {
  for (let i = job * CHUNK; i < (job + 1) * CHUNK; i++) outputs[i] = Math.sqrt(inputs[i]) * 2
}
const u32 = (n) => new Uint8Array(new Uint32Array([n]).buffer)
const fromU32 = (m) => m[0] | (m[1] << 8) | (m[2] << 16) | (m[3] << 24)

async function primary() {
  const inputs = so.alloc('float64', N)
  for (let i = 0; i < N; i++) inputs[i] = i
  const viaChannel = so.alloc('float64', N)
  const viaSend = so.alloc('float64', N)
  const jobs = so.channel({ capacity: 256, maxMessageBytes: 4 })
  const done = so.channel({ capacity: 256, maxMessageBytes: 4 })
  const workers = []
  for (let i = 0; i < WORKERS; i++) {
    // Handles travel in the environment: a few dozen bytes each.
    const env = { JOBS: so.handleOf(jobs), DONE: so.handleOf(done), IN: so.handleOf(inputs), OUT: so.handleOf(viaChannel), OUT2: so.handleOf(viaSend) }
    workers.push(cluster.fork(env))
  }
  await Promise.all(workers.map((w) => new Promise((resolve) => w.once('message', resolve))))

  // 1. The channel: keep the ring of jobs full, and sleep on the reports when it is.
  let t0 = performance.now()
  for (let sent = 0, reported = 0; reported < JOBS; ) {
    while (sent < JOBS && jobs.trySend(u32(sent))) sent++
    done.receive() // blocks until a worker reports (sendAsync / receiveAsync would not)
    reported++
    while (done.tryReceive() !== undefined) reported++
  }
  const channelMs = performance.now() - t0
  jobs.end() // the workers' loops end once the channel is empty

  // 2. process.send: the primary deals the jobs out round-robin and counts the replies.
  t0 = performance.now()
  await new Promise((resolve) => {
    let replies = 0
    for (const w of workers) {
      w.on('message', () => {
        if (++replies === JOBS) resolve()
      })
    }
    for (let j = 0; j < JOBS; j++) workers[j % WORKERS].send(j)
  })
  const sendMs = performance.now() - t0

  const rate = (ms) => `${Math.round(JOBS / (ms / 1000))} jobs/s`
  console.log(`channel: ${JOBS} jobs of ${CHUNK} inputs in ${channelMs.toFixed(0)} ms, ${rate(channelMs)}`)
  console.log(`process.send: ${JOBS} jobs of ${CHUNK} inputs in ${sendMs.toFixed(0)} ms, ${rate(sendMs)}`)
  let same = true
  for (let i = 0; i < N; i++) same &&= viaChannel[i] === viaSend[i] && viaSend[i] === Math.sqrt(i) * 2
  console.log(same ? `both queues computed the same ${N} outputs` : 'the outputs differ')
  for (const w of workers) w.disconnect() // each worker exits once its IPC channel closes
}

function worker() {
  const jobs = so.open(process.env.JOBS)
  const done = so.open(process.env.DONE)
  const inputs = so.open(process.env.IN)
  const viaChannel = so.open(process.env.OUT)
  const viaSend = so.open(process.env.OUT2)
  process.on('message', (job) => {
    work(inputs, viaSend, job)
    process.send(job)
  })
  process.send('ready', () => {
    // A worker with nothing else to do blocks on the channel (for await would not block); the
    // loop ends when the primary ends the channel, and process.send's jobs are handled after.
    for (const m of jobs) {
      const job = fromU32(m)
      work(inputs, viaChannel, job)
      done.send(u32(job))
    }
  })
}

if (cluster.isPrimary) primary()
else worker()
