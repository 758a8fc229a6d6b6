// Remote-cache sharing across sites: upstream tarball requests when N sites, each with a remote
// npm repository over the same Verdaccio, install the same tree. With the mesh the sites share
// their caches (replication, and the lookup a remote repository makes before going upstream:
// mesh/lookup.ts), so each tarball should reach the upstream once whatever N; the baseline is the
// same N sites with no mesh between them (each fetches every tarball itself).
//
// Two orders per run, each with its own tree: "A first" (site 0 installs, then the others at
// once, as the test does) and "all at once" (every site starts its install at the same moment).
// The counts come from Verdaccio's own request log.
//
//   node_modules/.bin/node bench/remote-sites.ts
//   env: BENCH_SITES (largest N, default 3), BENCH_PACKAGES (tree size, default 12)
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { ExecutionContext } from 'ava'
import { connectedPeers, planMeshNode, startMeshNode, writePeering, type MeshNode, type MeshNodePlan } from './lib/mesh.ts'
import { main, onCleanup, run, tempDir } from './lib/proc.ts'
import { log, ratio, table } from './lib/stats.ts'
import { findClient } from '../test/helpers/clients.ts'
import { clientEnv } from '../test/helpers/npm-client.ts'
import { packageTree, type TreePackage } from '../test/helpers/npm-tree.ts'
import { startVerdaccio, verdaccioInstalled, VERDACCIO, type Verdaccio } from '../test/helpers/verdaccio.ts'

const MAX_SITES = Number(process.env.BENCH_SITES ?? 3)
const PACKAGES = Number(process.env.BENCH_PACKAGES ?? 12)

/** The test helpers take an ava context only for teardown: the bench's cleanup plays it. */
const context = { teardown: (fn: () => unknown) => { onCleanup(async () => { await fn() }) } } as unknown as ExecutionContext

interface Run { sites: number, meshed: boolean, aFirst: number, allAtOnce: number, tarballs: number }

async function startSites (n: number, meshed: boolean, upstream: string): Promise<MeshNode[]> {
  const plans: MeshNodePlan[] = []
  for (let i = 0; i < n; i++) plans.push(await planMeshNode(i, join(tempDir(`sites-${meshed ? 'mesh' : 'alone'}${n}-${i}`), 'data')))
  const nodes: MeshNode[] = []
  for (const plan of plans) {
    const others = plans.filter(p => p !== plan).map(p => p.peerId)
    // Unmeshed: each site allows no one and dials no one.
    await writePeering(plan, meshed ? { allow: others, bootstrap: nodes.map(x => x.meshAddr) } : { allow: [] })
    nodes.push(await startMeshNode(plan, { config: `repositories:\n  - { name: npm, format: npm, type: remote, upstream: "${upstream}/" }\n` }))
  }
  if (meshed) {
    const deadline = Date.now() + 60_000
    for (const node of nodes) {
      while ((await connectedPeers(node)).length < n - 1) {
        if (Date.now() > deadline) throw new Error(`site ${node.index} did not connect to the ${n - 1} others`)
        await new Promise(resolve => setTimeout(resolve, 100))
      }
    }
  }
  return nodes
}

async function install (npm: string, node: MeshNode, tree: TreePackage[]): Promise<void> {
  const dir = tempDir(`install-${node.index}`)
  mkdirSync(join(dir, 'project'))
  writeFileSync(join(dir, 'npmrc'), 'audit=false\nfund=false\nupdate-notifier=false\n')
  writeFileSync(join(dir, 'project', 'package.json'), JSON.stringify({
    name: 'consumer', version: '1.0.0', private: true,
    dependencies: Object.fromEntries(tree.filter(p => p.tag == null).map(p => [p.manifest.name, p.manifest.version]))
  }))
  await run(npm, ['install', '--registry', `${node.url}/npm/`, '--userconfig', join(dir, 'npmrc'), '--cache', join(dir, 'cache')], { cwd: join(dir, 'project'), env: clientEnv(), quiet: true })
}

async function publishTree (v: Verdaccio, prefix: string): Promise<TreePackage[]> {
  const tree = await packageTree(prefix, PACKAGES)
  for (const p of tree) await v.publish(p.manifest, p.tgz, p.tag)
  return tree
}

const tarballGets = (v: Verdaccio, prefix: string): number =>
  v.requests().filter(r => r.startsWith('GET ') && r.endsWith('.tgz') && r.includes(prefix)).length

async function measure (npm: string, v: Verdaccio, n: number, meshed: boolean): Promise<Run> {
  const label = `${meshed ? 'mesh' : 'alone'}${n}`
  log(`${label}: starting ${n} site(s)`)
  const first = await publishTree(v, `${label}a`)
  const together = await publishTree(v, `${label}b`)
  const nodes = await startSites(n, meshed, v.url.replace(/\/$/, ''))
  const [a, ...rest] = nodes
  await install(npm, a, first)
  await Promise.all(rest.map(async node => await install(npm, node, first)))
  await Promise.all(nodes.map(async node => await install(npm, node, together)))
  for (const node of nodes) await node.stop()
  return {
    sites: n, meshed,
    aFirst: tarballGets(v, `${label}a-`) + tarballGets(v, `@${label}a/`),
    allAtOnce: tarballGets(v, `${label}b-`) + tarballGets(v, `@${label}b/`),
    tarballs: first.filter(p => p.tag == null).length
  }
}

await main(async () => {
  if (!verdaccioInstalled()) throw new Error(`Verdaccio is not installed at ${VERDACCIO} (.ci/run installs it)`)
  const npm = await findClient('npm')
  if (npm == null) throw new Error('npm is not installed')
  const v = await startVerdaccio(context)
  const runs: Run[] = []
  for (let n = 1; n <= MAX_SITES; n++) {
    // Side by side: the baseline and the mesh for each N, one after the other.
    runs.push(await measure(npm, v, n, false))
    runs.push(await measure(npm, v, n, true))
  }
  const rows = [['sites', 'tarballs', 'alone: A first', 'mesh: A first', 'mesh/alone', 'alone: all at once', 'mesh: all at once', 'mesh/alone']]
  for (let n = 1; n <= MAX_SITES; n++) {
    const alone = runs.find(r => r.sites === n && !r.meshed) as Run
    const mesh = runs.find(r => r.sites === n && r.meshed) as Run
    rows.push([String(n), String(mesh.tarballs), String(alone.aFirst), String(mesh.aFirst), ratio(mesh.aFirst, alone.aFirst),
      String(alone.allAtOnce), String(mesh.allAtOnce), ratio(mesh.allAtOnce, alone.allAtOnce)])
  }
  console.log(`upstream tarball GETs (Verdaccio's request log) for N sites installing the same ${PACKAGES + 1}-tarball tree`)
  table(rows)
})
