// The signer turns local changes into signed manifests; applying them on other nodes reproduces
// the origin's index (multi-hop too), idempotently, and conflicts converge in any arrival order.
import test from 'ava'
import { createBLAKE3 } from 'hash-wasm'
import { pino } from 'pino'
import { ManifestError, openEnvelope, signManifest, type Manifest } from '../mesh/manifest.ts'
import { RemoteApplier } from '../store/apply.ts'
import { BlobLinks } from '../store/blob-links.ts'
import type { SignedManifest } from '../mesh/signer.ts'
import type { ManifestRecord } from '../store/manifests.ts'
import { MESH, openMeshStore, snapshot, until, type MeshStore } from './helpers/mesh-store.ts'

const localChanges = (s: MeshStore) => s.db.prepare<[], { seq: number, kind: string }>('SELECT seq, kind FROM changes WHERE origin IS NULL ORDER BY seq').all()

/** Several kinds of changes in three formats, as the formats make them. */
async function exercise (a: MeshStore): Promise<void> {
  const [t1, t2, g1, g2, g3, w1, w2, x1, x2] = await Promise.all(
    ['tarball 1', 'tarball 2', 'file v1', 'file v2', 'other file', 'wheel', 'wheel metadata', 'gone 1', 'gone 2'].map(a.put))
  const npm = a.artifacts
  npm.atomically(() => {
    npm.publish({ repo: 'npm', name: 'left-pad', version: '1.0.0', files: [{ filename: 'left-pad-1.0.0.tgz', cid: t1.cid }], metadata: { name: 'left-pad', version: '1.0.0' } })
    npm.setTag('npm', 'left-pad', 'latest', '1.0.0')
  })
  npm.publish({ repo: 'npm', name: 'left-pad', version: '1.1.0', files: [{ filename: 'left-pad-1.1.0.tgz', cid: t2.cid }], metadata: { name: 'left-pad', version: '1.1.0' } })
  npm.setTag('npm', 'left-pad', 'latest', '1.1.0')
  npm.setTag('npm', 'left-pad', 'beta', '1.0.0')
  npm.updateMetadata('npm', 'left-pad', '1.0.0', { name: 'left-pad', version: '1.0.0', deprecated: 'use 1.1.0' })
  npm.removeTag('npm', 'left-pad', 'beta')
  npm.remove('npm', 'left-pad', '1.1.0') // also drops `latest`, which pointed at it
  npm.setTag('npm', 'left-pad', 'latest', '1.0.0')
  npm.publish({ repo: 'npm', name: 'gone', version: '1.0.0', files: [{ filename: 'gone-1.0.0.tgz', cid: x1.cid }], metadata: {} })
  npm.publish({ repo: 'npm', name: 'gone', version: '2.0.0', files: [{ filename: 'gone-2.0.0.tgz', cid: x2.cid }], metadata: {} })
  npm.setTag('npm', 'gone', 'latest', '2.0.0')
  npm.removePackage('npm', 'gone')

  npm.publish({ repo: 'files', name: 'dir/a.txt', version: '', files: [{ filename: 'a.txt', cid: g1.cid }], metadata: { contentType: null } }, { replace: true })
  npm.publish({ repo: 'files', name: 'dir/a.txt', version: '', files: [{ filename: 'a.txt', cid: g2.cid }], metadata: { contentType: 'text/plain' } }, { replace: true })
  npm.publish({ repo: 'files', name: 'dir/b.txt', version: '', files: [{ filename: 'b.txt', cid: g3.cid }], metadata: {} }, { replace: true })
  npm.remove('files', 'dir/b.txt', '')

  npm.addFiles('py', 'demo', '1.0', [{ filename: 'demo-1.0-py3-none-any.whl', cid: w1.cid }], () => ({ files: { whl: 1 } }))
  npm.addFiles('py', 'demo', '1.0', [{ filename: 'demo-1.0-py3-none-any.whl.metadata', cid: w2.cid }], cur => ({ ...cur, metadata: true }))
}

