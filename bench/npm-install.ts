// `npm install` wall time of a project with a few hundred dependencies, everything served by
// akmesh vs everything served by Verdaccio (no uplinks). Same tarballs published to both; cold
// npm cache and no lockfile on every run, so npm fetches every packument and tarball.
//
//   node_modules/.bin/node bench/npm-install.ts
//   env: BENCH_RUNS (default 3), BENCH_ANONYMOUS=1 (no token in the npmrc),
//        BENCH_ROOTS=a,b,c (the project's direct dependencies; default: lib/corpus.ts DEFAULT_ROOTS),
//        AKMESH_BENCH_LOG_LEVEL (akmesh log level; default: the node's own default),
//        BENCH_BASELINE=<another checkout's root> (its akmesh too, as "akmesh-base", same corpus),
//        BENCH_STATIC=0 (no nginx floor: by default a third "registry", nginx serving akmesh's
//        abbreviated packuments and tarballs as static files, shows what npm costs by itself)
// Besides wall time it prints the server's CPU seconds during each install (/proc), npm's own CPU
// seconds, and npm's view of each request (--loglevel=http: count and latency of packument and
// tarball GETs), which is what says where an install's time goes.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { installCorpus } from './lib/corpus.ts'
import { startAkmesh } from './lib/akmesh.ts'
import { cpuMs, main, run, tempDir } from './lib/proc.ts'
import { load, startRegistries } from './lib/registries.ts'
import { gitCommit, loadAverage, runInfo } from './lib/run-info.ts'
import { startStaticRegistry } from './lib/static-registry.ts'
import { fmt, log, median, ratio, table, timeMs } from './lib/stats.ts'
import type { Registry } from './lib/types.ts'

const RUNS = Number(process.env.BENCH_RUNS ?? 3)
const ANONYMOUS = process.env.BENCH_ANONYMOUS === '1'
const STATIC = process.env.BENCH_STATIC !== '0'
const BASELINE = process.env.BENCH_BASELINE

interface Install { ms: number, installed: number, serverCpuMs: number, npmCpuMs: number, requests: RequestTimes }
interface RequestTimes { packuments: number[], tarballs: number[], other: number }

/** npm's `--loglevel=http` lines: `npm http fetch GET 200 <url> 12ms (cache miss)`. */
function requestTimes (stderr: string): RequestTimes {
  const r: RequestTimes = { packuments: [], tarballs: [], other: 0 }
  for (const m of stderr.matchAll(/npm http fetch GET (\d+) (\S+) (\d+)ms/g)) {
    if (m[1] !== '200') r.other++
    else if (m[2]!.endsWith('.tgz')) r.tarballs.push(Number(m[3]))
    else r.packuments.push(Number(m[3]))
  }
  return r
}

const p90 = (xs: number[]): number => xs.length === 0 ? NaN : [...xs].sort((a, b) => a - b)[Math.floor(xs.length * 0.9)]!

