// The blob store on a temp dir with a real SQLite file, checked against independent hash
// implementations (hash-wasm's BLAKE3, node:crypto) rather than against itself.
import test, { type ExecutionContext } from 'ava'
import { createHash } from 'node:crypto'
import { readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createBLAKE3 } from 'hash-wasm'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { create as createDigest } from 'multiformats/hashes/digest'
import { ArtifactIndex } from '../store/artifacts.ts'
import { FileBlobStore, listTempFiles } from '../store/blobs.ts'
import { openDatabase, type DB } from '../store/db.ts'
import { verifyStore } from '../store/verify.ts'
import { CHUNK_SIZE } from '../store/types.ts'
import { makeTempDir } from './helpers/node.ts'
import { MiB, deterministicBytes, deterministicPieces } from './helpers/streams.ts'

async function openStore (t: ExecutionContext, dir?: string): Promise<{ dir: string, db: DB, store: FileBlobStore }> {
  dir ??= await makeTempDir(t, 'akmesh-store-')
  const db = openDatabase(join(dir, 'akmesh.db'))
  t.teardown(() => { if (db.open) db.close() })
  return { dir, db, store: await FileBlobStore.open(dir, db) }
}

/** Yields `data` in pieces of `size` bytes, so pieces straddle chunk boundaries. */
async function * piecesOf (data: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < data.byteLength; i += size) yield data.subarray(i, i + size)
}

async function blake3Hex (data: Uint8Array): Promise<string> {
  const h = await createBLAKE3()
  h.update(data)
  return h.digest('hex')
}

const cidOf = (blake3: string) => CID.createV1(raw.code, createDigest(0x1e, Buffer.from(blake3, 'hex'))).toString()
const nodeHash = (algo: string, data: Uint8Array) => createHash(algo).update(data).digest('hex')

async function blobFiles (dir: string): Promise<string[]> {
  const out: string[] = []
  for (const sub of await readdir(join(dir, 'blobs'))) out.push(...await readdir(join(dir, 'blobs', sub)))
  return out.sort()
}

const rowCount = (db: DB, table: string) => (db.prepare(`SELECT COUNT(*) AS n FROM ${table}`).get() as { n: number }).n

test('the independent BLAKE3 agrees with the published test vector', async t => {
  // BLAKE3 of the empty input, from the BLAKE3 specification's test vectors.
  t.is(await blake3Hex(new Uint8Array()), 'af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262')
})

for (const size of [1, 1000, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE + 12345]) {
  test(`put of ${size} bytes: CID, digests and chunk table match independent implementations`, async t => {
    const { dir, store } = await openStore(t)
    const data = deterministicBytes(size, `put-${size}`)
    const info = await store.put(piecesOf(data, 100_003), { md5: true })

    const blake3 = await blake3Hex(data)
    t.is(info.cid, cidOf(blake3))
    t.true(info.cid.startsWith('bafkr4i'), 'CIDv1, raw codec, BLAKE3 multihash, base32')
    t.is(info.size, size)
    t.is(info.sha256, nodeHash('sha256', data))
    t.is(info.sha512, nodeHash('sha512', data))
    t.is(info.sha1, nodeHash('sha1', data))
    t.is(info.md5, nodeHash('md5', data))
    t.is(info.chunkSize, CHUNK_SIZE)

    const chunks = store.chunkHashes(info.cid)
    t.is(chunks.length, Math.ceil(size / CHUNK_SIZE))
    for (let i = 0; i < chunks.length; i++) {
      t.is(Buffer.from(chunks[i]).toString('hex'), await blake3Hex(data.subarray(i * CHUNK_SIZE, (i + 1) * CHUNK_SIZE)), `chunk ${i}`)
    }

    t.deepEqual(await readFile(store.pathOf(info.cid)), data)
    t.deepEqual(store.stat(info.cid), info)
    t.deepEqual(store.statBySha256(info.sha256.toUpperCase()), info)
    t.deepEqual(await listTempFiles(dir), [])
  })
}

test('md5 is computed only when asked for', async t => {
  const { store } = await openStore(t)
  const data = deterministicBytes(5000, 'no-md5')
  t.is((await store.put(piecesOf(data, 999))).md5, null)
  // Asking later fills it in for the same blob.
  t.is((await store.put(piecesOf(data, 999), { md5: true })).md5, nodeHash('md5', data))
})

test('identical bytes in two repositories are stored once: one file, one row', async t => {
  const { dir, db, store } = await openStore(t)
  const index = new ArtifactIndex(db)
  index.ensureRepository('one', 'generic')
  index.ensureRepository('two', 'generic')
  const data = deterministicBytes(2 * MiB + 7, 'dedup')
  const a = await store.put(piecesOf(data, 65536))
  index.publish({ repo: 'one', name: 'x.bin', version: '', files: [{ filename: 'x.bin', cid: a.cid }], metadata: {} })
  const b = await store.put(piecesOf(data, 12345))
  index.publish({ repo: 'two', name: 'y.bin', version: '', files: [{ filename: 'y.bin', cid: b.cid }], metadata: {} })

  t.is(a.cid, b.cid)
  t.deepEqual(await blobFiles(dir), [a.cid])
  t.is(rowCount(db, 'blobs'), 1)
  t.is(rowCount(db, 'chunks'), 3)
  t.is(index.get('one', 'x.bin', '')?.files[0].cid, a.cid)
  t.is(index.get('two', 'y.bin', '')?.files[0].cid, a.cid)
  t.deepEqual(await listTempFiles(dir), [])
})