const all = (s: MeshStore, origin: string): ManifestRecord[] => s.manifests.since(origin, 0, 10_000)

async function open (r: ManifestRecord, members: string[]): Promise<Manifest> {
  return await openEnvelope(r.envelope, { mesh: MESH, isAllowed: o => members.includes(o) })
}

async function applyAll (to: MeshStore, records: ManifestRecord[], members: string[]): Promise<string[]> {
  const statuses: string[] = []
  for (const r of records) statuses.push(to.applier.applyRemote(await open(r, members), r.envelope).status)
  return statuses
}

async function blake3Hex (data: Uint8Array): Promise<string> {
  const h = await createBLAKE3()
  h.update(data)
  return h.digest('hex')
}

test('local changes of every kind become signed manifests with increasing seqs', async t => {
  const a = await openMeshStore(t)
  const emitted: SignedManifest[] = []
  a.signer.onManifest(m => emitted.push(m))
  await a.signer.start()
  await exercise(a)
  const changes = localChanges(a)
  await until(() => emitted.length === changes.length)

  const records = all(a, a.peerId)
  t.deepEqual(records.map(r => r.seq), changes.map(c => c.seq))
  t.deepEqual(emitted.map(e => e.manifest.seq), changes.map(c => c.seq))
  t.deepEqual([...new Set(records.map(r => r.kind))].sort(), ['add-files', 'delete', 'metadata', 'publish', 'tag', 'untag'])
  t.deepEqual(a.manifests.watermarks(), new Map([[a.peerId, changes.at(-1)?.seq]]))

  const manifests = await Promise.all(records.map(async r => await open(r, [a.peerId])))
  t.deepEqual(manifests, emitted.map(e => e.manifest))
  // Files carry what a receiver needs before it has the bytes, chunkRoot pinning the chunk table.
  const pub = manifests.find(m => m.kind === 'publish' && m.version === '1.0.0') as Manifest
  const blob = a.store.stat(pub.files[0].cid)
  t.like(pub.files[0], { filename: 'left-pad-1.0.0.tgz', size: blob?.size, sha256: blob?.sha256, sha512: blob?.sha512, sha1: blob?.sha1, chunkSize: blob?.chunkSize })
  t.is(pub.files[0].chunkRoot, await blake3Hex(Buffer.concat(a.store.chunkHashes(pub.files[0].cid))))
  const meta = manifests.find(m => m.kind === 'metadata') as Manifest
  t.deepEqual(meta.metadata, { name: 'left-pad', version: '1.0.0', deprecated: 'use 1.1.0' })
  const addFiles = manifests.filter(m => m.kind === 'add-files')
  t.deepEqual(addFiles.at(-1)?.files.map(f => f.filename), ['demo-1.0-py3-none-any.whl', 'demo-1.0-py3-none-any.whl.metadata'])
  t.true(manifests.filter(m => m.name === 'dir/a.txt' && m.kind === 'publish').slice(1).every(m => m.replace === true))
})

test('changes a crash left unsigned are signed at the next start', async t => {
  const first = await openMeshStore(t)
  await exercise(first) // no signer running: nothing signed
  t.is(first.manifests.watermark(first.peerId), 0)
  await first.close()

  const again = await openMeshStore(t, { dir: first.dir, key: first.key })
  await again.signer.start()
  t.deepEqual(all(again, again.peerId).map(r => r.seq), localChanges(again).map(c => c.seq))
  // And it keeps following commits.
  again.artifacts.setTag('npm', 'left-pad', 'next', '1.0.0')
  await until(() => again.manifests.watermark(again.peerId) === localChanges(again).at(-1)?.seq)
})

