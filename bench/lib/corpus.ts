// Package corpora fetched once from the default npm registry (the mirror) and cached under
// bench/.work (gitignored), so reruns need no network.
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import semver from 'semver'
import { escapeName, pool } from './npm-publish.ts'
import { run, WORK_DIR } from './proc.ts'
import { log } from './stats.ts'

export interface CorpusPackage { name: string, version: string, file: string }

export interface InstallCorpus {
  roots: string[]
  /** The test project's dependencies (exact versions of the roots). */
  dependencies: Record<string, string>
  packages: CorpusPackage[]
}

/** Roots of the install corpus: popular packages; their closure is ~250 name@version. */
export const DEFAULT_ROOTS = [
  'express', 'koa', 'pino', 'commander', 'yargs', 'fastify', 'axios', 'chalk', 'debug', 'lodash',
  'uuid', 'ws', 'semver', 'glob', 'rimraf', 'minimist', 'dotenv', 'eslint'
]
/** BENCH_ROOTS=a,b,c overrides the roots (cached in its own directory). */
export const ROOTS = process.env.BENCH_ROOTS != null && process.env.BENCH_ROOTS.trim() !== ''
  ? process.env.BENCH_ROOTS.split(',').map(s => s.trim()).filter(s => s !== '')
  : DEFAULT_ROOTS

let upstream: string | undefined
async function upstreamRegistry (): Promise<string> {
  if (upstream == null) {
    const { stdout } = await run('npm', ['config', 'get', 'registry'], { cwd: WORK_DIR })
    upstream = stdout.trim().replace(/\/?$/, '/')
  }
  return upstream
}

function integrityOf (buf: Buffer, algo: string): string {
  return `${algo}-${createHash(algo).update(buf).digest('base64')}`
}

/** Downloads a tarball (unless cached) and checks it against an SRI string if given. */
async function fetchTarball (url: string, dest: string, integrity?: string): Promise<void> {
  if (existsSync(dest)) return
  const res = await fetch(url)
  if (!res.ok) throw new Error(`GET ${url} -> ${res.status}`)
  const buf = Buffer.from(await res.arrayBuffer())
  if (integrity != null) {
    const ok = integrity.split(/\s+/).some(sri => {
      const algo = sri.slice(0, sri.indexOf('-'))
      return ['sha512', 'sha384', 'sha256', 'sha1'].includes(algo) && integrityOf(buf, algo) === sri
    })
    if (!ok) throw new Error(`integrity mismatch for ${url}`)
  }
  writeFileSync(`${dest}.part`, buf)
  renameSync(`${dest}.part`, dest)
}

interface Packument { versions: Record<string, { dist: { tarball: string, integrity?: string, shasum?: string } }> }

async function packument (name: string): Promise<Packument> {
  const url = `${await upstreamRegistry()}${escapeName(name)}`
  const res = await fetch(url, { headers: { accept: 'application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8' } })
  if (!res.ok) throw new Error(`GET ${url} -> ${res.status}`)
  return await res.json() as Packument
}

function fileName (name: string, version: string): string {
  return `${name.replace('/', '+')}-${version}.tgz`
}

/**
 * The dependency closure of ROOTS as resolved by npm against the default registry, every
 * name@version's tarball downloaded. Cached in bench/.work/install-corpus.
 */
