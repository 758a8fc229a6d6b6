// Content-addressed blob files. A put streams to a temp file while hashing, fsyncs, renames into
// place and only then records the row: a crash at any point leaves no partial blob visible.
import { constants, createReadStream, openSync } from 'node:fs'
import { mkdir, open, readdir, rename, rm } from 'node:fs/promises'
import { randomUUID } from 'node:crypto'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import type { DB } from './db.ts'
import { blake3Of, DEFAULT_DIGESTS, MultiHasher, parseBlobCid, STAGE_SIZE, type Digests } from './hash.ts'
import { DigestSession, sharedBuffer } from './digest-pool.ts'
import { integrityError, notFound, storageError, tooLarge } from './errors.ts'
import { CHUNK_SIZE, type BlobInfo, type BlobStore, type ByteRange, type DigestName, type OptionalDigest, type PutOptions, type RemoteBlobs } from './types.ts'

const WRITE_BATCH = 1024 * 1024 // gather socket-sized pieces into fewer, larger writes

export interface BlobRow {
  cid: string, size: number, sha256: string, sha512: string, sha1: string, md5: string | null
  chunk_size: number, created_at: number, present: number, chunk_root: string | null
}

/** What the index knows about a blob, whether or not its bytes are here: a blob named by a remote
 *  manifest is described (so files can name it) before the mesh fetches it. */
export interface BlobDescription extends Omit<BlobInfo, 'createdAt'> {
  /** BLAKE3 (hex) of the concatenated chunk hashes; null until computed for a local blob. */
  chunkRoot: string | null
  present: boolean
}

export const toInfo = (r: BlobRow): BlobInfo => ({
  cid: r.cid, size: r.size, sha256: r.sha256, sha512: r.sha512, sha1: r.sha1, md5: r.md5,
  chunkSize: r.chunk_size, createdAt: r.created_at
})

export class FileBlobStore implements BlobStore {
  readonly #blobDir: string
  readonly #tmpDir: string
  readonly #partialDir: string
  readonly #db: DB
  readonly #stmts
  /** Fetches known-but-absent blobs; unset in a store without a mesh (the CLI). */
  remote?: RemoteBlobs
  /** When each present blob was last looked up to be read (store/gc.ts spares recent ones: a peer
   *  or client may be reading it chunk by chunk). In memory: only this process serves. */
  readonly #lastRead = new Map<string, number>()
  #lastPrune = 0
  /** Per CID, the tail of a chain of critical sections (commit and gc of the same CID). */
  readonly #locks = new Map<string, Promise<unknown>>()

