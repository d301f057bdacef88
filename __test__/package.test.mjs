// The artifact is what is tested: the main package and this machine's platform package are
// packed as `npm publish` would ship them, installed offline into a folder of their own, and used
// from there by CommonJS, ES modules, strict TypeScript and npx, as a user would.
import test from 'ava'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { fixture, run, can, when, isLinux } from './helpers.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))

/** This machine's napi target, named as the addon file and the platform package are. */
function target() {
  const { platform, arch } = process
  if (platform === 'linux') return `linux-${arch}-${process.report.getReport().header.glibcVersionRuntime ? 'gnu' : 'musl'}`
  if (platform === 'win32') return `win32-${arch}-msvc`
  return `${platform}-${arch}`
}
const TARGET = target()
const PLATFORM_PKG = `@sharedobject/core-${TARGET}`

// npm as the test command was started with (or from PATH), without the npm_* variables of the
// repository's own run: npm_config_local_prefix would make every install land in the repository.
const npmCli = process.env.npm_execpath && /npm-cli\.js$/.test(process.env.npm_execpath) ? process.env.npm_execpath : undefined
const keep = new Set(['npm_config_cache', 'npm_config_userconfig', 'npm_config_globalconfig', 'npm_config_cafile', 'npm_config_registry'])
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k) || keep.has(k.toLowerCase())))
delete env.INIT_CWD
function npmTool(tool, args, cwd) {
  const cli = npmCli && path.join(path.dirname(npmCli), `${tool}-cli.js`)
  if (cli && fs.existsSync(cli)) return run(process.execPath, [cli, ...args], { cwd, env })
  return run(tool, args, { cwd, env, shell: process.platform === 'win32' })
}
const npm = (args, cwd) => npmTool('npm', args, cwd)
const node = (args, cwd) => run(process.execPath, args, { cwd, env })
const tsc = (args, cwd) => node([path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), ...args], cwd)

/** Packs the folder `dir` into `dest`; returns the tarball's path and its file list. */
async function pack(dir, dest, extra = []) {
  const { stdout } = await npm(['pack', '--json', '--pack-destination', dest, ...extra], dir)
  const [info] = JSON.parse(stdout)
  return { tarball: path.join(dest, info.filename), files: info.files.map((f) => f.path).sort() }
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sharedobject-pack-'))
/** Made once by `before`: the two packs, and the consumer folders that installed them. */
const made = {}

test.before(async () => {
  if (!can.npmPack) return
  // What would be published: the real packlist of the repository's package.json...
  const { stdout } = await npm(['pack', '--dry-run', '--json'], root)
  const files = JSON.parse(stdout)[0].files.map((f) => f.path)
  // ...with the optionalDependencies that `napi prepublish` adds: every platform package, at
  // this version, so that npm fetches the one that fits the machine.
  const main = path.join(tmp, 'main')
  for (const f of files) {
    fs.mkdirSync(path.dirname(path.join(main, f)), { recursive: true })
    fs.copyFileSync(path.join(root, f), path.join(main, f))
  }
  const published = JSON.parse(fs.readFileSync(path.join(main, 'package.json'), 'utf8'))
  published.optionalDependencies = {}
  for (const dir of fs.readdirSync(path.join(root, 'npm')).sort()) {
    const { name } = JSON.parse(fs.readFileSync(path.join(root, 'npm', dir, 'package.json'), 'utf8'))
    published.optionalDependencies[name] = published.version
  }
  fs.writeFileSync(path.join(main, 'package.json'), `${JSON.stringify(published, null, 2)}\n`)
  made.main = await pack(main, tmp)
  made.published = published

  // This machine's platform package, holding the addon the build made.
  const platform = path.join(tmp, 'platform')
  fs.cpSync(path.join(root, 'npm', TARGET), platform, { recursive: true })
  fs.copyFileSync(path.join(root, 'dist', `sharedobject.${TARGET}.node`), path.join(platform, `sharedobject.${TARGET}.node`))
  made.platform = await pack(platform, tmp)

  // The package's own dependencies, packed from the repository's node_modules: `--offline`
  // resolves a range only from registry metadata already in the npm cache, which `npm ci` never
  // puts there, so a machine whose cache has never seen them would fail with ENOTCACHED. A
  // tarball that satisfies the range is used as it is.
  made.deps = []
  for (const dep of Object.keys(published.dependencies ?? {}).sort()) {
    // As installed: its `prepare` (a build from sources npm did not install) must not run.
    made.deps.push((await pack(path.join(root, 'node_modules', dep), tmp, ['--ignore-scripts'])).tarball)
  }

  // A user's project: both tarballs, offline. npm skips the other platforms' packages by their
  // os/cpu/libc before fetching anything.
  const install = async (name, args) => {
    const dir = path.join(tmp, name)
    fs.mkdirSync(dir)
    fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name, private: true }))
    await npm(['install', '--offline', '--no-audit', '--no-fund', ...args], dir)
    return dir
  }
  made.user = await install('user', [made.main.tarball, made.platform.tarball, ...made.deps])
  // A newcomer's folder: the tarballs and nothing else, for the README's path.
  made.newcomer = await install('newcomer', [made.main.tarball, made.platform.tarball, ...made.deps])
  // The same project where optional dependencies were skipped: no binary for this machine.
  made.nobinary = await install('nobinary', ['--omit=optional', made.main.tarball, ...made.deps])
  for (const f of fs.readdirSync(fixture('consumer'))) fs.copyFileSync(path.join(fixture('consumer'), f), path.join(made.user, f))
})