export async function installCorpus (): Promise<InstallCorpus> {
  const custom = ROOTS.join() !== DEFAULT_ROOTS.join()
  const dir = join(WORK_DIR, custom ? `install-corpus-${createHash('sha1').update(ROOTS.join()).digest('hex').slice(0, 8)}` : 'install-corpus')
  const index = join(dir, 'corpus.json')
  if (existsSync(index)) {
    const c = JSON.parse(readFileSync(index, 'utf8')) as InstallCorpus
    if (c.roots?.join() === ROOTS.join() && c.packages.every(p => existsSync(join(dir, p.file)))) return { ...c, packages: c.packages.map(p => ({ ...p, file: join(dir, p.file) })) }
  }
  const resolveDir = join(dir, 'resolve')
  mkdirSync(resolveDir, { recursive: true })
  writeFileSync(join(resolveDir, 'package.json'), JSON.stringify({
    name: 'akmesh-bench-corpus', version: '1.0.0', private: true,
    dependencies: Object.fromEntries(ROOTS.map(r => [r, 'latest']))
  }, null, 2))
  writeFileSync(join(resolveDir, '.npmrc'), 'fund=false\naudit=false\nupdate-notifier=false\n')
  log(`resolving the dependency closure of ${ROOTS.length} packages (npm install --package-lock-only)`)
  await run('npm', ['install', '--package-lock-only', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error',
    '--cache', join(WORK_DIR, 'npm-cache')], { cwd: resolveDir })
  const lock = JSON.parse(readFileSync(join(resolveDir, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { name?: string, version?: string, integrity?: string, link?: boolean }>
  }
  const wanted = new Map<string, { name: string, version: string, integrity?: string }>()
  for (const [path, e] of Object.entries(lock.packages)) {
    if (path === '' || e.link === true || e.version == null) continue
    const name = e.name ?? path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length)
    wanted.set(`${name}@${e.version}`, { name, version: e.version, integrity: e.integrity })
  }
  const dependencies: Record<string, string> = {}
  for (const r of ROOTS) {
    const v = lock.packages[`node_modules/${r}`]?.version
    if (v == null) throw new Error(`root ${r} missing from the lockfile`)
    dependencies[r] = v
  }
  log(`downloading ${wanted.size} tarballs into ${dir}`)
  const names = [...new Set([...wanted.values()].map(w => w.name))]
  const packuments = new Map<string, Packument>()
  await pool(names, 8, async n => { packuments.set(n, await packument(n)) })
  const packages: CorpusPackage[] = []
  await pool([...wanted.values()], 8, async w => {
    const meta = packuments.get(w.name)!.versions[w.version]
    if (meta == null) throw new Error(`${w.name}@${w.version} not in the registry's packument`)
    const file = fileName(w.name, w.version)
    await fetchTarball(meta.dist.tarball, join(dir, file), w.integrity ?? meta.dist.integrity)
    packages.push({ name: w.name, version: w.version, file })
  })
  packages.sort((a, b) => a.name.localeCompare(b.name) || semver.compare(a.version, b.version))
  const corpus: InstallCorpus = { roots: ROOTS, dependencies, packages }
  writeFileSync(index, JSON.stringify(corpus, null, 2))
  return { ...corpus, packages: packages.map(p => ({ ...p, file: join(dir, p.file) })) }
}

/** The newest `count` stable versions of one package (for packument benchmarks). Cached. */
export async function versionsCorpus (name: string, count: number): Promise<CorpusPackage[]> {
  const dir = join(WORK_DIR, `versions-${name.replace('/', '+')}-${count}`)
  const index = join(dir, 'corpus.json')
  if (existsSync(index)) {
    const c = JSON.parse(readFileSync(index, 'utf8')) as CorpusPackage[]
    if (c.every(p => existsSync(join(dir, p.file)))) return c.map(p => ({ ...p, file: join(dir, p.file) }))
  }
  mkdirSync(dir, { recursive: true })
  const doc = await packument(name)
  const versions = Object.keys(doc.versions).filter(v => semver.valid(v) != null && semver.prerelease(v) == null)
    .sort(semver.compare).slice(-count)
  if (versions.length < count) throw new Error(`${name}: only ${versions.length} stable versions on the registry, wanted ${count}`)
  log(`downloading ${versions.length} versions of ${name} into ${dir}`)
  const out: CorpusPackage[] = []
  await pool(versions, 8, async v => {
    const meta = doc.versions[v]!
    const file = fileName(name, v)
    await fetchTarball(meta.dist.tarball, join(dir, file), meta.dist.integrity)
    out.push({ name, version: v, file })
  })
  out.sort((a, b) => semver.compare(a.version, b.version))
  writeFileSync(index, JSON.stringify(out, null, 2))
  return out.map(p => ({ ...p, file: join(dir, p.file) }))
}

/**
 * Publishes packages to a registry: versions of one package in ascending order (so dist-tags.latest
 * ends on the highest), different packages concurrently.
 */
export async function publishAll (pub: (p: CorpusPackage) => Promise<void>, packages: CorpusPackage[], concurrency = 4): Promise<void> {
  const byName = new Map<string, CorpusPackage[]>()
  for (const p of packages) byName.set(p.name, [...(byName.get(p.name) ?? []), p])
  await pool([...byName.values()], concurrency, async versions => {
    for (const p of [...versions].sort((a, b) => semver.compare(a.version, b.version))) await pub(p)
  })
}