  private constructor (dataDir: string, db: DB) {
    this.#blobDir = join(dataDir, 'blobs')
    this.#tmpDir = join(dataDir, 'tmp')
    // Not swept with tmp: a fetch interrupted by a restart resumes from it (store/partial.ts).
    this.#partialDir = join(dataDir, 'partial')
    this.#db = db
    this.#stmts = {
      get: db.prepare<[string], BlobRow>('SELECT * FROM blobs WHERE cid = ? AND present = 1'),
      describe: db.prepare<[string], BlobRow>('SELECT * FROM blobs WHERE cid = ?'),
      bySha256: db.prepare<[string], BlobRow>('SELECT * FROM blobs WHERE sha256 = ? AND present = 1 LIMIT 1'),
      knownBySha256: db.prepare<[string], { cid: string }>('SELECT cid FROM blobs WHERE sha256 = ? ORDER BY present DESC LIMIT 1'),
      // Bytes arriving for a blob known only from a manifest: the row now describes what was
      // hashed here, and the chunk root is recomputed from the real chunk table.
      insert: db.prepare(`INSERT INTO blobs (cid, size, sha256, sha512, sha1, md5, chunk_size, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (cid) DO UPDATE SET size = excluded.size, sha256 = excluded.sha256, sha512 = excluded.sha512, sha1 = excluded.sha1,
        md5 = excluded.md5, chunk_size = excluded.chunk_size, created_at = excluded.created_at, present = 1, chunk_root = NULL
        WHERE present = 0`),
      insertRemote: db.prepare(`INSERT OR IGNORE INTO blobs (cid, size, sha256, sha512, sha1, md5, chunk_size, created_at, present, chunk_root)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?)`),
      setChunkRoot: db.prepare('UPDATE blobs SET chunk_root = ? WHERE cid = ?'),
      setMd5: db.prepare('UPDATE blobs SET md5 = ? WHERE cid = ? AND md5 IS NULL'),
      // Digests a blob was stored without ('') are filled in when computed later or when the same
      // bytes arrive again through a format that computes them.
      fillDigests: db.prepare(`UPDATE blobs SET sha512 = CASE WHEN sha512 = '' THEN ? ELSE sha512 END,
        sha1 = CASE WHEN sha1 = '' THEN ? ELSE sha1 END WHERE cid = ?`),
      insertChunk: db.prepare('INSERT OR IGNORE INTO chunks (cid, idx, hash) VALUES (?, ?, ?)'),
      chunks: db.prepare<[string], { hash: Buffer }>('SELECT hash FROM chunks WHERE cid = ? ORDER BY idx')
    }
  }

  /** Opens the store and sweeps temp files left by uploads a crash interrupted. Only the process
   *  that serves uploads may sweep: another one (the CLI while the node runs) would delete the
   *  temp files of uploads in flight, so it passes `sweepTemp: false`. */
  static async open (dataDir: string, db: DB, opts: { sweepTemp?: boolean } = {}): Promise<FileBlobStore> {
    const store = new FileBlobStore(dataDir, db)
    await mkdir(store.#blobDir, { recursive: true })
    if (opts.sweepTemp !== false) await rm(store.#tmpDir, { recursive: true, force: true })
    await mkdir(store.#tmpDir, { recursive: true })
    return store
  }

  pathOf (cid: string): string {
    return join(this.#blobDir, cid.slice(-2), cid)
  }

  /** Where blob files live (`<data>/blobs/<last two characters>/<cid>`). */
  get blobDir (): string { return this.#blobDir }
  /** The temp folder (same file system as blobDir; swept when the node starts). */
  get tempDir (): string { return this.#tmpDir }

  /** Runs `fn` while no other `withBlobLock` of the same CID in this process runs: a commit of
   *  bytes and the garbage collector's delete of the same blob never interleave. */
  async withBlobLock<T> (cid: string, fn: () => Promise<T>): Promise<T> {
    const before = this.#locks.get(cid) ?? Promise.resolve()
    const run = before.catch(() => {}).then(fn)
    const tail = run.catch(() => {})
    this.#locks.set(cid, tail)
    try { return await run } finally { if (this.#locks.get(cid) === tail) this.#locks.delete(cid) }
  }

  /** When `cid` was last looked up to be read in this process (0: not since start). */
  lastRead (cid: string): number {
    return this.#lastRead.get(cid) ?? 0
  }

  /** Forgets reads older than `before` (the collector calls it; the map stays bounded). */
  forgetReadsBefore (before: number): void {
    for (const [cid, at] of this.#lastRead) if (at < before) this.#lastRead.delete(cid)
  }

  #present (cid: string): BlobRow | undefined {
    const row = this.#stmts.get.get(cid)
    if (row != null) {
      const now = Date.now()
      this.#lastRead.set(cid, now)
      // Without a collector running, drop day-old reads now and then so the map stays small.
      if (this.#lastRead.size > 100_000 && now - this.#lastPrune > 60_000) { this.#lastPrune = now; this.forgetReadsBefore(now - 86_400_000) }
    }
    return row
  }

  async put (source: AsyncIterable<Uint8Array> | Readable, opts: PutOptions = {}): Promise<BlobInfo> {
    const { expect = {}, maxBytes = Infinity, signal } = opts
    signal?.throwIfAborted()
    const tmp = join(this.#tmpDir, randomUUID())
    const file = await open(tmp, 'wx').catch(async (err) => { await rm(tmp, { force: true }); throw storageError(err) })
    // The format's digests, plus any the client declared (they are checked).
    const digests = new Set<OptionalDigest>(opts.digests ?? DEFAULT_DIGESTS)
    for (const name of ['sha512', 'sha1'] as const) if (expect[name] != null) digests.add(name)
    const hasher = await MultiHasher.create({ md5: opts.md5 === true || expect.md5 != null, digests: [...digests] })
    let closed = false
    try {
      let batch: Uint8Array[] = []
      let batchBytes = 0
      for await (const piece of abortable(source as AsyncIterable<Uint8Array>, signal)) {
        if (hasher.size + piece.byteLength > maxBytes) throw tooLarge(`body exceeds the limit of ${maxBytes} bytes`)
        if (expect.size != null && hasher.size + piece.byteLength > expect.size) {
          throw integrityError(`more bytes than the declared size ${expect.size}`)
        }
        hasher.update(piece)
        batch.push(piece)
        batchBytes += piece.byteLength
        if (batchBytes >= WRITE_BATCH) {
          await Promise.all([file.writev(batch), hasher.settle()])
          batch = []
          batchBytes = 0
        }
      }
      if (batch.length > 0) await file.writev(batch)
      signal?.throwIfAborted()
      await file.sync()
      await file.close()
      closed = true

      const d = await hasher.digest()
      checkExpected(d, expect)
      return await this.commitTemp(tmp, d)
    } catch (err) {
      hasher.abandon()
      if (!closed) await file.close().catch(() => {})
      await rm(tmp, { force: true })
      throw storageError(err)
    }
  }

  /** Where the chunks of a blob being fetched from peers accumulate (store/partial.ts). */
  partialPath (cid: string): string {
    return join(this.#partialDir, cid)
  }

  /** CIDs with a partial file (fetches a restart interrupted). */
  async partials (): Promise<string[]> {
    try { return (await readdir(this.#partialDir)).filter(n => parseBlobCid(n) != null) } catch { return [] }
  }

  /** Keeps a chunk table verified against its signed root, so a resumed fetch need not ask again. */
  recordChunkTable (cid: string, table: Uint8Array[]): void {
    this.#db.transaction(() => { table.forEach((h, i) => this.#stmts.insertChunk.run(cid, i, h)) })()
  }

  /** A fresh path in the store's temp directory (swept when the node starts). */
  tempPath (): string {
    return join(this.#tmpDir, randomUUID())
  }

  /** Moves a complete, fsynced temp file whose digests are `d` into place and records its row:
   *  the last step of `put`, shared with uploads that span several requests (store/uploads.ts). */
  async commitTemp (tmp: string, d: Digests): Promise<BlobInfo> {
    // Identical bytes are stored once. Renaming over an existing file (atomic) rather than
    // keeping it means uploading the same bytes again repairs a file `verify` found damaged.
    return await this.withBlobLock(d.cid, async () => {
      const dir = join(this.#blobDir, d.cid.slice(-2))
      try {
        await mkdir(dir, { recursive: true })
        await rename(tmp, this.pathOf(d.cid))
        await fsyncDir(dir)
      } catch (err) { throw storageError(err) } // the caller removes `tmp`
      const now = Date.now()
      try {
        this.#db.transaction(() => {
          this.#stmts.insert.run(d.cid, d.size, d.sha256, d.sha512, d.sha1, d.md5, CHUNK_SIZE, now)
          if (d.md5 != null) this.#stmts.setMd5.run(d.md5, d.cid)
          if (d.sha512 !== '' || d.sha1 !== '') this.#stmts.fillDigests.run(d.sha512, d.sha1, d.cid)
          d.chunks.forEach((h, i) => this.#stmts.insertChunk.run(d.cid, i, h))
        })()
      } catch (err) {
        // No row (SQLITE_FULL): the file just moved in must not linger unindexed, unless another
        // put of the same bytes has recorded it meanwhile.
        if (!this.has(d.cid)) await rm(this.pathOf(d.cid), { force: true })
        throw storageError(err)
      }
      return this.stat(d.cid) as BlobInfo
    })
  }

  stat (cid: string): BlobInfo | undefined {
    const row = this.#present(cid)
    return row == null ? undefined : toInfo(row)
  }

  statBySha256 (sha256: string): BlobInfo | undefined {
    const row = this.#stmts.bySha256.get(sha256.toLowerCase())
    return row == null ? undefined : toInfo(row)
  }

  cidBySha256 (sha256: string): string | undefined {
    return this.#stmts.knownBySha256.get(sha256.toLowerCase())?.cid
  }

  has (cid: string): boolean {
    return this.#present(cid) != null
  }

  async locate (cid: string): Promise<BlobInfo | undefined> {
    const row = this.#stmts.describe.get(cid)
    if (row == null) return undefined
    if (row.present === 1) return toInfo(row)
    if (this.remote == null) return undefined
    await this.remote.ready(cid)
    return toInfo(row)
  }

  /** A present blob from disk; an absent one known here streams from `remote` as it arrives. */
  open (cid: string, range?: ByteRange): Readable {
    if (!this.has(cid)) {
      if (this.remote == null || this.#stmts.describe.get(cid) == null) throw notFound(`blob ${cid} not found`)
      return this.remote.open(cid, range)
    }
    return createReadStream(this.pathOf(cid), {
      start: range?.start, end: range?.end, highWaterMark: 1024 * 1024
    })
  }

  openFd (cid: string): number | undefined {
    if (!this.has(cid)) return undefined
    try { return openSync(this.pathOf(cid), constants.O_RDONLY) } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined // collected meanwhile
      throw storageError(err)
    }
  }

  chunkHashes (cid: string): Uint8Array[] {
    return this.#stmts.chunks.all(cid).map(r => new Uint8Array(r.hash))
  }

  /** Every blob the index knows, present or not (stat/has/open answer only for present ones). */
  describe (cid: string): BlobDescription | undefined {
    const r = this.#stmts.describe.get(cid)
    if (r == null) return undefined
    const { createdAt, ...info } = toInfo(r)
    return { ...info, chunkRoot: r.chunk_root, present: r.present === 1 }
  }

  /** Records a blob named by a remote manifest, without its bytes (no-op if already known). */
  recordRemote (d: Omit<BlobDescription, 'present'> & { chunkRoot: string }): void {
    this.#stmts.insertRemote.run(d.cid, d.size, d.sha256, d.sha512, d.sha1, d.md5, d.chunkSize, Date.now(), d.chunkRoot)
  }

  /** BLAKE3 (hex) of the concatenated chunk hashes: what a manifest signs for the chunk table. */
  async chunkRoot (cid: string): Promise<string> {
    const d = this.describe(cid)
    if (d == null) throw notFound(`blob ${cid} not found`)
    if (d.chunkRoot != null) return d.chunkRoot
    const root = Buffer.from(await blake3Of(Buffer.concat(this.chunkHashes(cid)))).toString('hex')
    this.#stmts.setChunkRoot.run(root, cid)
    return root
  }

  /** The blob with `names` computed: a blob a format stored without them (sha512 of a generic
   *  upload, when npm or a signed manifest needs it) is read once more, hashed, and the digests
   *  recorded, so each is computed at most once. Only for present blobs (others come with a
   *  manifest naming every digest). */
  async completeDigests (cid: string, names: readonly OptionalDigest[] = DEFAULT_DIGESTS): Promise<BlobInfo> {
    const info = this.stat(cid)
    if (info == null) throw notFound(`blob ${cid} not found`)
    const missing = names.filter(n => info[n] == null || info[n] === '')
    if (missing.length === 0) return info
    const session = new DigestSession(missing)
    // Reads straight into the workers' shared staging buffers: no copy, and no fresh buffer per
    // read for the garbage collector to reclaim late (RSS would grow while a big blob is hashed).
    const file = await open(this.pathOf(cid), 'r').catch((err) => { session.abandon(); throw storageError(err) })
    try {
      for (let pos = 0; pos < info.size;) {
        const stage = sharedBuffer(STAGE_SIZE)
        const { bytesRead } = await file.read(stage, 0, Math.min(STAGE_SIZE, info.size - pos), pos)
        if (bytesRead === 0) throw new Error(`blob file ${cid} is shorter than its ${info.size} bytes`)
        pos += bytesRead
        session.update(stage.subarray(0, bytesRead))
        await session.settle()
      }
    } catch (err) { session.abandon(); throw storageError(err) } finally { await file.close().catch(() => {}) }
    const hex = await session.digest()
    this.#db.transaction(() => {
      this.#stmts.fillDigests.run(hex.sha512 ?? '', hex.sha1 ?? '', cid)
      if (hex.md5 != null) this.#stmts.setMd5.run(hex.md5, cid)
    })()
    return this.stat(cid) as BlobInfo
  }

  allBlobs (): BlobInfo[] {
    return this.#db.prepare<[], BlobRow>('SELECT * FROM blobs WHERE present = 1 ORDER BY cid').all().map(toInfo)
  }
}

/** Throws IntegrityError unless the digests and size match what the client declared. */
export function checkExpected (d: Digests, expect: NonNullable<PutOptions['expect']>): void {
  if (expect.size != null && d.size !== expect.size) {
    throw integrityError(`size mismatch: declared ${expect.size} bytes, received ${d.size}`)
  }
  for (const name of ['sha256', 'sha512', 'sha1', 'md5'] as DigestName[]) {
    const want = expect[name]
    if (want != null && want.toLowerCase() !== d[name]) {
      throw integrityError(`${name} mismatch: expected ${want.toLowerCase()}, computed ${d[name]}`)
    }
  }
}

/** Iterates `source`, but rejects as soon as `signal` aborts, even while the source is waiting
 *  for bytes that may never come (a stalled peer); then releases the source (destroys a stream). */
export async function * abortable<T> (source: AsyncIterable<T>, signal?: AbortSignal): AsyncGenerator<T> {
  if (signal == null) { yield * source; return }
  signal.throwIfAborted()
  const it = source[Symbol.asyncIterator]()
  try {
    for (;;) {
      // A listener per piece, removed once the piece arrives. (Promise.race against one
      // long-lived abort promise would leave a reaction holding every piece: 2 GiB of RSS for
      // a 2 GiB upload, measured by test/large.test.ts.)
      const r = await new Promise<IteratorResult<T>>((resolve, reject) => {
        const onAbort = () => { reject(signal.reason) }
        signal.addEventListener('abort', onAbort, { once: true })
        it.next().then(
          (v) => { signal.removeEventListener('abort', onAbort); resolve(v) },
          (e) => { signal.removeEventListener('abort', onAbort); reject(e) })
      })
      if (r.done === true) return
      yield r.value
      signal.throwIfAborted()
    }
  } finally {
    void Promise.resolve(it.return?.()).catch(() => {})
  }
}

async function fsyncDir (dir: string): Promise<void> {
  const fh = await open(dir, 'r')
  try { await fh.sync() } finally { await fh.close() }
}

export async function listTempFiles (dataDir: string): Promise<string[]> {
  try { return await readdir(join(dataDir, 'tmp')) } catch { return [] }
}