await main(async () => {
  const loadAtStart = loadAverage()
  const commitAtStart = gitCommit() // what is measured, even if the checkout moves during the run
  const corpus = await installCorpus()
  const { registries, failures } = await startRegistries()
  if (registries.length === 0) throw new Error(failures.join('\n'))
  if (BASELINE != null && BASELINE !== '') registries.push(await startAkmesh({ cli: join(BASELINE, 'node/cli.ts'), name: 'akmesh-base' }))

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
  const akmesh = usable.find(r => r.name === 'akmesh')
  if (STATIC && akmesh != null) {
    try {
      const { ms, value } = await timeMs(async () => await startStaticRegistry(akmesh.registry, [...new Set(corpus.packages.map(p => p.name))]))
      publishMs.set(value.name, ms)
      usable.push(value)
      log(`${value.name} up at ${value.registry} (copied from akmesh in ${fmt(ms / 1000)} s)`)
    } catch (err) {
      failures.push(`nginx-static: ${err instanceof Error ? err.message : String(err)}`)
      log(failures.at(-1)!)
    }
  }

  const install = async (reg: Registry): Promise<Install> => {
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
    // npm's CPU: the shell's waited-for children (cutime + cstime of /proc/<sh>/stat) once npm exits.
    const statFile = join(dir, 'sh-stat')
    const cpu0 = cpuMs(reg.pid)
    const { ms, value: out } = await timeMs(async () => await run('sh', ['-c', 'npm "$@" || exit $?; cat /proc/$$/stat > "$BENCH_STAT_FILE"', 'sh',
      'install', '--no-audit', '--no-fund', '--ignore-scripts', '--loglevel=http',
      '--registry', reg.registry, '--cache', cache, '--userconfig', userconfig
    ], { cwd: project, env: { ...process.env, npm_config_userconfig: userconfig, BENCH_STAT_FILE: statFile } }))
    const serverCpuMs = cpuMs(reg.pid) - cpu0
    const fields = readFileSync(statFile, 'utf8').split(') ')[1]!.split(' ')
    const npmCpuMs = (Number(fields[13]) + Number(fields[14])) * 10
    const lock = JSON.parse(readFileSync(join(project, 'package-lock.json'), 'utf8')) as { packages: Record<string, { resolved?: string }> }
    const installed = Object.keys(lock.packages).filter(p => p !== '').length
    rmSync(dir, { recursive: true, force: true })
    return { ms, installed, serverCpuMs, npmCpuMs, requests: requestTimes(out.stderr) }
  }

  const times = new Map<string, number[]>(usable.map(r => [r.name, []]))
  const details = new Map<string, Install[]>(usable.map(r => [r.name, []]))
  const counts = new Map<string, number>()
  for (let i = 0; i < RUNS; i++) {
    // Alternate the order so neither registry always runs on a warmer machine.
    for (const reg of i % 2 === 0 ? [...usable] : [...usable].reverse()) {
      try {
        const one = await install(reg)
        const { ms, installed, requests: q } = one
        times.get(reg.name)!.push(ms)
        details.get(reg.name)!.push(one)
        counts.set(reg.name, installed)
        log(`${reg.name} run ${i + 1}/${RUNS}: ${fmt(ms / 1000)} s, ${installed} packages installed, server CPU ${fmt(one.serverCpuMs / 1000)} s, npm CPU ${fmt(one.npmCpuMs / 1000)} s, ` +
          `${q.packuments.length} packuments (median ${median(q.packuments)} ms), ${q.tarballs.length} tarballs (median ${median(q.tarballs)} ms), ${q.other} other; load ${loadAverage()}`)
      } catch (err) {
        failures.push(`${reg.name}: npm install failed: ${err instanceof Error ? err.message : String(err)}`)
        log(failures.at(-1)!)
        usable.splice(usable.indexOf(reg), 1)
      }
    }
  }

  const uniqueNames = new Set(corpus.packages.map(p => p.name)).size
  console.log(`\nnpm install, cold cache, no lockfile, ${ANONYMOUS ? 'anonymous' : 'authenticated'} reads: ${Object.keys(corpus.dependencies).length} direct deps, corpus ${corpus.packages.length} name@version (${uniqueNames} names), ${RUNS} runs each`)
  console.log(`${runInfo(loadAtStart)}; commit at start ${commitAtStart}`)
  const rows = [['registry', 'published (s)', 'installed pkgs', 'runs (s)', 'median (s)', 'server CPU (s)', 'npm CPU (s)', 'packument ms med/p90', 'tarball ms med/p90', 'non-200']]
  for (const [name, ts] of times) {
    if (ts.length === 0) continue
    const d = details.get(name)!
    const pk = d.flatMap(x => x.requests.packuments)
    const tb = d.flatMap(x => x.requests.tarballs)
    rows.push([name, fmt((publishMs.get(name) ?? NaN) / 1000), String(counts.get(name) ?? ''), ts.map(t => fmt(t / 1000)).join(' '), fmt(median(ts) / 1000),
      fmt(median(d.map(x => x.serverCpuMs)) / 1000), fmt(median(d.map(x => x.npmCpuMs)) / 1000),
      `${median(pk)}/${p90(pk)}`, `${median(tb)}/${p90(tb)}`, String(d.reduce((n, x) => n + x.requests.other, 0))])
  }
  table(rows)
  console.log('(server CPU: the server process\'s CPU during the install, n/a for nginx; npm CPU: npm\'s own; request latencies as npm logs them, all runs)')
  const med = (name: string): number => median(times.get(name) ?? [])
  const ratios = [['akmesh', 'verdaccio'], ['akmesh-base', 'verdaccio'], ['akmesh', 'akmesh-base'], ['akmesh', 'nginx-static'], ['verdaccio', 'nginx-static']]
    .filter(([x, y]) => (times.get(x!)?.length ?? 0) > 0 && (times.get(y!)?.length ?? 0) > 0)
    .map(([x, y]) => `${x}/${y} ${ratio(med(x!), med(y!))}`)
  if (ratios.length > 0) console.log(`\nratios of median install time (lower is better for the first): ${ratios.join(', ')}`)
  if (failures.length > 0) {
    console.log(`\nFAILURES:\n${failures.map(f => `- ${f}`).join('\n')}`)
    process.exitCode = 1
  }
})
