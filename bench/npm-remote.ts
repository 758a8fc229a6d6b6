// `npm install` of a tree of 100+ small packages through a caching proxy of one upstream
// Verdaccio: an akmesh remote repository (type: remote) vs a second Verdaccio whose uplink is the
// upstream (the usual company mirror). Per run and proxy, a fresh proxy (empty akmesh data dir,
// empty Verdaccio storage):
//   cold: first install; every packument and tarball goes through the proxy to the upstream;
//   warm: a second install with a clean npm cache and node_modules, the proxy's cache full.
// npm's cache is empty on every install, no lockfile, reads anonymous.
//
//   node_modules/.bin/node bench/npm-remote.ts
//   env: BENCH_RUNS (default 5), BENCH_PACKAGES (tree size, default 110),
//        AKMESH_BENCH_LOG_LEVEL (akmesh log level; default: the node's own, info)
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createHash } from 'node:crypto'
import { packageTree, type TreePackage } from '../test/helpers/npm-tree.ts'
import { startAkmesh } from './lib/akmesh.ts'
import { escapeName, pool } from './lib/npm-publish.ts'
import { main, ROOT, run, tempDir } from './lib/proc.ts'
import { fmt, log, median, ratio, table, timeMs } from './lib/stats.ts'
import type { Registry } from './lib/types.ts'
import { startVerdaccio } from './lib/verdaccio.ts'

const RUNS = Number(process.env.BENCH_RUNS ?? 5)
const PACKAGES = Number(process.env.BENCH_PACKAGES ?? 110)
// The Verdaccio .ci/run installs for the tests, if there; else bench/.deps' (installed on demand).
const CI_VERDACCIO = join(ROOT, '.ci/verdaccio/node_modules/verdaccio/bin/verdaccio')
const bin = existsSync(CI_VERDACCIO) ? CI_VERDACCIO : undefined

interface Proxy { name: string, start: (upstream: string) => Promise<Registry> }
const PROXIES: Proxy[] = [
  {
    name: 'akmesh remote',
    start: async (upstream) => await startAkmesh({
      config: `repositories:\n  - { name: npm, format: npm, type: remote, upstream: "${upstream}" }\n`
    })
  },
  { name: 'verdaccio proxy', start: async (upstream) => await startVerdaccio({ uplink: upstream, bin, name: 'verdaccio-proxy' }) }
]

async function publish (reg: Registry, p: TreePackage): Promise<void> {
  const { name, version } = p.manifest
  const filename = `${name.split('/').pop() as string}-${version}.tgz`
  const body = {
    _id: name,
    name,
    'dist-tags': { [p.tag ?? 'latest']: version },
    versions: {
      [version]: {
        ...p.manifest,
        _id: `${name}@${version}`,
        dist: {
          shasum: createHash('sha1').update(p.tgz).digest('hex'),
          integrity: 'sha512-' + createHash('sha512').update(p.tgz).digest('base64'),
          tarball: `${reg.registry}${name}/-/${filename}`
        }
      }
    },
    _attachments: { [filename]: { content_type: 'application/octet-stream', data: p.tgz.toString('base64'), length: p.tgz.length } }
  }
  const res = await fetch(`${reg.registry}${escapeName(name)}`, {
    method: 'PUT', headers: { 'content-type': 'application/json', authorization: `Bearer ${reg.token}` }, body: JSON.stringify(body)
  })
  if (!res.ok) throw new Error(`publish ${name}@${version} upstream: ${res.status} ${await res.text()}`)
}

/** CPU seconds (user + system) a process has used so far, from /proc (Linux). */
function cpuSeconds (pid: number | undefined): number {
  if (pid == null) return NaN
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ')
    return (Number(fields[11]) + Number(fields[12])) / 100 // utime, stime in clock ticks (USER_HZ 100)
  } catch { return NaN }
}

