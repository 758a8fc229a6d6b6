// A blob arriving chunk by chunk, in any order, from peers: each verified chunk is written at its
// offset in <dataDir>/partial/<cid> at once, so memory does not grow with the blob, readers (HTTP
// clients, and peers asking this node for chunks it already has) read verified chunks back from
// the file, and the blob's BLAKE3 is computed in order as the verified prefix grows. The SHA
// digests are not computed: the origin computed them from these bytes and signed them in the
// manifest, and every chunk is checked against the origin-signed chunk table and the whole
// against its BLAKE3 CID (mesh/README.md, "Verify once at the origin"). The file outlives a crash
// or restart: reopening re-verifies every chunk in it against the chunk table, so a torn write
// costs one chunk, never a wrong byte.
import { mkdir, open, rm, stat, type FileHandle } from 'node:fs/promises'
import { dirname } from 'node:path'
import { blake3Implementation, blake3Of, cidFromBlake3, type Blake3, type Digests } from './hash.ts'
import type { BlobDescription, FileBlobStore } from './blobs.ts'
import { integrityError, storageError } from './errors.ts'
import type { BlobInfo } from './types.ts'

const RECENT = 8

export class PartialBlob {
  readonly cid: string
  readonly size: number
  readonly chunkSize: number
  readonly total: number
  /** BLAKE3 of each chunk, already checked against the signed chunk root. */
  readonly table: Uint8Array[]
  readonly path: string
  /** Verified chunks, MSB-first bitfield (the wire format of the blob protocol's `have`). */
  readonly #bits: Uint8Array
  #verified = 0
  readonly #fh: FileHandle
  readonly #store: FileBlobStore
  readonly #desc: BlobDescription
  /** BLAKE3 of the verified prefix: the blob's CID once every chunk is in. */
  readonly #hasher: Blake3
  #hashed = 0 // chunks [0, hashed) fed to the hasher
  #hashing: Promise<void> = Promise.resolve()
  #closed = false
  #reads = 0
  readonly #writing = new Set<number>()
  /** The last chunks written, kept so readers that keep up (the hasher, a streaming client) do
   *  not read them back from the file. Bounded: RECENT chunks per blob. */
  readonly #recent = new Map<number, Uint8Array>()
  #idle: Array<() => void> = []

  private constructor (store: FileBlobStore, desc: BlobDescription, table: Uint8Array[], path: string, fh: FileHandle, hasher: Blake3) {
    this.#store = store
    this.#desc = desc
    this.cid = desc.cid
    this.size = desc.size
    this.chunkSize = desc.chunkSize
    this.total = table.length
    this.table = table
    this.path = path
    this.#fh = fh
    this.#hasher = hasher
    this.#bits = new Uint8Array(Math.ceil(this.total / 8))
  }

  /** Opens (or creates) the partial file of `desc` and keeps every chunk already in it that
   *  matches `table`. */
  static async open (store: FileBlobStore, desc: BlobDescription, table: Uint8Array[], signal?: AbortSignal): Promise<PartialBlob> {
    const path = store.partialPath(desc.cid)
    await mkdir(dirname(path), { recursive: true })
    const existing = await stat(path).then(s => s.size, () => 0)
    const fh = await open(path, existing > 0 ? 'r+' : 'w+')
    const hasher = await (await blake3Implementation()).create()
    const p = new PartialBlob(store, desc, table, path, fh, hasher)
    try {
      for (let i = 0; i < p.total && existing > 0; i++) {
        signal?.throwIfAborted()
        const length = p.lengthOf(i)
        if ((i * p.chunkSize) + length > existing) break
        const bytes = await p.#readRaw(i)
        if (Buffer.compare(Buffer.from(await blake3Of(bytes)), Buffer.from(table[i])) === 0) p.#mark(i)
      }
    } catch (err) {
      await p.close()
      throw err
    }
    p.#hashAhead()
    return p
  }

  /** Bytes in chunk `i` (the last one may be short). */
  lengthOf (i: number): number {
    return Math.min(this.chunkSize, this.size - i * this.chunkSize)
  }