test.after.always(() => {
  fs.rmSync(tmp, { recursive: true, force: true })
})

when(can.npmPack, test)('the main tarball holds only dist, include, README, LICENSE and package.json, and no install scripts', (t) => {
  const { files } = made.main
  t.deepEqual(
    files.filter((f) => !/^(package\.json|README\.md|LICENSE|dist\/.+\.(js|js\.map|d\.ts)|include\/.+)$/.test(f)),
    [],
    'nothing else is shipped',
  )
  for (const f of ['LICENSE', 'README.md', 'package.json', 'dist/index.js', 'dist/index.d.ts', 'dist/binding.js', 'dist/src/cli.js', 'dist/src/r.js', 'dist/src/r.d.ts', 'include/sharedobject.h']) {
    t.true(files.includes(f), `${f} is shipped`)
  }
  t.false(files.some((f) => f.endsWith('.node')), 'the addon ships in the platform packages')
  t.false(files.includes('binding.gyp'), 'npm would run node-gyp for a binding.gyp')
  for (const s of ['preinstall', 'install', 'postinstall']) t.is(made.published.scripts?.[s], undefined, `no ${s} script`)
  t.is(Object.keys(made.published.optionalDependencies).length, pkg.napi.targets.length, 'one platform package per target')
  t.true(PLATFORM_PKG in made.published.optionalDependencies)
})

when(can.npmPack, test)('the platform tarball holds the addon, its package.json and README, and no scripts', (t) => {
  t.deepEqual(made.platform.files, ['README.md', 'package.json', `sharedobject.${TARGET}.node`])
  const platformPkg = JSON.parse(fs.readFileSync(path.join(root, 'npm', TARGET, 'package.json'), 'utf8'))
  t.is(platformPkg.name, PLATFORM_PKG)
  t.is(platformPkg.version, pkg.version)
  t.is(platformPkg.scripts, undefined)
})

when(can.npmPack, test)('CommonJS: require() of the package, ./r and package.json; a child opens what it shares; internals stay private', async (t) => {
  const { stdout } = await node(['consumer.cjs'], made.user)
  const got = JSON.parse(stdout)
  t.is(got.resolved, path.join(fs.realpathSync(made.user), 'node_modules', '@sharedobject', 'core', 'dist', 'index.js'), 'the installed copy, not the repository')
  t.is(got.version, pkg.version)
  t.is(got.sum, 10)
  t.is(got.internal, 'ERR_PACKAGE_PATH_NOT_EXPORTED')
  const include = got.cppflags.replace(/^-I/, '').replace(/^"|"$/g, '')
  t.true(fs.existsSync(path.join(include, 'sharedobject.h')), `${got.cppflags} holds the C header`)
})