async function install (reg: Registry, dependencies: Record<string, string>): Promise<{ ms: number, installed: number, cpu: number }> {
  const cpu0 = cpuSeconds(reg.pid)
  const dir = tempDir('npm-remote-install')
  const project = join(dir, 'project')
  const cache = join(dir, 'cache')
  const userconfig = join(dir, 'npmrc')
  mkdirSync(project, { recursive: true })
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'bench-project', version: '1.0.0', private: true, dependencies }))
  writeFileSync(userconfig, `registry=${reg.registry}\nfund=false\naudit=false\nupdate-notifier=false\n`)
  const { ms } = await timeMs(async () => await run('npm', [
    'install', '--no-audit', '--no-fund', '--ignore-scripts', '--loglevel=error',
    '--registry', reg.registry, '--cache', cache, '--userconfig', userconfig
  ], { cwd: project, env: { ...process.env, npm_config_userconfig: userconfig } }))
  const lock = JSON.parse(readFileSync(join(project, 'package-lock.json'), 'utf8')) as { packages: Record<string, unknown> }
  const cpu = cpuSeconds(reg.pid) - cpu0
  rmSync(dir, { recursive: true, force: true })
  return { ms, cpu, installed: Object.keys(lock.packages).filter(p => p !== '').length }
}

await main(async () => {
  const tree = await packageTree('bench', PACKAGES)
  const upstream = await startVerdaccio({ bin, name: 'verdaccio-upstream' })
  const { ms: publishMs } = await timeMs(async () => { await pool(tree, 8, async p => { await publish(upstream, p) }) })
  log(`upstream Verdaccio at ${upstream.registry}: ${tree.length} packages published in ${fmt(publishMs / 1000)} s`)
  const dependencies = Object.fromEntries(tree.filter(p => p.tag == null).map(p => [p.manifest.name, `^${p.manifest.version}`]))

  const times = new Map<string, Record<'cold' | 'warm' | 'coldCpu' | 'warmCpu', number[]>>(PROXIES.map(p => [p.name, { cold: [], warm: [], coldCpu: [], warmCpu: [] }]))
  let installed = 0
  for (let i = 0; i < RUNS; i++) {
    // Alternate the order so neither proxy always runs on a warmer machine.
    for (const proxy of i % 2 === 0 ? PROXIES : [...PROXIES].reverse()) {
      const reg = await proxy.start(upstream.registry)
      try {
        const cold = await install(reg, dependencies)
        const warm = await install(reg, dependencies)
        installed = cold.installed
        if (warm.installed !== cold.installed) throw new Error(`${proxy.name}: ${cold.installed} packages cold, ${warm.installed} warm`)
        const t = times.get(proxy.name)!
        t.cold.push(cold.ms)
        t.warm.push(warm.ms)
        t.coldCpu.push(cold.cpu)
        t.warmCpu.push(warm.cpu)
        log(`${proxy.name} run ${i + 1}/${RUNS}: cold ${fmt(cold.ms / 1000)} s (proxy CPU ${fmt(cold.cpu)} s), warm ${fmt(warm.ms / 1000)} s (proxy CPU ${fmt(warm.cpu)} s), ${cold.installed} packages`)
      } finally { await reg.stop() }
    }
  }

  console.log(`\nnpm install through a caching proxy of one upstream Verdaccio: ${installed} packages (${Object.keys(dependencies).length} direct), clean npm cache and no lockfile every install, anonymous reads, ${RUNS} runs each`)
  const rows = [['proxy', 'cold runs (s)', 'cold median', 'cold proxy CPU', 'warm runs (s)', 'warm median', 'warm proxy CPU']]
  for (const [name, t] of times) {
    rows.push([name, t.cold.map(x => fmt(x / 1000)).join(' '), fmt(median(t.cold) / 1000), fmt(median(t.coldCpu)),
      t.warm.map(x => fmt(x / 1000)).join(' '), fmt(median(t.warm) / 1000), fmt(median(t.warmCpu))])
  }
  table(rows)
  console.log('(proxy CPU: median CPU seconds the proxy process used during the install; less noisy than wall time on a shared machine)')
  const a = times.get('akmesh remote')!
  const v = times.get('verdaccio proxy')!
  console.log(`\nratio akmesh/verdaccio (median, lower is better for akmesh): wall cold ${ratio(median(a.cold), median(v.cold))}, warm ${ratio(median(a.warm), median(v.warm))}; proxy CPU cold ${ratio(median(a.coldCpu), median(v.coldCpu))}, warm ${ratio(median(a.warmCpu), median(v.warmCpu))}`)
  await upstream.stop()
})
