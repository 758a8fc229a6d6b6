// Swarm transfers on shaped links (issue 5): akmesh nodes, one per Linux network namespace, joined
// through a bridge by veth links capped with tbf (test/helpers/netns.ts has the topology and the
// tbf parameters). Root only. Prints:
//   1. swarm efficiency: one uncapped downloader, k = 1..K seeders each capped at R upload, one
//      blob: achieved rate / (k·R);
//   2. heterogeneous seeders at R and R/8: bytes taken from each vs their rate share (8/9, 1/9), and
//      the time vs the fast seeder alone;
//   3. flash crowd: one seeder, C downloaders asking at once, every link capped at R both ways:
//      total time vs C × one single-source download measured in the same run; how many copies the
//      seeder sent and how much the downloaders sent each other.
// "Bytes sent" are the links' tc class counters for node-to-node traffic (L2 bytes, so ~4 % above
// payload: TCP/IP headers over a 1500-byte MTU and Noise/yamux framing; the payload ceiling of an
// efficiency is thus ~0.95). Timings are client side: from the GET to the last body byte.
//
//   node_modules/.bin/node bench/swarm.ts
//   env: BENCH_SIZE_MIB (default 128), BENCH_RATE_MBIT (R, default 40), BENCH_SEEDERS (K, default 4),
//        BENCH_CROWD (C, default 8), BENCH_ONLY (comma list of efficiency,hetero,crowd; default all).
//   Nodes log at info (their readiness is the "listening" line), read by this process.
import { loadavg } from 'node:os'
import { delta, download, lab, mbit, netnsUnavailable, seed, startLabNodes, swarmApi, transferOf, warnings, type Lab, type LabNode, type Teardown } from '../test/helpers/netns.ts'
import { deterministicBytes, MiB, sha256Hex } from '../test/helpers/streams.ts'
import { main, onCleanup } from './lib/proc.ts'
import { fmt, log, table } from './lib/stats.ts'

const SIZE = Math.round(Number(process.env.BENCH_SIZE_MIB ?? 128) * MiB)
const R = mbit(Number(process.env.BENCH_RATE_MBIT ?? 40))
const K = Number(process.env.BENCH_SEEDERS ?? 4)
const CROWD = Number(process.env.BENCH_CROWD ?? 8)
const ONLY = new Set((process.env.BENCH_ONLY ?? 'efficiency,hetero,crowd').split(',').map(s => s.trim()))

const shim: Teardown = { teardown: (fn: () => unknown) => { onCleanup(fn) } } as unknown as Teardown
const mb = (bytes: number): string => (bytes / MiB).toFixed(1)
const mbps = (bytes: number, ms: number): number => bytes * 8 / (ms / 1000) / 1e6
const load = (): string => loadavg().map(x => x.toFixed(2)).join(' ')

async function caps (l: Lab, set: Record<number, { up?: number, down?: number }>): Promise<void> {
  for (const h of l.hosts) await l.shape(h.index, set[h.index] ?? {})
}

let blobNo = 0
/** A fresh blob seeded on `holders` (each PUTs it: nothing moves through the mesh), known to
 *  `knowers`. */
async function fresh (l: Lab, holders: LabNode[], knowers: LabNode[]): Promise<{ path: string, sha: string, cid: string }> {
  const name = `bench-${Date.now()}-${blobNo++}`
  const body = deterministicBytes(SIZE, name)
  const path = `files/swarm-bench/${name}.bin`
  await caps(l, {})
  log(`seeding ${mb(SIZE)} MiB on node(s) ${holders.map(h => h.index).join(',')}`)
  const cid = await seed(holders, path, body, knowers)
  return { path, sha: sha256Hex(body), cid }
}

/** A lab of exactly the nodes a measurement needs: a node that knows a blob and is asked for it
 *  fetches it too (relay), so bystanders would compete for the seeders' links. */
async function labOf (n: number): Promise<{ l: Lab, nodes: LabNode[], names: Map<string, string> }> {
  const l = await lab(shim, n)
  log(`starting ${n} nodes in lab ${l.run} (10.77.${l.run}.0/24)`)
  const nodes = await startLabNodes(shim, l, Array.from({ length: n }, () => ({})))
  return { l, nodes, names: new Map(nodes.map(x => [x.peerId, `node${x.index}`])) }
}

