// `npm install` wall time of a project with a few hundred dependencies, everything served by
// akmesh vs everything served by Verdaccio (no uplinks). Same tarballs published to both; cold
// npm cache and no lockfile on every run, so npm fetches every packument and tarball.
//
//   node_modules/.bin/node bench/npm-install.ts
//   env: BENCH_RUNS (default 3), BENCH_ANONYMOUS=1 (no token in the npmrc),
//        BENCH_ROOTS=a,b,c (the project's direct dependencies; default: lib/corpus.ts DEFAULT_ROOTS),
//        AKMESH_BENCH_LOG_LEVEL (akmesh log level; default: the node's own default)
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { installCorpus } from './lib/corpus.ts'
import { main, run, tempDir } from './lib/proc.ts'
import { load, startRegistries } from './lib/registries.ts'
import { fmt, log, median, ratio, table, timeMs } from './lib/stats.ts'
import type { Registry } from './lib/types.ts'

const RUNS = Number(process.env.BENCH_RUNS ?? 3)
const ANONYMOUS = process.env.BENCH_ANONYMOUS === '1'

await main(async () => {
  const corpus = await installCorpus()
  const { registries, failures } = await startRegistries()
  if (registries.length === 0) throw new Error(failures.join('\n'))

  const publishMs = new Map<string, number>()
  const usable: Registry[] = []
  for (const reg of registries) {
    try {
      publishMs.set(reg.name, await load(reg, corpus.packages))
      usable.push(reg)
    } catch (err) {
      failures.push(`${reg.name}: loading the corpus failed: ${err instanceof Error ? err.message : String(err)}`)
      log(failures.at(-1)!)
    }
  }

  const install = async (reg: Registry): Promise<{ ms: number, installed: number }> => {
    const dir = tempDir(`install-${reg.name}`)
    const project = join(dir, 'project')
    const cache = join(dir, 'cache')
    const userconfig = join(dir, 'npmrc')
    mkdirSync(project, { recursive: true })
    mkdirSync(cache, { recursive: true })
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'bench-project', version: '1.0.0', private: true, dependencies: corpus.dependencies }, null, 2))
    const authKey = reg.registry.replace(/^https?:/, '')
    // Only our settings: registry and its token (reads are authenticated, as in a company
    // registry, unless BENCH_ANONYMOUS=1).
    const auth = ANONYMOUS ? '' : `${authKey}:_authToken=${reg.token}\n`
    writeFileSync(userconfig, `registry=${reg.registry}\n${auth}fund=false\naudit=false\nupdate-notifier=false\n`)
    const { ms } = await timeMs(async () => await run('npm', [
      'install', '--no-audit', '--no-fund', '--ignore-scripts', '--loglevel=error',
      '--registry', reg.registry, '--cache', cache, '--userconfig', userconfig
    ], { cwd: project, env: { ...process.env, npm_config_userconfig: userconfig } }))
    const lock = JSON.parse(readFileSync(join(project, 'package-lock.json'), 'utf8')) as { packages: Record<string, { resolved?: string }> }
    const installed = Object.keys(lock.packages).filter(p => p !== '').length
    rmSync(dir, { recursive: true, force: true })
    return { ms, installed }
  }

  const times = new Map<string, number[]>(usable.map(r => [r.name, []]))
  const counts = new Map<string, number>()
  for (let i = 0; i < RUNS; i++) {
    // Alternate the order so neither registry always runs on a warmer machine.
    for (const reg of i % 2 === 0 ? [...usable] : [...usable].reverse()) {
      try {
        const { ms, installed } = await install(reg)
        times.get(reg.name)!.push(ms)
        counts.set(reg.name, installed)
        log(`${reg.name} run ${i + 1}/${RUNS}: ${fmt(ms / 1000)} s, ${installed} packages installed`)
      } catch (err) {
        failures.push(`${reg.name}: npm install failed: ${err instanceof Error ? err.message : String(err)}`)
        log(failures.at(-1)!)
        usable.splice(usable.indexOf(reg), 1)
      }
    }
  }

  const uniqueNames = new Set(corpus.packages.map(p => p.name)).size
  console.log(`\nnpm install, cold cache, no lockfile, ${ANONYMOUS ? 'anonymous' : 'authenticated'} reads: ${Object.keys(corpus.dependencies).length} direct deps, corpus ${corpus.packages.length} name@version (${uniqueNames} names), ${RUNS} runs each`)
  const rows = [['registry', 'published (s)', 'installed pkgs', 'runs (s)', 'median (s)']]
  for (const [name, ts] of times) {
    if (ts.length === 0) continue
    rows.push([name, fmt((publishMs.get(name) ?? NaN) / 1000), String(counts.get(name) ?? ''), ts.map(t => fmt(t / 1000)).join(' '), fmt(median(ts) / 1000)])
  }
  table(rows)
  const a = times.get('akmesh') ?? []
  const v = times.get('verdaccio') ?? []
  if (a.length > 0 && v.length > 0) console.log(`\nratio akmesh/verdaccio (median install time, lower is better for akmesh): ${ratio(median(a), median(v))}`)
  if (failures.length > 0) {
    console.log(`\nFAILURES:\n${failures.map(f => `- ${f}`).join('\n')}`)
    process.exitCode = 1
  }
})