test('a digest or size mismatch stores nothing and leaves no temp file', async t => {
  const { dir, db, store } = await openStore(t)
  const data = deterministicBytes(3 * MiB, 'mismatch')
  const wrong = nodeHash('sha256', Buffer.from('something else'))
  for (const expect of [
    { sha256: wrong },
    { sha1: nodeHash('sha1', Buffer.from('x')) },
    { md5: nodeHash('md5', Buffer.from('x')) },
    { sha512: nodeHash('sha512', Buffer.from('x')) },
    { sha256: nodeHash('sha256', data), size: data.byteLength + 1 },
    { size: data.byteLength - 1 }
  ]) {
    const err = await t.throwsAsync(store.put(piecesOf(data, 65536), { expect }))
    t.is((err as any)?.code, 'IntegrityError', JSON.stringify(expect))
  }
  t.deepEqual(await blobFiles(dir), [])
  t.is(rowCount(db, 'blobs'), 0)
  t.is(rowCount(db, 'chunks'), 0)
  t.deepEqual(await listTempFiles(dir), [])

  // The right digests (any case) are accepted.
  const ok = await store.put(piecesOf(data, 65536), { expect: { sha256: nodeHash('sha256', data).toUpperCase(), md5: nodeHash('md5', data), size: data.byteLength } })
  t.is(ok.size, data.byteLength)
})

test('more than maxBytes fails with TooLarge and stores nothing', async t => {
  const { dir, db, store } = await openStore(t)
  let produced = 0
  async function * endless (): AsyncGenerator<Buffer> {
    for (const piece of deterministicPieces(64 * MiB, 'too-large', 64 * 1024)) { produced += piece.byteLength; yield piece }
  }
  const err = await t.throwsAsync(store.put(endless(), { maxBytes: 2 * MiB }))
  t.is((err as any)?.code, 'TooLarge')
  t.true(produced <= 2 * MiB + 64 * 1024, `stopped reading at the limit (read ${produced})`)
  t.deepEqual(await blobFiles(dir), [])
  t.is(rowCount(db, 'blobs'), 0)
  t.deepEqual(await listTempFiles(dir), [])
})

test('an abort while the source is waiting for bytes ends the put and stores nothing', async t => {
  const { dir, db, store } = await openStore(t)
  const ac = new AbortController()
  const stalled = Promise.withResolvers<void>()
  const release = Promise.withResolvers<void>()
  t.teardown(() => { release.resolve() })
  async function * stalls (): AsyncGenerator<Buffer> {
    yield * deterministicPieces(3 * MiB, 'stall', 100_000)
    stalled.resolve()
    await release.promise // a peer that stops sending without closing
  }
  const put = store.put(stalls(), { signal: ac.signal })
  await stalled.promise
  t.is((await listTempFiles(dir)).length, 1, 'the upload is in a temp file while it runs')
  ac.abort(new Error('timed out'))
  await t.throwsAsync(put, { message: 'timed out' })
  t.deepEqual(await blobFiles(dir), [])
  t.is(rowCount(db, 'blobs'), 0)
  t.deepEqual(await listTempFiles(dir), [])
})

test('an abort mid-stream while bytes keep coming stores nothing', async t => {
  const { dir, db, store } = await openStore(t)
  const ac = new AbortController()
  let produced = 0
  async function * flowing (): AsyncGenerator<Buffer> {
    for (const piece of deterministicPieces(256 * MiB, 'flowing', 64 * 1024)) {
      produced += piece.byteLength
      if (produced === 4 * MiB) ac.abort()
      yield piece
    }
  }
  const err = await t.throwsAsync(store.put(flowing(), { signal: ac.signal }))
  t.is(err?.name, 'AbortError')
  t.true(produced < 8 * MiB, `stopped soon after the abort (read ${produced})`)
  t.deepEqual(await blobFiles(dir), [])
  t.is(rowCount(db, 'blobs'), 0)
  t.deepEqual(await listTempFiles(dir), [])
})

test('an already aborted signal stores nothing', async t => {
  const { dir, store } = await openStore(t)
  await t.throwsAsync(store.put(piecesOf(Buffer.from('abc'), 1), { signal: AbortSignal.abort() }))
  t.deepEqual(await listTempFiles(dir), [])
})

test('temp files left by a crash are swept when the store opens', async t => {
  const dir = await makeTempDir(t, 'akmesh-store-')
  const first = await openStore(t, dir)
  const kept = await first.store.put(piecesOf(Buffer.from('kept'), 2))
  first.db.close()
  await writeFile(join(dir, 'tmp', 'interrupted-upload'), deterministicBytes(MiB, 'partial'))
  await writeFile(join(dir, 'tmp', 'another'), 'x')

  const again = await openStore(t, dir)
  t.deepEqual(await listTempFiles(dir), [])
  t.deepEqual(await readFile(again.store.pathOf(kept.cid), 'utf8'), 'kept')
  t.true(again.store.has(kept.cid))
})

