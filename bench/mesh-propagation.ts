// Manifest propagation: publish an npm package version on node 0 of a mesh of N akmesh nodes
// (separate OS processes on 127.0.0.1) and time until the npm packument on every other node lists
// it. p50/p99 over BENCH_PUBLISHES publishes, of the time until ALL other nodes show the version
// and of the per-node times; also per node, with its hop distance from node 0.
//
//   node_modules/.bin/node bench/mesh-propagation.ts
//   env: BENCH_NODES (default 10), BENCH_PUBLISHES (default 50), BENCH_WARMUP (default 3, not
//        counted), BENCH_BOOTSTRAP (default "1,3": node i bootstraps to i+1 and i+3 mod N),
//        BENCH_POLL_MS (default 20: pause between two packument GETs to one node),
//        BENCH_GAP_MS (default 200: pause between publishes), BENCH_TIMEOUT_MS (default 60000 per
//        publish), AKMESH_BENCH_LOG_LEVEL (nodes' log level; default warn, see lib/mesh.ts)
//
// Topology: a circulant graph. Each node's peering file allows all N peer IDs and bootstraps to
// the nodes at the BENCH_BOOTSTRAP offsets (written once every node listens: the nodes apply
// peering file edits live); no node is given other addresses. With N=10 and "1,3"
// every node has 4 bootstrap links (2 it dials, 2 that dial it), diameter 3. libp2p's DHT may add
// connections beyond those: the bench prints the connection graph it measured before publishing.
// Replication policy is the default (on-demand): manifests propagate, tarball bytes do not.
import { readFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { connectedPeers, manifestTimes, percentile, planMeshNode, startMeshNode, tinyTarball, writePeering, type MeshNode, type MeshNodePlan } from './lib/mesh.ts'
import { escapeName, pool, publishTarball } from './lib/npm-publish.ts'
import { cpuMs, main, tempDir } from './lib/proc.ts'
import { fmt, log, table } from './lib/stats.ts'

const N = Number(process.env.BENCH_NODES ?? 10)
const PUBLISHES = Number(process.env.BENCH_PUBLISHES ?? 50)
const WARMUP = Number(process.env.BENCH_WARMUP ?? 3)
const OFFSETS = (process.env.BENCH_BOOTSTRAP ?? '1,3').split(',').map(s => Number(s.trim())).filter(n => Number.isInteger(n) && n > 0)
const POLL_MS = Number(process.env.BENCH_POLL_MS ?? 20)
const GAP_MS = Number(process.env.BENCH_GAP_MS ?? 200)
const TIMEOUT_MS = Number(process.env.BENCH_TIMEOUT_MS ?? 60_000)
const LOG_LEVEL = process.env.AKMESH_BENCH_LOG_LEVEL ?? 'warn'
const PACKAGE = 'mesh-propagation-bench'

/** Round-trip times of every packument GET the pollers made (ms). */
const pollRtts: number[] = []

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

async function until (check: () => Promise<boolean>, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!await check().catch(() => false)) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(250)
  }
}

/** Does the node's packument (abbreviated, what npm install asks for) list the version? */
async function shows (node: MeshNode, version: string): Promise<boolean> {
  const res = await fetch(`${node.url}/npm/${escapeName(PACKAGE)}`, {
    headers: { authorization: `Bearer ${node.token}`, accept: 'application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8' }
  })
  if (res.status === 404) { await res.arrayBuffer(); return false }
  if (res.status !== 200) throw new Error(`node: GET packument -> ${res.status} ${await res.text()}`)
  const doc = await res.json() as { versions?: Record<string, unknown> }
  return doc.versions?.[version] != null
}

