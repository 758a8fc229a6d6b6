// store/uploads.ts on a real store in a temp dir: uploads spanning several appends, their
// digests, failures midway, and that no temp file outlives its session.
import test from 'ava'
import { createHash, randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { FileBlobStore, listTempFiles } from '../store/blobs.ts'
import { openDatabase } from '../store/db.ts'
import { RegistryError } from '../store/errors.ts'
import { UploadSessions } from '../store/uploads.ts'
import { makeTempDir } from './helpers/node.ts'
import type { ExecutionContext } from 'ava'

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')

async function setup (t: ExecutionContext, opts: { idleMs?: number, maxSessions?: number } = {}) {
  const dataDir = await makeTempDir(t)
  const db = openDatabase(join(dataDir, 'akmesh.db'))
  const store = await FileBlobStore.open(dataDir, db)
  const uploads = new UploadSessions(store, opts)
  t.teardown(async () => { await uploads.close(); db.close() })
  return { dataDir, store, uploads }
}

/** A stream that yields `good` and then fails, like a client that disconnects mid-chunk. */
async function * failingAfter (good: Uint8Array): AsyncGenerator<Uint8Array> {
  yield good
  throw new Error('client went away')
}

test('appends across requests commit to the same blob a single put stores, and leave no temp file', async t => {
  const { dataDir, store, uploads } = await setup(t)
  // Pieces that straddle the store's 1 MiB chunk and write-batch boundaries.
  const parts = [randomBytes(700_000), randomBytes(1_500_000), randomBytes(3)]
  const whole = Buffer.concat(parts)
  const s = await uploads.begin('docker/a')
  t.is((await listTempFiles(dataDir)).length, 1)
  for (const p of parts) await uploads.append(s.id, Readable.from([p]))
  t.is(uploads.status(s.id)?.size, whole.length)
  const blob = await uploads.commit(s.id, { sha256: sha256(whole) })
  t.is(blob.size, whole.length)
  t.is(blob.sha256, sha256(whole))
  t.deepEqual(await listTempFiles(dataDir), [])
  t.is(uploads.status(s.id), undefined)
  const direct = await store.put(Readable.from([whole]))
  t.is(direct.cid, blob.cid, 'same bytes, same CID, whichever path stored them')
  t.is(store.chunkHashes(blob.cid).length, 3)
})

test('a digest mismatch stores nothing, ends the session and removes its temp file', async t => {
  const { dataDir, store, uploads } = await setup(t)
  const bytes = randomBytes(10_000)
  const s = await uploads.begin('docker/a')
  await uploads.append(s.id, Readable.from([bytes]))
  const err = await t.throwsAsync(uploads.commit(s.id, { sha256: '0'.repeat(64) }))
  t.true(err instanceof RegistryError && err.code === 'IntegrityError')
  t.is(store.statBySha256(sha256(bytes)), undefined)
  t.is(uploads.status(s.id), undefined)
  t.deepEqual(await listTempFiles(dataDir), [])
})

test('bytes received before a stream fails stay in the session, which can resume and finish', async t => {
  const { uploads } = await setup(t)
  const first = randomBytes(300_000)
  const rest = randomBytes(200_000)
  const s = await uploads.begin('docker/a')
  await t.throwsAsync(uploads.append(s.id, failingAfter(first)), { message: 'client went away' })
  t.is(uploads.status(s.id)?.size, first.length)
  await uploads.append(s.id, Readable.from([rest]))
  const blob = await uploads.commit(s.id, { sha256: sha256(Buffer.concat([first, rest])) })
  t.is(blob.size, first.length + rest.length)
})

test('an append over the size limit is refused and keeps what fitted before', async t => {
  const { uploads } = await setup(t)
  const s = await uploads.begin('docker/a')
  await uploads.append(s.id, Readable.from([randomBytes(100)]), { maxBytes: 150 })
  const err = await t.throwsAsync(uploads.append(s.id, Readable.from([randomBytes(100)]), { maxBytes: 150 }))
  t.true(err instanceof RegistryError && err.code === 'TooLarge')
  t.is(uploads.status(s.id)?.size, 100)
})

test('idle sessions are abandoned with their temp files; recent ones stay', async t => {
  const { dataDir, uploads } = await setup(t, { idleMs: 60_000 })
  const old = await uploads.begin('docker/a')
  await uploads.append(old.id, Readable.from([randomBytes(1000)]))
  const abandoned = await uploads.abandonIdle(Date.now() + 60_001)
  t.deepEqual(abandoned, [old.id])
  t.is(uploads.status(old.id), undefined)
  t.deepEqual(await listTempFiles(dataDir), [])
  const fresh = await uploads.begin('docker/a')
  t.deepEqual(await uploads.abandonIdle(), [])
  t.truthy(uploads.status(fresh.id))
})

test('sessions are capped (TooManyRequests) and cancel frees a place and the temp file', async t => {
  const { dataDir, uploads } = await setup(t, { maxSessions: 2 })
  const a = await uploads.begin('docker/a')
  await uploads.begin('docker/a')
  const err = await t.throwsAsync(uploads.begin('docker/a'))
  t.true(err instanceof RegistryError && err.code === 'TooManyRequests')
  t.true(await uploads.cancel(a.id))
  t.false(await uploads.cancel(a.id))
  t.is((await listTempFiles(dataDir)).length, 1)
  await uploads.begin('docker/a')
  await uploads.close()
  t.deepEqual(await listTempFiles(dataDir), [])
})

test('two requests cannot append to one session at once', async t => {
  const { uploads } = await setup(t)
  const s = await uploads.begin('docker/a')
  const gate = Promise.withResolvers<void>()
  const slow = uploads.append(s.id, (async function * () { yield randomBytes(10); await gate.promise })())
  const err = await t.throwsAsync(uploads.append(s.id, Readable.from([randomBytes(10)])))
  t.true(err instanceof RegistryError && err.code === 'Conflict')
  gate.resolve()
  t.is((await slow).size, 10)
})