  has (i: number): boolean { return ((this.#bits[i >> 3] ?? 0) & (0x80 >> (i & 7))) !== 0 }
  get verified (): number { return this.#verified }
  get complete (): boolean { return this.#verified === this.total }
  /** A copy of the bitfield of verified chunks. */
  bits (): Uint8Array { return this.#bits.slice() }

  /** Stores chunk `i`, which the caller verified against `table[i]`. False if it was already
   *  here or being written (two copies of one chunk raced). */
  async write (i: number, bytes: Uint8Array): Promise<boolean> {
    if (this.has(i) || this.#writing.has(i)) return false
    this.#writing.add(i)
    try {
      await this.#fh.write(bytes, 0, bytes.byteLength, i * this.chunkSize)
    } catch (err) {
      // Out of space: the chunk stays unmarked (a torn write is never served); the file is kept
      // for a resume once there is room.
      throw storageError(err)
    } finally {
      this.#writing.delete(i)
    }
    this.#recent.set(i, bytes)
    if (this.#recent.size > RECENT) this.#recent.delete(this.#recent.keys().next().value as number)
    this.#mark(i)
    this.#hashAhead()
    return true
  }

  /** A verified chunk's bytes (from the store once committed: readers may still be behind). */
  async read (i: number): Promise<Uint8Array> {
    if (!this.has(i)) throw new Error(`chunk ${i} of ${this.cid} is not here yet`)
    const recent = this.#recent.get(i)
    if (recent != null) return recent
    if (!this.#closed) return await this.#readRaw(i)
    // Closed by commit: the file is moving to (or already at) its place in the store.
    const fh = await open(this.#store.pathOf(this.cid), 'r').catch(async () => await open(this.path, 'r'))
      .catch(async () => await open(this.#store.pathOf(this.cid), 'r'))
    try { return await this.#readFrom(fh, i) } finally { await fh.close() }
  }

  async #readFrom (fh: FileHandle, i: number): Promise<Uint8Array> {
    const length = this.lengthOf(i)
    const bytes = Buffer.allocUnsafe(length)
    const { bytesRead } = await fh.read(bytes, 0, length, i * this.chunkSize)
    return bytesRead === length ? bytes : bytes.subarray(0, bytesRead)
  }

  async #readRaw (i: number): Promise<Uint8Array> {
    // Counted, so commit/close do not close the handle under a read in progress.
    this.#reads++
    try {
      return await this.#readFrom(this.#fh, i)
    } finally {
      if (--this.#reads === 0) { const w = this.#idle; this.#idle = []; for (const f of w) f() }
    }
  }

  async #closeHandle (): Promise<void> {
    this.#closed = true
    while (this.#reads > 0) await new Promise<void>(resolve => this.#idle.push(resolve))
    await this.#fh.close()
  }

  #mark (i: number): void {
    this.#bits[i >> 3] |= 0x80 >> (i & 7)
    this.#verified++
  }

  /** Feeds the hasher every verified chunk that extends the hashed prefix, in order. */
  #hashAhead (): void {
    this.#hashing = this.#hashing.then(async () => {
      while (!this.#closed && this.#hashed < this.total && this.has(this.#hashed)) {
        this.#hasher.update(this.#recent.get(this.#hashed) ?? await this.#readRaw(this.#hashed))
        this.#hashed++
      }
    })
  }

  /** Once every chunk is here: checks the whole against its BLAKE3 CID and moves the file into
   *  the store (the same commit as an upload), recording the SHA digests the origin signed. */
  async commit (): Promise<BlobInfo> {
    if (!this.complete) throw new Error(`blob ${this.cid}: ${this.total - this.#verified} chunks missing`)
    await this.#hashing
    if (this.#hashed !== this.total) throw new Error(`blob ${this.cid}: ${this.total - this.#hashed} chunks were not hashed`)
    const cid = cidFromBlake3(this.#hasher.digest())
    if (cid !== this.cid) throw integrityError(`blob ${this.cid}: its chunks match the signed chunk table, but the whole hashes to ${cid}`)
    const want = this.#desc
    const d: Digests = { cid, size: want.size, sha256: want.sha256, sha512: want.sha512, sha1: want.sha1, md5: want.md5, chunks: this.table }
    await this.#fh.sync()
    await this.#closeHandle()
    return await this.#store.commitTemp(this.path, d)
  }

  /** Closes the file and keeps it (a later fetch resumes from it). */
  async close (): Promise<void> {
    if (this.#closed) return
    await this.#closeHandle().catch(() => {})
    await this.#hashing.catch(() => {})
  }

  /** Closes and deletes the file. */
  async discard (): Promise<void> {
    await this.close()
    await rm(this.path, { force: true })
  }
}
