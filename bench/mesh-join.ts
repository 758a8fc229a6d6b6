// Joining a mesh by certificate: (1) the time from `akmesh mesh join` on a fresh node (one
// bootstrap address into a 10-node mesh holding 1,000 manifests) until its watermarks equal the
// mesh's, against the same fresh node joining as an allow-listed peer without a certificate;
// (2) the CPU cost of the certificate checks per 1,000 manifests, in process: openEnvelope +
// Membership.admit with certificates, with the allow list, and with no membership check.
//
//   node_modules/.bin/node bench/mesh-join.ts
//   env: BENCH_NODES (10), BENCH_MANIFESTS (1000), BENCH_CPU_ROUNDS (7), AKMESH_BENCH_LOG_LEVEL
//        (nodes' log level; default warn)
//
// The mesh: N nodes holding certificates of one root (site node<i>, all repositories), which
// connect by presenting them (mesh/introductions.ts); their peering files allow only the baseline
// newcomer (what an allowlist mesh needs: every file edited); bootstrap links circulant (node i
// dials i+1 and i+3). The manifests are generic PUTs (/files/...), spread round-robin over the N
// nodes (N origins). Both fresh nodes bootstrap to node 0 only. The certificate joiner's peering
// file names no peer: node 0 admits it on probation until it presents its certificate, and it
// admits the 10 origins by the certificates node 0's catch-up answers carry. The baseline's
// peering file allows all N origins, no mesh root.
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { readFileSync, writeFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { issueCertificate, rootOf } from '../mesh/certificates.ts'
import { openEnvelope, signManifest, type Manifest } from '../mesh/manifest.ts'
import { Membership, OWN_CERTIFICATE_FILE } from '../mesh/membership.ts'
import { AKMESH_CLI } from './lib/akmesh.ts'
import { planMeshNode, startMeshNode, writePeering, type MeshNode, type MeshNodePlan } from './lib/mesh.ts'
import { pool } from './lib/npm-publish.ts'
import { cpuMs, main, NODE, run, tempDir } from './lib/proc.ts'
import { fmt, log, median, ratio, table } from './lib/stats.ts'

const N = Number(process.env.BENCH_NODES ?? 10)
const MANIFESTS = Number(process.env.BENCH_MANIFESTS ?? 1000)
const CPU_ROUNDS = Number(process.env.BENCH_CPU_ROUNDS ?? 7)
const LOG_LEVEL = process.env.AKMESH_BENCH_LOG_LEVEL ?? 'warn'
const MESH = 'bench'
const YEAR = 365 * 86_400_000
/** Catch-up pages hold up to 500 manifests (mesh/sync.ts PAGE_MANIFESTS). */
const PAGE = 500

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

async function until<T> (check: () => Promise<T | undefined>, what: string, timeoutMs: number, pollMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await check().catch(() => undefined)
    if (v !== undefined) return v
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(pollMs)
  }
}

async function status (node: MeshNode): Promise<{ watermarks: Record<string, number>, heads: Record<string, number> }> {
  const res = await fetch(`${node.url}/-/mesh/status`, { headers: { authorization: `Bearer ${node.token}` } })
  if (res.status !== 200) throw new Error(`node ${node.index}: GET /-/mesh/status -> ${res.status}`)
  return await res.json() as { watermarks: Record<string, number>, heads: Record<string, number> }
}

const caughtUp = (w: Record<string, number>, target: Record<string, number>): boolean => Object.entries(target).every(([o, s]) => (w[o] ?? 0) >= s)

/** CPU (user + system, ms) this process spends in `fn`. */
async function cpu (fn: () => Promise<void>): Promise<number> {
  const c0 = process.cpuUsage()
  await fn()
  const c = process.cpuUsage(c0)
  return (c.user + c.system) / 1000
}