test('the store does not sweep temp files when asked not to (a CLI beside a running node)', async t => {
  const { dir, db } = await openStore(t)
  await writeFile(join(dir, 'tmp', 'in-flight'), 'x')
  await FileBlobStore.open(dir, db, { sweepTemp: false })
  t.deepEqual(await listTempFiles(dir), ['in-flight'])
})

test('migrations are idempotent: reopening keeps the schema version and the data', async t => {
  const dir = await makeTempDir(t, 'akmesh-store-')
  const schema = (db: DB) => db.prepare("SELECT type, name, sql FROM sqlite_master ORDER BY name").all()
  const first = await openStore(t, dir)
  const version = first.db.pragma('user_version', { simple: true }) as number
  t.true(version >= 1)
  const before = schema(first.db)
  const info = await first.store.put(piecesOf(Buffer.from('survives reopening'), 5))
  first.db.close()

  for (let i = 0; i < 2; i++) {
    const again = await openStore(t, dir)
    t.is(again.db.pragma('user_version', { simple: true }), version)
    t.deepEqual(schema(again.db), before)
    t.deepEqual(again.store.stat(info.cid), info)
    t.is(again.store.chunkHashes(info.cid).length, 1)
    again.db.close()
  }
})

test('a database from a newer akmesh is refused', async t => {
  const dir = await makeTempDir(t, 'akmesh-store-')
  const { db } = await openStore(t, dir)
  db.pragma('user_version = 999')
  db.close()
  t.throws(() => openDatabase(join(dir, 'akmesh.db')), { message: /newer than this akmesh/ })
})

test('verify finds a flipped byte and a deleted file, and a re-upload repairs the damage', async t => {
  const { dir, store } = await openStore(t)
  const a = deterministicBytes(2 * MiB + 100, 'verify-a')
  const b = deterministicBytes(1000, 'verify-b')
  const c = deterministicBytes(10, 'verify-c')
  const [ia, ib, ic] = [await store.put(piecesOf(a, 65536)), await store.put(piecesOf(b, 65536)), await store.put(piecesOf(c, 1))]

  const clean = await verifyStore(store)
  t.deepEqual(clean, { checked: 3, bytes: a.byteLength + b.byteLength + c.byteLength, problems: [], orphans: [], orphanBytes: 0 })

  const damaged = Buffer.from(a)
  damaged[MiB + 5] ^= 0x01
  await writeFile(store.pathOf(ia.cid), damaged)
  await rm(store.pathOf(ib.cid))
  const report = await verifyStore(store)
  t.is(report.checked, 3)
  t.deepEqual(report.problems.map(p => [p.cid, p.problem]).sort(), [[ia.cid, 'damaged'], [ib.cid, 'missing']].sort())
  t.false(report.problems.some(p => p.cid === ic.cid))

  // Uploading the same bytes again replaces the damaged or missing file.
  await store.put(piecesOf(a, 65536))
  await store.put(piecesOf(b, 65536))
  t.deepEqual((await verifyStore(store)).problems, [])
  t.is((await stat(store.pathOf(ia.cid))).size, a.byteLength)
  t.deepEqual(await listTempFiles(dir), [])
})

test('the WebAssembly BLAKE3 fallback gives the same CID and chunk table as the native one', async t => {
  const { MultiHasher, blake3Implementation } = await import('../store/hash.ts')
  t.is((await blake3Implementation()).implementation, 'native', 'this machine should load the native BLAKE3')
  const size = 3 * MiB + 5
  const hashWith = `
    const { MultiHasher, blake3Implementation } = await import(${JSON.stringify(new URL('../store/hash.ts', import.meta.url).href)})
    const { deterministicBytes } = await import(${JSON.stringify(new URL('./helpers/streams.ts', import.meta.url).href)})
    const h = await MultiHasher.create(); h.update(deterministicBytes(${size}, 'fallback')); const d = await h.digest()
    console.log(JSON.stringify({ impl: (await blake3Implementation()).implementation, cid: d.cid, chunks: d.chunks.map(c => Buffer.from(c).toString('hex')) }))`
  const { execFile } = await import('node:child_process')
  const script = join(await makeTempDir(t), 'hash-with-wasm.mjs')
  await writeFile(script, hashWith)
  const out = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, [script], { env: { ...process.env, AKMESH_BLAKE3: 'wasm' } },
      (err, stdout, stderr) => { if (err != null) reject(new Error(stderr)); else resolve(stdout) })
  })
  const wasm = JSON.parse(out)
  t.is(wasm.impl, 'wasm')
  const h = await MultiHasher.create()
  h.update(deterministicBytes(size, 'fallback'))
  const native = await h.digest()
  t.is(wasm.cid, native.cid)
  t.deepEqual(wasm.chunks, native.chunks.map(c => Buffer.from(c).toString('hex')))
  t.is(native.chunks.length, 4)
})
