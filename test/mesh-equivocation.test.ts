// Equivocation at the applier (store/apply.ts): two envelopes one origin signed for one seq,
// here naming different packages, applied in every order on fresh stores: every store ends in
// the same state, holds the same envelope for that seq, and keeps both as evidence.
import test from 'ava'
import { openEnvelope, signManifest, type Manifest } from '../mesh/manifest.ts'
import { envelopeHash } from '../store/apply.ts'
import { MESH, openMeshStore, snapshot } from './helpers/mesh-store.ts'

test('two envelopes for one (origin, seq) converge on the lower hash in either order, the loser undone', async t => {
  const origin = await openMeshStore(t)
  const one = await origin.put('one')
  const two = await origin.put('two')
  const file = async (filename: string, b: typeof one) =>
    ({ filename, cid: b.cid, size: b.size, sha256: b.sha256, sha512: b.sha512, sha1: b.sha1, chunkSize: b.chunkSize, chunkRoot: await origin.store.chunkRoot(b.cid) })
  const base = { v: 1, mesh: MESH, origin: origin.peerId, seq: 1, prev: 0, timestamp: Date.now(), kind: 'publish', repo: 'npm', format: 'npm', version: '1.0.0', metadata: {} } as const
  const envelopes = [
    await signManifest({ ...base, name: 'left', files: [await file('left-1.0.0.tgz', one)] } as Manifest, origin.key),
    await signManifest({ ...base, name: 'right', files: [await file('right-1.0.0.tgz', two)] } as Manifest, origin.key)
  ]
  const [winner, loser] = [...envelopes].sort((a, b) => envelopeHash(a) < envelopeHash(b) ? -1 : 1)
  const states: unknown[] = []
  for (const order of [[winner, loser], [loser, winner]]) {
    const s = await openMeshStore(t)
    const results = []
    for (const e of order) results.push(s.applier.applyRemote(await openEnvelope(e, { mesh: MESH, isAllowed: () => true }), e))
    t.is(results[0].status, 'applied')
    t.like(results[1].equivocation, { origin: origin.peerId, seq: 1, winner: envelopeHash(winner), loser: envelopeHash(loser) })
    t.is(results[1].status, order[1] === winner ? 'applied' : 'equivocation')
    t.deepEqual(s.manifests.get(origin.peerId, 1)?.envelope, winner)
    t.is((s.db.prepare('SELECT COUNT(*) AS n FROM equivocations').get() as { n: number }).n, 2)
    t.deepEqual(s.applier.equivocations().map(e => ({ origin: e.origin, seqs: e.seqs, envelopes: e.envelopes })), [{ origin: origin.peerId, seqs: 1, envelopes: 2 }])
    // Only one change row for that seq: the winner's.
    t.is((s.db.prepare('SELECT COUNT(*) AS n FROM changes WHERE origin = ? AND origin_seq = 1').get(origin.peerId) as { n: number }).n, 1)
    // The same envelope again is a plain duplicate, not news.
    t.is(s.applier.applyRemote(await openEnvelope(loser, { mesh: MESH, isAllowed: () => true }), loser).status, 'equivocation')
    states.push(snapshot(s.db))
  }
  t.deepEqual(states[0], states[1])
  t.is((states[0] as { artifacts: unknown[] }).artifacts.length, 1)
})