/** Part 2: certificate checks in process, per 1,000 manifests of N origins. */
async function certificateCpu (): Promise<string[][]> {
  const rootKey = await generateKeyPair('Ed25519')
  const meshRoot = rootOf(rootKey)
  const origins = await Promise.all(Array.from({ length: N }, async () => { const key = await generateKeyPair('Ed25519'); return { key, peerId: peerIdFromPrivateKey(key).toString() } }))
  const certs = await Promise.all(origins.map(async (o, i) => await issueCertificate(rootKey, { mesh: MESH, peer: o.peerId, site: `node${i}`, publish: ['files'], validForMs: YEAR })))
  const now = Date.now()
  const envelopes = await Promise.all(Array.from({ length: MANIFESTS }, async (_, k) => {
    const o = origins[k % N]!
    const seq = Math.floor(k / N) + 1
    return await signManifest({ v: 1, mesh: MESH, origin: o.peerId, seq, prev: seq - 1, timestamp: now, kind: 'publish', repo: 'files', format: 'generic', name: `join/${k}.txt`, version: '', files: [], metadata: {} } as unknown as Manifest, o.key)
  }))
  const self = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
  const byCert = await Membership.open({ dataDir: tempDir('mesh-join-cpu'), self, peering: () => ({ mesh: MESH, allow: [], meshRoot }) })
  for (const c of certs) if (await byCert.learn(c, { persist: false }) == null) throw new Error('certificate refused')
  const byAllow = await Membership.open({ dataDir: tempDir('mesh-join-cpu'), self, peering: () => ({ mesh: MESH, allow: origins.map(o => o.peerId) }) })
  const open = async (admit?: (o: string, r: string) => ReturnType<Membership['admit']>): Promise<void> => {
    for (const e of envelopes) await openEnvelope(e, { mesh: MESH, admit: admit ?? (() => undefined), now })
  }
  const variants: Array<[string, () => Promise<void>]> = [
    ['openEnvelope, no membership check', async () => { await open() }],
    ['openEnvelope + admit, allow list', async () => { await open((o, r) => byAllow.admit(o, r, { now })) }],
    ['openEnvelope + admit, certificates', async () => { await open((o, r) => byCert.admit(o, r, { now })) }],
    [`admit alone x${MANIFESTS}, allow list`, async () => { for (let k = 0; k < MANIFESTS; k++) if (byAllow.admit(origins[k % N]!.peerId, 'files', { now }) != null) throw new Error('refused') }],
    [`admit alone x${MANIFESTS}, certificates`, async () => { for (let k = 0; k < MANIFESTS; k++) if (byCert.admit(origins[k % N]!.peerId, 'files', { now }) != null) throw new Error('refused') }],
    // A catch-up answer carries the certificates of its page's origins, and the asker verifies
    // each again (Membership.learn): ceil(1000 / 500) pages x N certificates.
    [`learn: certificates of ${Math.ceil(MANIFESTS / PAGE)} catch-up pages (${Math.ceil(MANIFESTS / PAGE) * N} certificates, already held)`, async () => { for (let p = 0; p < Math.ceil(MANIFESTS / PAGE); p++) for (const c of certs) await byCert.learn(c, { persist: false }) }]
  ]
  for (const [, fn] of variants) await fn() // warm-up (JIT, key caches)
  const samples = variants.map(() => [] as number[])
  for (let r = 0; r < CPU_ROUNDS; r++) {
    // Rotated order, so drift in the machine's load is not charged to one variant.
    for (let k = 0; k < variants.length; k++) { const i = (k + r) % variants.length; samples[i]!.push(await cpu(variants[i]![1])) }
  }
  const med = samples.map(median)
  const base = med[0]!
  return [
    [`CPU ms per ${MANIFESTS} manifests (${N} origins)`, `median of ${CPU_ROUNDS}`, 'min', 'max', 'vs no check'],
    ...variants.map(([name], i) => [name, fmt(med[i]!, 2), fmt(Math.min(...samples[i]!), 2), fmt(Math.max(...samples[i]!), 2), ratio(med[i]!, base)])
  ]
}

interface JoinRun { name: string, joinMs: number, readyMs: number, caughtUpMs: number, totalMs: number, cpuMs: number }

/** Starts a fresh node bootstrapping to node 0 and times it until its watermarks reach `target`. */
async function joinFresh (name: string, plan: MeshNodePlan, prepare: () => Promise<void>, target: Record<string, number>): Promise<JoinRun> {
  const t0 = performance.now()
  await prepare()
  const joined = performance.now()
  const node = await startMeshNode(plan, { logLevel: LOG_LEVEL })
  const ready = performance.now()
  await until(async () => caughtUp((await status(node)).watermarks, target) ? true : undefined, `${name} to catch up`, 300_000, 50)
  const done = performance.now()
  const used = cpuMs(node.service.child.pid)
  await node.stop()
  return { name, joinMs: joined - t0, readyMs: ready - joined, caughtUpMs: done - ready, totalMs: done - t0, cpuMs: used }
}