test('applying A\'s manifests on B reproduces A\'s index, idempotently; C catches up from B', async t => {
  const [a, b, c] = await Promise.all([openMeshStore(t), openMeshStore(t), openMeshStore(t)])
  const members = [a.peerId, b.peerId, c.peerId]
  await a.signer.start()
  await exercise(a)
  await a.signer.signPending()
  await b.signer.start()

  const records = all(a, a.peerId)
  t.true((await applyAll(b, records, members)).every(s => s === 'applied'))
  t.deepEqual(snapshot(b.db), snapshot(a.db))
  t.is(b.manifests.watermarks().get(a.peerId), a.manifests.watermark(a.peerId))
  // B never signs A's changes as its own.
  await b.signer.signPending()
  t.is(b.manifests.watermark(b.peerId), 0)

  // Again, and out of order: nothing changes.
  const before = b.db.prepare('SELECT COUNT(*) AS n FROM changes').get()
  t.true((await applyAll(b, [...records].reverse(), members)).every(s => s === 'duplicate'))
  t.deepEqual(b.db.prepare('SELECT COUNT(*) AS n FROM changes').get(), before)
  t.deepEqual(snapshot(b.db), snapshot(a.db))

  // The blobs are known but not here: B lists the files but does not serve them.
  const cid = b.artifacts.get('npm', 'left-pad', '1.0.0')?.files[0].cid as string
  const aBlob = a.store.stat(cid)
  t.false(b.store.has(cid))
  t.is(b.store.stat(cid), undefined)
  t.is(b.store.statBySha256(aBlob?.sha256 as string), undefined)
  t.throws(() => b.store.open(cid), { message: /not found/ })
  t.like(b.store.describe(cid), { present: false, size: aBlob?.size, sha256: aBlob?.sha256, chunkRoot: await a.store.chunkRoot(cid) })
  t.false(b.store.allBlobs().some(x => x.cid === cid))
  t.true(new BlobLinks(b.db).has('npm', 'left-pad', cid), 'readable where an artifact names it, once present')
  // When the bytes arrive, the blob is served.
  const fetched = await b.put('tarball 1')
  t.is(fetched.cid, cid)
  t.deepEqual(b.store.stat(cid), aBlob && { ...aBlob, createdAt: fetched.createdAt })
  t.true(b.store.has(cid))

  // Multi-hop: C never meets A, and pulls A's manifests from B's log in small batches.
  let watermark = 0
  for (;;) {
    const batch = b.manifests.since(a.peerId, watermark, 4)
    if (batch.length === 0) break
    const opened = await Promise.all(batch.map(async r => ({ change: await open(r, members), envelope: r.envelope })))
    t.true(c.applier.applyMany(opened).every(r => r.status === 'applied'))
    watermark = batch.at(-1)?.seq as number
  }
  t.deepEqual(snapshot(c.db), snapshot(a.db))
  t.is(c.manifests.watermark(a.peerId), a.manifests.watermark(a.peerId))
})

test('an envelope from a non-member never reaches the index', async t => {
  const [a, b] = await Promise.all([openMeshStore(t), openMeshStore(t)])
  await a.signer.start()
  a.artifacts.publish({ repo: 'npm', name: 'x', version: '1.0.0', files: [{ filename: 'x.tgz', cid: (await a.put('x')).cid }], metadata: {} })
  await a.signer.signPending()
  const [r] = all(a, a.peerId)
  const err = await t.throwsAsync(open(r, [b.peerId]), { instanceOf: ManifestError })
  t.is(err?.reason, 'not-allowed')
  t.is(b.artifacts.get('npm', 'x', '1.0.0'), undefined)
})

test('a manifest for a repository this node lacks is kept for forwarding, not applied', async t => {
  const a = await openMeshStore(t)
  const b = await openMeshStore(t, { repos: [['npm', 'npm']] })
  await a.signer.start()
  a.artifacts.publish({ repo: 'files', name: 'f', version: '', files: [{ filename: 'f', cid: (await a.put('f')).cid }], metadata: {} })
  await a.signer.signPending()
  t.deepEqual(await applyAll(b, all(a, a.peerId), [a.peerId]), ['unknown-repository'])
  t.is(b.manifests.since(a.peerId, 0, 10).length, 1)
  t.deepEqual(b.db.prepare('SELECT COUNT(*) AS n FROM artifacts').get(), { n: 0 })
})

