// The collector's rules on a real store and SQLite file in a temp dir: reads and partial files
// spare a blob, local changes not yet signed spare theirs, orphan files wait for the grace
// period, and a commit of the same bytes racing a delete never leaves a row without its file.
import test, { type ExecutionContext } from 'ava'
import { existsSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { ArtifactIndex } from '../store/artifacts.ts'
import { FileBlobStore } from '../store/blobs.ts'
import { openDatabase, type DB } from '../store/db.ts'
import { collectGarbage, type GcOptions } from '../store/gc.ts'
import { sweepOrphans } from '../store/orphans.ts'
import { verifyStore } from '../store/verify.ts'
import { makeTempDir, waitFor } from './helpers/node.ts'
import { deterministicBytes } from './helpers/streams.ts'

async function openStore (t: ExecutionContext): Promise<{ dir: string, db: DB, store: FileBlobStore }> {
  const dir = await makeTempDir(t, 'akmesh-gc-')
  const db = openDatabase(join(dir, 'akmesh.db'))
  t.teardown(() => { if (db.open) db.close() })
  return { dir, db, store: await FileBlobStore.open(dir, db) }
}

const noManifests = () => ({ cids: [], replace: false })
const gc = async (s: { db: DB, store: FileBlobStore }, opts: GcOptions, self = 'self') =>
  await collectGarbage({ db: s.db, store: s.store, decode: noManifests, self }, opts)

test('a blob read within the grace period, or with a partial file, is spared until that stops', async t => {
  const s = await openStore(t)
  const blob = await s.store.put(Readable.from([deterministicBytes(5000, 'read')]))
  let reading = true
  const reader = (async () => { while (reading) { s.store.stat(blob.cid); await new Promise(resolve => setTimeout(resolve, 20)) } })()
  const spared = await waitFor(async () => { const r = await gc(s, { graceMs: 300, dryRun: true }); return r.spared.young === 0 ? r : undefined }, 'the blob to age')
  t.is(spared?.spared.inUse, 1)
  t.deepEqual(spared?.blobs, [])
  reading = false
  await reader
  const dry = await waitFor(async () => { const r = await gc(s, { graceMs: 300, dryRun: true }); return r.blobs.length > 0 ? r : undefined }, 'reads to age')
  t.deepEqual(dry?.blobs.map(b => b.cid), [blob.cid])

  await mkdir(join(s.dir, 'partial'), { recursive: true })
  await writeFile(s.store.partialPath(blob.cid), 'x')
  const partial = await gc(s, { graceMs: 300 })
  t.is(partial.spared.inUse, 1)
  t.true(s.store.has(blob.cid))
})

test('blobs of local changes the signer has not signed yet are kept, though their artifact is gone', async t => {
  const s = await openStore(t)
  const index = new ArtifactIndex(s.db)
  index.ensureRepository('files', 'generic')
  const blob = await s.store.put(Readable.from([deterministicBytes(4000, 'unsigned')]))
  index.publish({ repo: 'files', name: 'a', version: '', files: [{ filename: 'a', cid: blob.cid }], metadata: {} })
  index.remove('files', 'a', '')
  const r = await gc(s, { graceMs: 0, now: Date.now() + 60_000 })
  t.is(r.spared.unsigned, 1)
  t.true(s.store.has(blob.cid))
  // Once both changes are signed (manifest rows of this node) only manifests count, and these
  // (decoded as naming nothing here) keep nothing.
  s.db.prepare(`INSERT INTO manifests (origin, seq, prev, kind, repo, name, version, timestamp, envelope, received_at)
    SELECT 'self', seq, 0, kind, repo, name, version, at, x'00', 0 FROM changes`).run()
  const signed = await gc(s, { graceMs: 0, now: Date.now() + 60_000 })
  t.deepEqual(signed.blobs.map(b => b.cid), [blob.cid])
  t.false(s.store.has(blob.cid))
})

test('orphan files are swept only once the grace period has passed; files that are not blobs stay', async t => {
  const s = await openStore(t)
  const blob = await s.store.put(Readable.from([deterministicBytes(3000, 'orphan')]))
  // What a crash between the rename and the row leaves.
  s.db.prepare('DELETE FROM blobs WHERE cid = ?').run(blob.cid)
  const stray = join(s.store.blobDir, 'zz', 'notes.txt')
  await mkdir(join(s.store.blobDir, 'zz'), { recursive: true })
  await writeFile(stray, 'not a blob')
  const report = await verifyStore(s.store)
  t.deepEqual(report.orphans.map(o => o.cid), [blob.cid])
  t.is(report.orphanBytes, 3000)
  t.deepEqual(report.problems, [])

  t.is((await sweepOrphans(s.store, s.db, { graceMs: 60_000 })).count, 0, 'too young')
  t.true(existsSync(s.store.pathOf(blob.cid)))
  const swept = await sweepOrphans(s.store, s.db, { graceMs: 60_000, now: Date.now() + 120_000 })
  t.deepEqual(swept.files, [{ cid: blob.cid, size: 3000 }])
  t.false(existsSync(s.store.pathOf(blob.cid)))
  t.true(existsSync(stray))
  t.deepEqual((await verifyStore(s.store)).orphans, [])
})

test('the same bytes committed again while gc deletes them: the blob ends whole or gone, never a row without its file', async t => {
  const s = await openStore(t)
  for (let i = 0; i < 30; i++) {
    const bytes = deterministicBytes(20_000 + i, `race-${i}`)
    const first = await s.store.put(Readable.from([bytes]))
    const [again] = await Promise.all([
      s.store.put(Readable.from([bytes])),
      gc(s, { graceMs: 0, now: Date.now() + 60_000 })
    ])
    t.is(again.cid, first.cid)
    const present = s.store.has(first.cid)
    t.is(existsSync(s.store.pathOf(first.cid)), present, `round ${i}: file and row agree`)
  }
  const v = await verifyStore(s.store)
  t.deepEqual(v.problems, [])
})

test('a manifest naming a blob that arrives while gc runs keeps the blob (re-checked in the deleting transaction)', async t => {
  const s = await openStore(t)
  const blob = await s.store.put(Readable.from([deterministicBytes(6000, 'late manifest')]))
  const insert = s.db.prepare(`INSERT INTO manifests (origin, seq, prev, kind, repo, name, version, timestamp, envelope, received_at)
    VALUES (?, 1, 0, 'publish', 'files', ?, '', 1, ?, ?)`)
  const envelope = (cids: string[]) => Buffer.from(JSON.stringify({ cids, replace: false }))
  insert.run('m-origin', 'earlier', envelope([]), 0)
  // Decoding the held manifest, the run lets one arrive that sorts before its paging cursor.
  const decode = (e: Uint8Array) => {
    const facts = JSON.parse(Buffer.from(e).toString()) as { cids: string[], replace: boolean }
    if (facts.cids.length === 0) insert.run('a-origin', 'late', envelope([blob.cid]), Date.now())
    return facts
  }
  const r = await collectGarbage({ db: s.db, store: s.store, decode, self: 'self' }, { graceMs: 0, now: Date.now() + 60_000 })
  t.deepEqual(r.blobs, [])
  t.true(s.store.has(blob.cid))
  // The next run sees it among the held manifests.
  const next = await collectGarbage({ db: s.db, store: s.store, decode: e => JSON.parse(Buffer.from(e).toString()), self: 'self' }, { graceMs: 0, now: Date.now() + 60_000 })
  t.is(next.spared.manifest, 1)
})
