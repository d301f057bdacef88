// Makes a fresh clone ready: installs the dev tools if they are missing, and rebuilds the native
// addon and the compiled TypeScript when their sources are newer. Runs before test, demo, bench.
import { execSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const dist = path.join(root, 'dist')
const sh = (cmd) => execSync(cmd, { cwd: root, stdio: 'inherit' })
const mtime = (p) => (fs.existsSync(p) ? fs.statSync(p).mtimeMs : 0)
const newest = (dir, test) => {
  let m = 0
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile() && test(e.name)) m = Math.max(m, mtime(path.join(e.parentPath ?? e.path, e.name)))
  }
  return m
}

if (!fs.existsSync(path.join(root, 'node_modules', '.bin', 'napi'))) {
  sh(fs.existsSync(path.join(root, 'package-lock.json')) ? 'npm ci' : 'npm install')
}

const addon = fs.existsSync(dist) ? fs.readdirSync(dist).filter((f) => /^sharedobject\..*\.node$/.test(f)) : []
const addonTime = Math.min(...addon.map((f) => mtime(path.join(dist, f))), mtime(path.join(dist, 'binding.js')))
const rustTime = Math.max(
  newest(path.join(root, 'crates'), (n) => n.endsWith('.rs') || n === 'Cargo.toml'),
  mtime(path.join(root, 'Cargo.toml')),
  mtime(path.join(root, 'Cargo.lock')),
)
if (addon.length === 0 || addonTime < rustTime) sh('npm run build:native')

const tsTime = Math.max(newest(path.join(root, 'src'), (n) => n.endsWith('.ts')), mtime(path.join(root, 'index.ts')), mtime(path.join(root, 'tsconfig.json')))
if (mtime(path.join(dist, 'index.js')) < Math.max(tsTime, mtime(path.join(dist, 'binding.d.ts')))) sh('npm run build:ts')