test('a repository with replication policy none keeps manifests for forwarding but applies none', async t => {
  const a = await openMeshStore(t)
  const b = await openMeshStore(t)
  const policy = { files: 'none' } as Record<string, string>
  const applier = new RemoteApplier({ db: b.db, artifacts: b.artifacts, store: b.store, manifests: b.manifests, self: b.peerId, replicates: (repo) => policy[repo] !== 'none' })
  await a.signer.start()
  a.artifacts.publish({ repo: 'files', name: 'f', version: '', files: [{ filename: 'f', cid: (await a.put('f')).cid }], metadata: {} })
  a.artifacts.publish({ repo: 'npm', name: 'n', version: '1.0.0', files: [{ filename: 'n.tgz', cid: (await a.put('n')).cid }], metadata: {} })
  await a.signer.signPending()
  const statuses: string[] = []
  for (const r of all(a, a.peerId)) statuses.push(applier.applyRemote(await open(r, [a.peerId]), r.envelope).status)
  t.deepEqual(statuses, ['not-replicated', 'applied'])
  t.is(b.manifests.since(a.peerId, 0, 10).length, 2, 'both kept, so both are forwarded')
  t.is(b.artifacts.get('files', 'f', ''), undefined)
  t.truthy(b.artifacts.get('npm', 'n', '1.0.0'))
})

/** Deterministic shuffles (mulberry32), so a failing order can be replayed. */
function shuffled<T> (items: T[], seed: number): T[] {
  const out = [...items]
  let s = seed
  const rand = () => { s = (s + 0x6D2B79F5) | 0; let x = Math.imul(s ^ (s >>> 15), 1 | s); x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x; return ((x ^ (x >>> 14)) >>> 0) / 4294967296 }
  for (let i = out.length - 1; i > 0; i--) { const j = Math.floor(rand() * (i + 1)); [out[i], out[j]] = [out[j], out[i]] }
  return out
}

const tick = async () => { const now = Date.now(); await until(() => Date.now() > now) }

