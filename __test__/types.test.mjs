// The public types say what each call gives: __test__/types/api.ts holds expectTypeOf assertions,
// and compiling it under --strict is the test.
import test from 'ava'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))

test('the public API’s types hold: tsc --noEmit --strict on __test__/types', async (t) => {
  const tsc = fileURLToPath(new URL('../node_modules/typescript/bin/tsc', import.meta.url))
  try {
    await promisify(execFile)(process.execPath, [tsc, '-p', '__test__/types/tsconfig.json'], { cwd: root })
    t.pass()
  } catch (e) {
    t.fail(`${e.stdout}${e.stderr}`)
  }
})