/** Publishes `version` on `origin` and polls every other node; ms from the PUT's start. */
async function publishAndWait (origin: MeshNode, others: MeshNode[], tgz: Buffer, version: string): Promise<{ wallStart: number, put: number, perNode: Array<number | undefined>, all: number | undefined }> {
  const wallStart = Date.now()
  const t0 = performance.now()
  let done = false
  const perNode: Array<number | undefined> = others.map(() => undefined)
  const polls = others.map(async (node, k) => {
    const deadline = t0 + TIMEOUT_MS
    while (!done && performance.now() < deadline) {
      const q0 = performance.now()
      const seen = await shows(node, version).catch(() => false)
      const now = performance.now()
      pollRtts.push(now - q0)
      if (seen) { perNode[k] = now - t0; return }
      await sleep(POLL_MS)
    }
  })
  const reg = { name: `node ${origin.index}`, registry: `${origin.url}/npm/`, token: origin.token, stop: async () => {} }
  try {
    await publishTarball(reg, tgz, { name: PACKAGE, version })
  } catch (err) { done = true; await Promise.allSettled(polls); throw err }
  const put = performance.now() - t0
  await Promise.all(polls)
  done = true
  const all = perNode.every(t => t != null) ? Math.max(...perNode as number[]) : undefined
  return { wallStart, put, perNode, all }
}

/** Hop distances from node 0 over the measured connection graph (-1: unreachable). */
function hops (adj: Map<number, Set<number>>): number[] {
  const dist = Array.from({ length: N }, () => -1)
  dist[0] = 0
  const queue = [0]
  while (queue.length > 0) {
    const i = queue.shift()!
    for (const j of adj.get(i) ?? []) if (dist[j] === -1) { dist[j] = dist[i]! + 1; queue.push(j) }
  }
  return dist
}

function rssMiB (pid: number | undefined): number {
  if (pid == null) return NaN
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN) / 1024
  } catch { return NaN }
}