test('conflicting publishes, deletes and tag moves converge to one state in every arrival order', async t => {
  const [a, b] = await Promise.all([openMeshStore(t), openMeshStore(t)])
  const members = [a.peerId, b.peerId]
  await Promise.all([a.signer.start(), b.signer.start()])
  const tgz = (s: MeshStore, text: string) => s.put(text).then(x => [{ filename: 'p-1.0.0.tgz', cid: x.cid }])

  a.artifacts.publish({ repo: 'npm', name: 'p', version: '1.0.0', files: await tgz(a, 'from A'), metadata: { by: 'A' } })
  a.artifacts.setTag('npm', 'p', 'latest', '1.0.0')
  a.artifacts.publish({ repo: 'npm', name: 'q', version: '1.0.0', files: await tgz(a, 'q'), metadata: {} })
  await tick()
  // B, not having seen A's: the same version with other bytes (a conflict A wins: earlier).
  b.artifacts.publish({ repo: 'npm', name: 'p', version: '1.0.0', files: await tgz(b, 'from B'), metadata: { by: 'B' } })
  b.artifacts.updateMetadata('npm', 'p', '1.0.0', { by: 'B', deprecated: 'on B\'s bytes' })
  b.artifacts.publish({ repo: 'npm', name: 'p', version: '2.0.0', files: await tgz(b, 'two'), metadata: { by: 'B' } })
  b.artifacts.setTag('npm', 'p', 'latest', '2.0.0')
  await tick()
  a.artifacts.updateMetadata('npm', 'p', '1.0.0', { by: 'A', note: 'edited' })
  a.artifacts.remove('npm', 'q', '1.0.0') // its delete may arrive before its publish
  a.artifacts.setTag('npm', 'p', 'beta', '1.0.0')
  // One PyPI release gathering files uploaded to different nodes: the files add up.
  a.artifacts.addFiles('py', 'demo', '1.0', [{ filename: 'demo-1.0.whl', cid: (await a.put('wheel')).cid }], () => ({ from: 'A' }))
  await tick()
  b.artifacts.addFiles('py', 'demo', '1.0', [{ filename: 'demo-1.0.tar.gz', cid: (await b.put('sdist')).cid }], () => ({ from: 'B' }))
  await Promise.all([a.signer.signPending(), b.signer.signPending()])

  const fromA = all(a, a.peerId)
  const fromB = all(b, b.peerId)
  const loser = fromB.find(r => r.kind === 'publish' && r.version === '1.0.0') as ManifestRecord
  const winner = fromA.find(r => r.kind === 'publish' && r.name === 'p') as ManifestRecord

  // The two origins exchange their manifests.
  const bResults = []
  for (const r of fromA) bResults.push(b.applier.applyRemote(await open(r, members), r.envelope))
  await applyAll(a, fromB, members)
  t.deepEqual(bResults.flatMap(r => r.conflicts), [{ repo: 'npm', name: 'p', version: '1.0.0', winner: { origin: a.peerId, seq: winner.seq }, loser: { origin: b.peerId, seq: loser.seq } }])
  const converged = snapshot(a.db)
  t.deepEqual(snapshot(b.db), converged, 'B\'s own losing publish was replaced by the winner')

  const p1 = a.artifacts.get('npm', 'p', '1.0.0')
  t.deepEqual(p1?.metadata, { by: 'A', note: 'edited' })
  t.is(p1?.files[0].cid, (await a.put('from A')).cid)
  t.deepEqual(a.artifacts.tags('npm', 'p'), { latest: '2.0.0', beta: '1.0.0' })
  t.is(a.artifacts.get('npm', 'q', '1.0.0'), undefined)
  t.true(a.artifacts.isTombstoned('npm', 'q', '1.0.0'))
  t.like(a.artifacts.get('py', 'demo', '1.0'), { metadata: { from: 'B' }, files: [{ filename: 'demo-1.0.tar.gz' }, { filename: 'demo-1.0.whl' }] })

  const everything = [...fromA, ...fromB]
  const orders = [everything, [...everything].reverse(), ...[1, 2, 3, 4, 5, 6].map(seed => shuffled(everything, seed))]
  for (const [i, order] of orders.entries()) {
    const c = await openMeshStore(t)
    await applyAll(c, order, members)
    t.deepEqual(snapshot(c.db), converged, `arrival order ${i}`)
    t.deepEqual(c.db.prepare('SELECT loser_origin, loser_seq, winner_origin, winner_seq FROM conflicts').all(),
      [{ loser_origin: b.peerId, loser_seq: loser.seq, winner_origin: a.peerId, winner_seq: winner.seq }])
    // The loser stays in the manifest log, so it is forwarded and the decision reproducible.
    t.truthy(c.manifests.get(b.peerId, loser.seq))
    await c.close()
  }
})

