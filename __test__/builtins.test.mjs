// Importing the package changes no built-in: no property on any TypedArray prototype, and
// Node's private serializer method is its own. Checked in fresh processes, before and after the
// import (CommonJS and ESM), so that nothing else in the test runner can mask a change.
import test from 'ava'
import { run } from './helpers.mjs'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))

const probe = `
const v8 = require('node:v8')
const TA = Object.getPrototypeOf(Uint8Array.prototype)
const snap = () => ({
  typedArray: Object.getOwnPropertyNames(TA).concat(Object.getOwnPropertySymbols(TA).map(String)).sort(),
  float64: Object.getOwnPropertyNames(Float64Array.prototype).sort(),
  writeHostObject: v8.DefaultSerializer.prototype._writeHostObject,
  readHostObject: v8.DefaultDeserializer.prototype._readHostObject,
  objectProto: Object.getOwnPropertyNames(Object.prototype).sort(),
})
const before = snap()
LOAD.then((so) => {
  const x = so.share(Float64Array.of(1, 2, 3))
  JSON.stringify({ x, p: x.subarray(1) })
  const after = snap()
  const same = (a, b) => JSON.stringify(a) === JSON.stringify(b)
  console.log(JSON.stringify({
    typedArray: same(before.typedArray, after.typedArray),
    float64: same(before.float64, after.float64),
    objectProto: same(before.objectProto, after.objectProto),
    writeHostObject: before.writeHostObject === after.writeHostObject,
    readHostObject: before.readHostObject === after.readHostObject,
    toJSON: 'toJSON' in TA,
  }))
  so.close(x)
})
`

for (const [how, load] of [
  ['require', "Promise.resolve(require('@sharedobject/core'))"],
  ['import', "import('@sharedobject/core').then((m) => m.default)"],
]) {
  test(`${how} of the package changes no TypedArray prototype and not v8.DefaultSerializer.prototype._writeHostObject`, async (t) => {
    const { stdout } = await run(process.execPath, ['-e', probe.replace('LOAD', load)], { cwd: root })
    t.deepEqual(JSON.parse(stdout), { typedArray: true, float64: true, objectProto: true, writeHostObject: true, readHostObject: true, toJSON: false })
  })
}