await main(async () => {
  log(`certificate checks in process: ${MANIFESTS} manifests, ${N} origins, ${CPU_ROUNDS} rounds`)
  const cpuTable = await certificateCpu()

  const root = tempDir('mesh-join')
  const rootKey = await generateKeyPair('Ed25519')
  const meshRoot = rootOf(rootKey)
  log(`creating ${N + 2} identities`)
  const plans: MeshNodePlan[] = new Array(N + 2)
  await pool(Array.from({ length: N + 2 }, (_, i) => i), 2, async (i) => { plans[i] = await planMeshNode(i, join(root, `node${i}`, 'data')) })
  const mesh = plans.slice(0, N)
  const [freshCert, freshAllow] = [plans[N]!, plans[N + 1]!]
  const allow = [freshAllow.peerId]
  const peeringOf = (p: MeshNodePlan, bootstrap: string[]) => ({ mesh: MESH, meshRoot, node: { name: `node${p.index}` }, allow, bootstrap })
  for (const p of mesh) {
    writeFileSync(join(p.dataDir, OWN_CERTIFICATE_FILE), await issueCertificate(rootKey, { mesh: MESH, peer: p.peerId, site: `node${p.index}`, validForMs: YEAR }))
    await writePeering(p, peeringOf(p, []))
  }
  log(`starting ${N} nodes`)
  const nodes: MeshNode[] = new Array(N)
  await pool(mesh, 4, async (p) => { nodes[p.index] = await startMeshNode(p, { logLevel: LOG_LEVEL }) })
  const edges: Array<[number, number]> = []
  for (let i = 0; i < N; i++) for (const o of [1, 3]) { const j = (i + o) % N; if (j !== i && !edges.some(([a, b]) => (a === j && b === i) || (a === i && b === j))) edges.push([i, j]) }
  for (const n of nodes) await writePeering(n, peeringOf(n, edges.filter(([a]) => a === n.index).map(([, b]) => nodes[b]!.meshAddr)))

  log(`publishing ${MANIFESTS} generic files round-robin over the ${N} nodes`)
  const t0 = performance.now()
  await pool(Array.from({ length: MANIFESTS }, (_, k) => k), 8, async (k) => {
    const node = nodes[k % N]!
    const res = await fetch(`${node.url}/files/join/${k}.txt`, { method: 'PUT', body: `file ${k}\n`, headers: { authorization: `Bearer ${node.token}` } })
    await res.arrayBuffer()
    if (res.status !== 201 && res.status !== 200) throw new Error(`PUT on node ${node.index}: ${res.status}`)
  })
  log(`published in ${fmt((performance.now() - t0) / 1000, 1)} s; waiting for every node to hold all of them`)
  // The mesh's watermarks: each origin's own latest seq.
  const target: Record<string, number> = {}
  for (const n of nodes) target[n.peerId] = (await status(n)).watermarks[n.peerId] ?? 0
  // Seqs have gaps (an origin's change log also numbers what it applied from others): a seq is not a count.
  if (Object.values(target).some(s => s === 0)) throw new Error(`an origin holds no manifest of its own: ${JSON.stringify(target)}`)
  await until(async () => (await Promise.all(nodes.map(status))).every(s => caughtUp(s.watermarks, target)) ? true : undefined, 'every node to hold every manifest', 300_000)
  log(`mesh settled after ${fmt((performance.now() - t0) / 1000, 1)} s`)

  const loadBefore = loadavg()
  log('baseline: a fresh node allow-listing the mesh (no certificate) joins')
  const baseline = await joinFresh('allow-listed peer, no certificate', freshAllow, async () => {
    await writePeering(freshAllow, { mesh: MESH, node: { name: 'fresh-allow' }, allow: mesh.map(p => p.peerId), bootstrap: [nodes[0]!.meshAddr] })
  }, target)
  log('certificate: a fresh node runs akmesh mesh join, bootstraps to node 0 only')
  const certFile = join(root, 'fresh.cert')
  writeFileSync(certFile, await issueCertificate(rootKey, { mesh: MESH, peer: freshCert.peerId, site: 'fresh', validForMs: YEAR }))
  await writePeering(freshCert, { mesh: MESH, node: { name: 'fresh' }, allow: [], bootstrap: [nodes[0]!.meshAddr] })
  const withCert = await joinFresh('akmesh mesh join (certificate)', freshCert, async () => {
    await run(NODE, [AKMESH_CLI, 'mesh', 'join', certFile, '--data', freshCert.dataDir], { quiet: true })
  }, target)
  const loadAfter = loadavg()

  console.log(`\nmesh join: a fresh node, one bootstrap address (node 0) into ${N} nodes holding ${MANIFESTS} manifests (generic PUTs, ${N} origins); until its watermarks equal the mesh's`)
  console.log(`load average (1/5/15 min) before: ${loadBefore.map(l => fmt(l)).join(' ')}, after: ${loadAfter.map(l => fmt(l)).join(' ')}\n`)
  table([
    ['ms', 'join cmd', 'start→ready', 'ready→caught up', 'total', 'node CPU ms'],
    ...[baseline, withCert].map(r => [r.name, fmt(r.joinMs, 0), fmt(r.readyMs, 0), fmt(r.caughtUpMs, 0), fmt(r.totalMs, 0), fmt(r.cpuMs, 0)])
  ])
  console.log(`\ncertificate / baseline: total ${ratio(withCert.totalMs, baseline.totalMs)}, catch-up after ready ${ratio(withCert.caughtUpMs, baseline.caughtUpMs)}, node CPU ${ratio(withCert.cpuMs, baseline.cpuMs)}\n`)
  table(cpuTable)
})