test('a local change made after applying a remote one sorts after it, even if the remote clock is ahead', async t => {
  const [a, b] = await Promise.all([openMeshStore(t), openMeshStore(t)])
  const members = [a.peerId, b.peerId]
  await b.signer.start()
  const one = await b.put('one')
  b.artifacts.publish({ repo: 'npm', name: 'p', version: '1.0.0', files: [{ filename: 'p-1.0.0.tgz', cid: one.cid }], metadata: {} })
  // A's clock runs a minute ahead: its tag move is dated in B's future.
  const ahead: Manifest = {
    v: 1, mesh: MESH, origin: a.peerId, seq: 1, prev: 0, timestamp: Date.now() + 60_000, kind: 'tag', repo: 'npm', format: 'npm',
    name: 'p', version: '1.0.0', tag: 'latest', files: [], metadata: {}
  }
  const envelope = await signManifest(ahead, a.key)
  t.is(b.applier.applyRemote(await openEnvelope(envelope, { mesh: MESH, isAllowed: o => members.includes(o) }), envelope).status, 'applied')
  t.deepEqual(b.artifacts.tags('npm', 'p'), { latest: '1.0.0' })
  // B then moves the tag: B saw A's move, so B's move wins everywhere.
  b.artifacts.publish({ repo: 'npm', name: 'p', version: '2.0.0', files: [{ filename: 'p-2.0.0.tgz', cid: (await b.put('two')).cid }], metadata: {} })
  b.artifacts.setTag('npm', 'p', 'latest', '2.0.0')
  await b.signer.signPending()
  const fromB = all(b, b.peerId)
  t.true((fromB.at(-1)?.timestamp as number) > ahead.timestamp)
  for (const order of [[{ envelope }, ...fromB], [...fromB, { envelope }]]) {
    const fresh = await openMeshStore(t)
    for (const r of order) fresh.applier.applyRemote(await openEnvelope(r.envelope, { mesh: MESH, isAllowed: o => members.includes(o) }), r.envelope)
    t.deepEqual(fresh.artifacts.tags('npm', 'p'), { latest: '2.0.0' })
    t.deepEqual(snapshot(fresh.db), snapshot(b.db))
    await fresh.close()
  }
})

test('a conflict is logged as "manifest conflict" once', async t => {
  const [a, b] = await Promise.all([openMeshStore(t), openMeshStore(t)])
  await Promise.all([a.signer.start(), b.signer.start()])
  a.artifacts.publish({ repo: 'npm', name: 'p', version: '1.0.0', files: [{ filename: 'p.tgz', cid: (await a.put('A')).cid }], metadata: {} })
  await tick()
  b.artifacts.publish({ repo: 'npm', name: 'p', version: '1.0.0', files: [{ filename: 'p.tgz', cid: (await b.put('B')).cid }], metadata: {} })
  await Promise.all([a.signer.signPending(), b.signer.signPending()])
  const lines: string[] = []
  const log = pino({ level: 'info' }, { write: (line: string) => { lines.push(line) } })
  const applier = new RemoteApplier({ db: a.db, artifacts: a.artifacts, store: a.store, manifests: a.manifests, self: a.peerId, log })
  const [r] = all(b, b.peerId)
  const m = await openEnvelope(r.envelope, { mesh: MESH, isAllowed: () => true })
  applier.applyRemote(m, r.envelope)
  applier.applyRemote(m, r.envelope)
  const logged = lines.map(l => JSON.parse(l)).filter(l => l.msg === 'manifest conflict')
  t.is(logged.length, 1)
  t.like(logged[0], { repo: 'npm', name: 'p', version: '1.0.0', winner: { origin: a.peerId }, loser: { origin: b.peerId, seq: r.seq } })
  t.is(a.artifacts.get('npm', 'p', '1.0.0')?.files[0].cid, (await a.put('A')).cid)
})

test('a manifest that describes a blob unlike its bytes here is kept but not applied', async t => {
  const [a, b] = await Promise.all([openMeshStore(t), openMeshStore(t)])
  const blob = await b.put('the real bytes')
  const liar: Manifest = {
    v: 1, mesh: MESH, origin: a.peerId, seq: 1, prev: 0, timestamp: Date.now(), kind: 'publish', repo: 'npm', format: 'npm', name: 'p', version: '1.0.0',
    files: [{ filename: 'p.tgz', cid: blob.cid, size: blob.size + 1, sha256: blob.sha256, sha512: blob.sha512, sha1: blob.sha1, chunkSize: blob.chunkSize, chunkRoot: await b.store.chunkRoot(blob.cid) }],
    metadata: {}
  }
  const envelope = await signManifest(liar, a.key)
  t.is(b.applier.applyRemote(await openEnvelope(envelope, { mesh: MESH, isAllowed: () => true }), envelope).status, 'blob-mismatch')
  t.is(b.artifacts.get('npm', 'p', '1.0.0'), undefined)
  t.like(b.store.stat(blob.cid), { size: blob.size })
  t.is(b.manifests.watermark(a.peerId), 1)
})