async function get (n: LabNode, blob: { path: string, sha: string }): Promise<number> {
  const d = await download(n, blob.path)
  if (d.status !== 200 || d.sha256 !== blob.sha) {
    throw new Error(`node ${n.index}: GET ${blob.path} -> ${d.status}, ${d.bytes} bytes, ${d.error ?? `sha256 ${d.sha256}`}; node's warnings:\n${warnings(n).join('\n')}`)
  }
  return d.ms
}

/** "peerA: n MiB, ..." from the downloader's transfer record, if the scheduler API exists. */
async function record (n: LabNode, cid: string, names: Map<string, string>): Promise<string> {
  const rec = await transferOf(n, cid).catch(() => undefined)
  if (rec == null) return ''
  return Object.entries(rec.sources).map(([p, s]) => `${names.get(p) ?? p.slice(-6)} ${mb(s.bytes)}`).join(', ')
}

/** Runs one section; a failure is printed (with what the nodes said) and the next section runs. */
async function section (name: string, fn: () => Promise<void>): Promise<void> {
  try { await fn() } catch (err: any) {
    console.log(`\n${name}: FAILED: ${err?.message ?? err}`)
    process.exitCode = 1
  }
}

await main(async () => {
  const why = netnsUnavailable()
  if (why != null) throw new Error(`bench/swarm.ts needs network namespaces: ${why}`)
  console.log(`swarm bench: blob ${mb(SIZE)} MiB, R = ${fmt(R / 1e6, 0)} Mbit/s, one node per netns, a lab per measurement, load ${load()}`)
  let announced = false
  const announce = async (n: LabNode): Promise<void> => {
    if (announced) return
    announced = true
    console.log(`scheduler admin API (GET /-/mesh/transfers): ${await swarmApi(n) ? 'present' : 'absent (round-robin fetcher)'}`)
  }

  if (ONLY.has('efficiency')) await section('efficiency', async () => {
    const rows = [['k', 'time s', 'Mbit/s', 'k·R Mbit/s', 'efficiency', 'MiB sent per seeder', 'transfer record (MiB)']]
    for (let k = 1; k <= K; k++) {
      const { l, nodes, names } = await labOf(k + 1)
      await announce(nodes[0])
      const downloader = nodes[0]
      const holders = nodes.slice(1)
      const blob = await fresh(l, holders, [downloader])
      await caps(l, Object.fromEntries(holders.map(s => [s.index, { up: R }])))
      const before = await l.allMeshBytes()
      log(`efficiency k=${k}`)
      const ms = await get(downloader, blob)
      const sent = delta(before, await l.allMeshBytes())
      const rate = mbps(SIZE, ms)
      rows.push([String(k), fmt(ms / 1000, 1), fmt(rate, 1), fmt(k * R / 1e6, 0), fmt(rate / (k * R / 1e6), 3),
        holders.map(s => mb(sent[s.index].sent)).join(' / '), await record(downloader, blob.cid, names)])
      await l.destroy()
    }
    console.log('\n1. swarm efficiency (downloader uncapped; each seeder capped at R upload)')
    table(rows)
  })

  if (ONLY.has('hetero')) await section('hetero', async () => {
    // Two labs: the slow seeder must not even know the first blob (it would relay-fetch it).
    const one = await labOf(2)
    await announce(one.nodes[0])
    const [downloader0, fast0] = one.nodes
    const alone = await fresh(one.l, [fast0], [downloader0])
    await caps(one.l, { 1: { up: R } })
    log('heterogeneous: fast seeder alone')
    const msAlone = await get(downloader0, alone)
    await one.l.destroy()
    const { l, nodes, names } = await labOf(3)
    const [downloader, fast, slow] = nodes
    const both = await fresh(l, [fast, slow], [downloader])
    await caps(l, { [fast.index]: { up: R }, [slow.index]: { up: R / 8 } })
    const before = await l.allMeshBytes()
    log('heterogeneous: fast + slow')
    const msBoth = await get(downloader, both)
    const sent = delta(before, await l.allMeshBytes())
    const [f, s] = [sent[fast.index].sent, sent[slow.index].sent]
    console.log(`\n2. heterogeneous seeders: fast at ${fmt(R / 1e6, 0)} Mbit/s, slow at ${fmt(R / 8e6, 1)} Mbit/s (downloader uncapped)`)
    table([
      ['', 'time s', 'Mbit/s', 'fast MiB', 'slow MiB', 'fast share', 'rate share'],
      ['fast alone', fmt(msAlone / 1000, 1), fmt(mbps(SIZE, msAlone), 1), '', '', '', ''],
      ['fast + slow', fmt(msBoth / 1000, 1), fmt(mbps(SIZE, msBoth), 1), mb(f), mb(s), fmt(f / (f + s), 3), fmt(8 / 9, 3)]
    ])
    console.log(`time (fast + slow) / time (fast alone) = ${fmt(msBoth / msAlone, 3)} (<= 1: never worse than the fast seeder alone)`)
    const rec = await record(downloader, both.cid, names)
    if (rec !== '') console.log(`transfer record (MiB): ${rec}`)
    await l.destroy()
  })

  if (ONLY.has('crowd')) await section('crowd', async () => {
    const one = await labOf(2)
    await announce(one.nodes[0])
    const single = await fresh(one.l, [one.nodes[0]], [one.nodes[1]])
    await caps(one.l, { 0: { up: R, down: R }, 1: { up: R, down: R } })
    log('flash crowd: one single-source download')
    const msSingle = await get(one.nodes[1], single)
    await one.l.destroy()
    const { l, nodes } = await labOf(1 + CROWD)
    const seeder = nodes[0]
    const crowd = nodes.slice(1)
    const all = Object.fromEntries(nodes.map(x => [x.index, { up: R, down: R }]))
    const blob = await fresh(l, [seeder], crowd)
    await caps(l, all)
    const before = await l.allMeshBytes()
    log(`flash crowd: ${CROWD} downloaders at once`)
    const t0 = performance.now()
    // A stalled crowd must not hang the bench: give up at 1.5 × the sequential estimate.
    const deadline = AbortSignal.timeout(Math.max(60_000, Math.round(1.5 * CROWD * msSingle)))
    const results = await Promise.all(crowd.map(async x => await download(x, blob.path, undefined, deadline)))
    const msAll = performance.now() - t0
    const failed = results.map((r, i) => ({ r, i })).filter(({ r }) => r.error != null || r.status !== 200 || r.sha256 !== blob.sha)
    for (const { r, i } of failed) console.log(`crowd downloader node${crowd[i].index} FAILED: status ${r.status}, ${mb(r.bytes)} MiB, ${r.error ?? 'wrong bytes'}`)
    const each = results.map(r => r.ms)
    const sent = delta(before, await l.allMeshBytes())
    const fromSeeder = sent[seeder.index].sent
    const fromPeers = crowd.reduce((a, x) => a + sent[x.index].sent, 0)
    console.log(`\n3. flash crowd: one seeder, ${CROWD} downloaders at once, every link capped at R = ${fmt(R / 1e6, 0)} Mbit/s both ways`)
    table([
      ['', 'seconds'],
      ['one single-source download', fmt(msSingle / 1000, 1)],
      [`${CROWD} × single (sequential estimate)`, fmt(CROWD * msSingle / 1000, 1)],
      [`${CROWD} at once: last one done`, fmt(msAll / 1000, 1)],
      [`${CROWD} at once: first one done`, fmt(Math.min(...each) / 1000, 1)]
    ])
    if (failed.length > 0) console.log(`${failed.length} of ${CROWD} crowd downloads FAILED: the times below are not a result`)
    console.log(`crowd time / (${CROWD} × single) = ${fmt(msAll / (CROWD * msSingle), 3)}; seeder sent ${fmt(fromSeeder / SIZE, 2)} copies, downloaders sent each other ${fmt(fromPeers / SIZE, 2)} copies`)
    await l.destroy()
  })
  console.log(`\nload average at the end: ${load()}`)
})