await main(async () => {
  if (N < 2) throw new Error('BENCH_NODES must be at least 2')
  if (OFFSETS.length === 0) throw new Error('BENCH_BOOTSTRAP: no valid offsets')
  const root = tempDir('mesh-propagation')
  const edges: Array<[number, number]> = []
  for (let i = 0; i < N; i++) {
    for (const o of OFFSETS) {
      const j = (i + o) % N
      if (j !== i && !edges.some(([a, b]) => (a === i && b === j) || (a === j && b === i))) edges.push([i, j])
    }
  }
  const topology = `circulant: node i bootstraps to i+${OFFSETS.join(', i+')} (mod ${N}); ${edges.length} bootstrap links, every node allows all ${N} peer IDs`

  log(`creating ${N} identities`)
  const plans: MeshNodePlan[] = new Array(N)
  await pool(Array.from({ length: N }, (_, i) => i), 2, async (i) => { plans[i] = await planMeshNode(i, join(root, `node${i}`, 'data')) })
  const allow = plans.map(p => p.peerId)
  const peeringOf = (p: MeshNodePlan, bootstrap: string[]) => ({ mesh: 'bench', node: { name: `node${p.index}` }, allow, bootstrap })
  for (const p of plans) await writePeering(p, peeringOf(p, []))

  log(`starting ${N} nodes (${topology})`)
  const startT = performance.now()
  const nodes: MeshNode[] = new Array(N)
  await pool(plans, 4, async (p) => { nodes[p.index] = await startMeshNode(p, { logLevel: LOG_LEVEL }) })
  log(`all ${N} nodes ready in ${fmt((performance.now() - startT) / 1000, 1)} s; writing the bootstrap lists, waiting for the links`)
  // The nodes watch their peering files and dial new bootstrap peers at once.
  for (const n of nodes) await writePeering(n, peeringOf(n, edges.filter(([a]) => a === n.index).map(([, b]) => nodes[b]!.meshAddr)))
  const idx = new Map(plans.map(p => [p.peerId, p.index]))
  await until(async () => {
    const peers = await Promise.all(nodes.map(connectedPeers))
    return edges.every(([a, b]) => peers[a]!.includes(plans[b]!.peerId))
  }, 'every bootstrap link to connect', 120_000)
  log(`connected after ${fmt((performance.now() - startT) / 1000, 1)} s from the first start`)

  const origin = nodes[0]!
  const others = nodes.slice(1)
  const tgzDir = join(root, 'tarballs')
  const versions = [
    ...Array.from({ length: WARMUP }, (_, k) => `0.0.${k}`),
    ...Array.from({ length: PUBLISHES }, (_, k) => `1.0.${k}`)
  ]
  const tarballs = new Map<string, Buffer>()
  for (const v of versions) tarballs.set(v, await tinyTarball(tgzDir, PACKAGE, v))

  const warm: number[] = []
  for (const v of versions.slice(0, WARMUP)) {
    const r = await publishAndWait(origin, others, tarballs.get(v)!, v)
    if (r.all == null) throw new Error(`warm-up publish ${v} did not reach every node within ${TIMEOUT_MS} ms (reached ${r.perNode.filter(t => t != null).length}/${others.length})`)
    warm.push(r.all)
    log(`warm-up ${v}: all nodes in ${fmt(r.all, 0)} ms`)
    await sleep(GAP_MS)
  }

  // The connection graph as the nodes report it now (bootstrap links plus whatever the DHT added).
  const adj = new Map<number, Set<number>>()
  const peerLists = await Promise.all(nodes.map(connectedPeers))
  peerLists.forEach((ids, i) => {
    for (const id of ids) {
      const j = idx.get(id)
      if (j == null) continue
      if (!adj.has(i)) adj.set(i, new Set())
      if (!adj.has(j)) adj.set(j, new Set())
      adj.get(i)!.add(j)
      adj.get(j)!.add(i)
    }
  })
  const dist = hops(adj)
  const degrees = nodes.map((_, i) => adj.get(i)?.size ?? 0)
  const linkCount = degrees.reduce((a, b) => a + b, 0) / 2

  const all: number[] = []
  const puts: number[] = []
  const perNode: number[][] = others.map(() => [])
  const wallStarts = new Map<string, number>()
  let missed = 0
  // Idle baseline: what the nodes burn with nothing to do (heartbeats, DHT, timers).
  const idleCpu0 = nodes.map(n => cpuMs(n.service.child.pid))
  const idle0 = performance.now()
  await sleep(5000)
  const idleCores = nodes.reduce((a, n, i) => a + cpuMs(n.service.child.pid) - idleCpu0[i]!, 0) / (performance.now() - idle0)

  const loadBefore = loadavg()
  const rttsFrom = pollRtts.length
  const cpuBefore = nodes.map(n => cpuMs(n.service.child.pid))
  const wallBefore = performance.now()
  for (const [k, v] of versions.slice(WARMUP).entries()) {
    const r = await publishAndWait(origin, others, tarballs.get(v)!, v)
    puts.push(r.put)
    wallStarts.set(v, r.wallStart)
    r.perNode.forEach((t, i) => { if (t != null) perNode[i]!.push(t); else missed++ })
    if (r.all != null) all.push(r.all)
    else log(`publish ${v}: only ${r.perNode.filter(t => t != null).length}/${others.length} nodes within ${TIMEOUT_MS} ms`)
    if ((k + 1) % 10 === 0) log(`${k + 1}/${PUBLISHES} publishes; last: all nodes in ${r.all == null ? 'timeout' : `${fmt(r.all, 0)} ms`}`)
    await sleep(GAP_MS)
  }
  const loadAfter = loadavg()
  const cpuUsed = nodes.map((n, i) => cpuMs(n.service.child.pid) - cpuBefore[i]!)
  const wall = performance.now() - wallBefore
  const cpuSum = cpuUsed.reduce((a, b) => a + b, 0)
  const rss = nodes.map(n => rssMiB(n.service.child.pid))
  const rttsMeasured = pollRtts.slice(rttsFrom)
  // When the manifest entered each node's manifest log (same machine, same clock): splits the
  // polled time into signing on node 0, gossip + verify + apply, and the packument read.
  const logged = await Promise.all(nodes.map(async n => await manifestTimes(n.dataDir, PACKAGE)))
  const signed: number[] = []
  const applied: number[][] = others.map(() => [])
  for (const [v, start] of wallStarts) {
    const at0 = logged[0]!.get(v)
    if (at0 == null) continue
    signed.push(at0 - start)
    others.forEach((n, k) => { const at = logged[n.index]!.get(v); if (at != null) applied[k]!.push(at - at0) })
  }

  const pooled = perNode.flat()
  console.log(`\nmanifest propagation: npm publish on node 0, packument polled on the ${others.length} other nodes every ${POLL_MS} ms (times from the start of the publish PUT)`)
  console.log(`nodes: ${N} (separate processes, 127.0.0.1); topology: ${topology}`)
  console.log(`measured connections before the run: ${linkCount} links, degree per node [${degrees.join(' ')}], hops from node 0 [${dist.join(' ')}]`)
  console.log(`publishes: ${PUBLISHES} (+${WARMUP} warm-up: ${warm.map(w => fmt(w, 0)).join(', ')} ms), ${GAP_MS} ms apart; missed (node not showing the version within ${TIMEOUT_MS} ms): ${missed}`)
  console.log(`load average (1/5/15 min) before: ${loadBefore.map(l => fmt(l)).join(' ')}, after: ${loadAfter.map(l => fmt(l)).join(' ')}; node RSS MiB: ${rss.map(r => fmt(r, 0)).join(' ')} (sum ${fmt(rss.reduce((a, b) => a + b, 0), 0)})`)
  console.log(`node CPU during the measured publishes: ${fmt(cpuSum / 1000, 1)} s over ${fmt(wall / 1000, 1)} s wall (${fmt(cpuSum / wall, 2)} cores), ${fmt(cpuSum / PUBLISHES, 0)} ms per publish summed over nodes (node 0: ${fmt(cpuUsed[0]! / PUBLISHES, 0)} ms, others: ${cpuUsed.slice(1).map(c => fmt(c / PUBLISHES, 0)).join(' ')}); includes serving the polls; idle, all nodes together use ${fmt(idleCores, 2)} cores\n`)
  const rowOf = (name: string, xs: number[]): string[] => [name, String(xs.length), fmt(percentile(xs, 50), 1), fmt(percentile(xs, 99), 1), fmt(Math.max(...xs), 1)]
  table([
    ['ms', 'n', 'p50', 'p99', 'max'],
    rowOf('publish PUT on node 0', puts),
    rowOf('all other nodes show it', all),
    rowOf('per node (pooled)', pooled),
    rowOf('one packument GET (poll RTT)', rttsMeasured)
  ])
  console.log('\nfrom the nodes\' manifest logs (received_at, ms): signed on node 0 after the PUT started; in the manifest log of each other node after it was signed')
  table([
    ['ms', 'n', 'p50', 'p99', 'max'],
    rowOf('signed on node 0', signed),
    rowOf('applied, per node (pooled)', applied.flat()),
    rowOf('applied on all nodes', [...wallStarts.keys()].map((_, i) => Math.max(...applied.map(a => a[i] ?? NaN))).filter(Number.isFinite))
  ])
  console.log('')
  table([
    ['node', 'hops', 'shows p50 ms', 'shows p99 ms', 'max ms', 'applied p50 ms (after signing)', 'p99'],
    ...others.map((n, k) => [`node ${n.index}`, String(dist[n.index]), fmt(percentile(perNode[k]!, 50), 1), fmt(percentile(perNode[k]!, 99), 1), fmt(Math.max(...perNode[k]!), 1),
      fmt(percentile(applied[k]!, 50), 1), fmt(percentile(applied[k]!, 99), 1)])
  ])
  if (missed > 0) process.exitCode = 1
})
