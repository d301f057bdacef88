// The reader of the first-read figures: a sum at memory speed, the same in the parent (to check
// the children's answers) and in every reader.
//
// Four accumulators, so that the loop runs at the memory's speed rather than at one addition's
// latency: the harshest reader for a comparison of memory (a page fault costs the most beside a
// fast loop). A new function per timed pass, warmed on a small array of the kind it will read,
// so that every timed sum is the first long call of the same code; and on Node 24 and later the
// reader runs with V8's optimising tier capped at Maglev (`READER_FLAGS`): there TurboFan
// compiles this loop to code whose speed changes from one call to the next (12-55 ms per 400 MB on
// Node 24, 23-190 ms for a one-accumulator loop on Node 26, when it replaces the running loop
// midway), which would measure the compiler, not memory. Maglev's code is steady (19-20 ms).
const BODY = `
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0
  const n = a.length - (a.length % 4)
  for (let i = 0; i < n; i += 4) { s0 += a[i]; s1 += a[i + 1]; s2 += a[i + 2]; s3 += a[i + 3] }
  for (let i = n; i < a.length; i++) s0 += a[i]
  return s0 + s1 + s2 + s3`

/** A new sum function, warmed on `like` (a small array of the kind it will read). */
export function summer(like) {
  const f = new Function('a', BODY)
  for (let i = 0; i < 300; i++) f(like)
  return f
}

/** The V8 flags a reader runs with on this Node (see above). */
export const READER_FLAGS = Number(process.versions.node.split('.')[0]) >= 24 ? ['--max-opt=2'] : []
