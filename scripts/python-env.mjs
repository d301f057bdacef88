// The Python the Arrow test reads shared tables with: a virtual environment in .venv-py/ with
// pyarrow, duckdb and polars from PyPI, made when missing. Prints the interpreter's path.
//   node scripts/python-env.mjs
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
export const venv = path.join(root, '.venv-py')
// polars 2 dropped read_ipc's memory_map and copies the file; polars 1 maps it, as the test checks.
export const REQUIREMENTS = ['pyarrow>=14', 'duckdb>=1.1', 'polars>=1.0,<2']
const win = process.platform === 'win32'
const python = path.join(venv, win ? 'Scripts' : 'bin', win ? 'python.exe' : 'python')

const works = () => {
  try {
    execFileSync(python, ['-c', "import inspect, pyarrow, duckdb, polars; assert 'memory_map' in inspect.signature(polars.read_ipc).parameters"], {
      stdio: 'ignore',
    })
    return true
  } catch {
    return false
  }
}

/** The path of a Python with pyarrow, duckdb and polars, installing them first if need be. */
export function pythonEnv() {
  if (fs.existsSync(python) && works()) return python
  const base = process.env.PYTHON ?? (win ? 'python' : 'python3')
  try {
    if (!fs.existsSync(python)) execFileSync(base, ['-m', 'venv', venv], { stdio: ['ignore', 'inherit', 'inherit'] })
    execFileSync(python, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', ...REQUIREMENTS], {
      stdio: ['ignore', 'inherit', 'inherit'],
    })
  } catch (e) {
    throw new Error(
      `could not make the Python environment ${venv} with ${REQUIREMENTS.join(', ')} ` +
        `(it needs ${base} with the venv module, and PyPI): ${e.message}`,
    )
  }
  if (!works()) throw new Error(`${python} cannot import pyarrow, duckdb and polars after installing them`)
  return python
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  console.log(pythonEnv())
}