when(can.npmPack, test)('ES modules: default, namespace and named imports give the same module, every export named', async (t) => {
  const { stdout } = await node(['consumer.mjs'], made.user)
  t.deepEqual(JSON.parse(stdout), { defaultIsModule: true, namedAreTheSame: true, notNamed: [], notNamedR: [], strings: ['a', null, 'ü'] })
})

when(can.npmPack, test)('strict TypeScript type-checks against the installed types with node16 and bundler resolution', async (t) => {
  const base = {
    strict: true,
    noEmit: true,
    skipLibCheck: false,
    target: 'es2022',
    lib: ['es2022'],
    // A Node.js user has @types/node; the repository's copy stands in for it.
    typeRoots: [path.join(root, 'node_modules', '@types')],
    types: ['node'],
  }
  const configs = {
    'tsconfig.node16.json': { compilerOptions: { ...base, module: 'node16', moduleResolution: 'node16' }, files: ['consumer.mts', 'consumer.cts'] },
    'tsconfig.bundler.json': { compilerOptions: { ...base, module: 'esnext', moduleResolution: 'bundler' }, files: ['consumer.mts'] },
  }
  const checks = Object.entries(configs).map(async ([name, config]) => {
    fs.writeFileSync(path.join(made.user, name), JSON.stringify(config))
    const r = await tsc(['-p', name], made.user).catch((e) => e)
    t.is(r.code ?? 0, 0, `${name}: ${r.stdout}${r.stderr}`)
  })
  await Promise.all(checks)
})

when(can.npmPack, test)('npx sharedobject --help runs the installed CLI', async (t) => {
  const { stdout } = await npmTool('npx', ['--offline', 'sharedobject', '--help'], made.user)
  t.regex(stdout, /^usage: sharedobject <command>/)
  t.regex(stdout, /ls\s+list/)
})

when(can.npmPack, test)('without the platform package, the error says first which package this machine needs and how to install it', async (t) => {
  t.false(fs.existsSync(path.join(made.nobinary, 'node_modules', PLATFORM_PKG)))
  const probe = "try { require('@sharedobject/core'); console.log('{}') } catch (e) { console.log(JSON.stringify({ message: e.message, code: e.code })) }"
  const { stdout } = await node(['-e', probe], made.nobinary)
  const { message, code } = JSON.parse(stdout)
  const first = message.split('\n')[0]
  t.true(first.includes(PLATFORM_PKG), first)
  t.true(first.includes(`npm i ${PLATFORM_PKG}`), first)
  t.is(code, 'ERR_SHM_NO_BINARY')
})

// A newcomer's path: the README's example, taken from the README itself so the two cannot
// drift, run verbatim from a folder that installed the tarballs; then the demo from there.
when(can.npmPack, test)('the README’s example runs as it is from a folder that installed the packed tarballs', async (t) => {
  const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8')
  const example = /^## Example\n[^#]*?^```js\n([\s\S]*?)\n```$/m.exec(readme)?.[1]
  t.truthy(example, 'the README has an example under "## Example"')
  t.true(example.split('\n').length <= 15, 'of at most 15 lines')
  fs.writeFileSync(path.join(made.newcomer, 'example.cjs'), `${example}\n`)
  const { stdout } = await node(['example.cjs'], made.newcomer)
  t.is(stdout.trim(), 'the child summed 5000000')
})

// The demo reads each process's memory from /proc.
when(can.npmPack && isLinux, test)('the demo runs from the same folder against the installed package', async (t) => {
  fs.copyFileSync(path.join(root, 'demo', 'cluster.mjs'), path.join(made.newcomer, 'demo.mjs'))
  const { stdout } = await node(['--expose-gc', 'demo.mjs', '--n=1e6', '--workers=2'], made.newcomer)
  t.regex(stdout, /^sharedobject demo: 1,000,000 float64 \(8 MB\) to 2 cluster workers/)
  t.is(stdout.match(/worker \d sum: .*\(correct\)/g)?.length, 2, stdout)
  t.notRegex(stdout, /WRONG/)
})
