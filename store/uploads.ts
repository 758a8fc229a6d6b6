// Uploads that span several requests (OCI's POST, PATCH..., PUT): each request appends to a temp
// file while the session's MultiHasher keeps running digests in memory, so finishing costs no
// re-read and ends in the same commit step as `FileBlobStore.put`.
//
// Sessions live in memory only. A restart loses them (clients then start the upload again, which
// the OCI spec allows) and the store's start-up sweep removes their temp files; sessions left
// idle are abandoned on a timer, so temp files never outlive their session.
import { createReadStream } from 'node:fs'
import { open, rm, truncate } from 'node:fs/promises'
import { randomUUID } from 'node:crypto'
import type { Readable } from 'node:stream'
import { abortable, checkExpected, type FileBlobStore } from './blobs.ts'
import { conflict, notFound, RegistryError, storageError, tooLarge } from './errors.ts'
import { MultiHasher } from './hash.ts'
import type { OptionalDigest } from './types.ts'
import type { BlobInfo, PutOptions } from './types.ts'

const WRITE_BATCH = 1024 * 1024

export interface UploadStatus {
  id: string
  /** Opaque to the store: whom the session belongs to (e.g. "docker/library/alpine"). */
  owner: string
  /** Bytes received so far. */
  size: number
  createdAt: number
  updatedAt: number
}

interface Session extends UploadStatus {
  tmp: string
  digests: readonly OptionalDigest[] | undefined
  hasher: MultiHasher
  busy: boolean
}

export interface UploadSessionsOptions {
  /** A session untouched this long is abandoned. */
  idleMs?: number
  /** Open sessions at most; each holds a staging buffer (1 MiB) and hash state. */
  maxSessions?: number
}

export class UploadSessions {
  readonly #store: FileBlobStore
  readonly #sessions = new Map<string, Session>()
  readonly #idleMs: number
  readonly #maxSessions: number
  readonly #timer: NodeJS.Timeout

  constructor (store: FileBlobStore, opts: UploadSessionsOptions = {}) {
    this.#store = store
    this.#idleMs = opts.idleMs ?? 60 * 60_000
    this.#maxSessions = opts.maxSessions ?? 256
    this.#timer = setInterval(() => { void this.abandonIdle() }, Math.min(this.#idleMs, 60_000))
    this.#timer.unref()
  }

  get count (): number { return this.#sessions.size }

  /** `digests`: the optional digests the format stores (PutOptions.digests). */
  async begin (owner: string, opts: { digests?: readonly OptionalDigest[] } = {}): Promise<UploadStatus> {
    if (this.#sessions.size >= this.#maxSessions) {
      throw new RegistryError('TooManyRequests', `${this.#sessions.size} uploads are in progress; retry later`, { 'Retry-After': '10' })
    }
    const tmp = this.#store.tempPath()
    try {
      await (await open(tmp, 'wx')).close()
    } catch (err) {
      await rm(tmp, { force: true })
      throw storageError(err)
    }
    const now = Date.now()
    const s: Session = { id: randomUUID(), owner, size: 0, createdAt: now, updatedAt: now, tmp, digests: opts.digests, hasher: await MultiHasher.create({ digests: opts.digests }), busy: false }
    this.#sessions.set(s.id, s)
    return view(s)
  }

  status (id: string): UploadStatus | undefined {
    const s = this.#sessions.get(id)
    return s == null ? undefined : view(s)
  }

  /** Appends a stream. If the stream fails midway (client gone), the bytes received before the
   *  failure stay in the session, so a client can ask for the status and resume. An append the
   *  store refuses (over `maxBytes`) leaves the session as it was before it. */
  async append (id: string, source: AsyncIterable<Uint8Array> | Readable, opts: { maxBytes?: number, signal?: AbortSignal } = {}): Promise<UploadStatus> {
    const { maxBytes = Infinity, signal } = opts
    const s = this.#claim(id)
    const before = s.hasher.size
    // An I/O or hashing failure leaves hashed bytes that may not have reached the file: the
    // session cannot be trusted after that and is discarded.
    let broken = false
    let batch: Uint8Array[] = []
    let batchBytes = 0
    const flush = async (): Promise<void> => {
      const pieces = batch
      batch = []
      batchBytes = 0
      try { await file.writev(pieces) } catch (err) { broken = true; throw err }
    }
    const file = await open(s.tmp, 'a').catch(async (err) => { s.busy = false; await this.#discard(s); throw storageError(err) })
    try {
      try {
        for await (const piece of abortable(source as AsyncIterable<Uint8Array>, signal)) {
          if (s.hasher.size + piece.byteLength > maxBytes) throw tooLarge(`upload exceeds the limit of ${maxBytes} bytes`)
          s.hasher.update(piece)
          batch.push(piece)
          batchBytes += piece.byteLength
          if (batchBytes >= WRITE_BATCH) {
            await Promise.all([flush(), s.hasher.settle().catch((err) => { broken = true; throw err })])
          }
        }
      } finally {
        if (!broken && batch.length > 0) await flush()
      }
    } catch (err) {
      await file.close().catch(() => {})
      // Out of space is `broken` too (a write failed): the session and its temp file are gone. A
      // refusal for size rewinds to where this append started.
      if (broken) await this.#discard(s)
      else if (err instanceof RegistryError && err.code === 'TooLarge') await this.#rewind(s, before).catch(async () => { await this.#discard(s) })
      throw storageError(err)
    } finally {
      await file.close().catch(() => {})
      s.size = s.hasher.size
      s.updatedAt = Date.now()
      s.busy = false
    }
    return view(s)
  }

  /** Cuts the session back to its first `size` bytes: the format refused what a request appended
   *  (a chunk that contradicts its Content-Range), so none of it may stay. */
  async rewind (id: string, size: number): Promise<UploadStatus> {
    const s = this.#claim(id)
    try {
      if (size > s.hasher.size) throw conflict(`upload ${id} has ${s.hasher.size} bytes, cannot rewind to ${size}`)
      await this.#rewind(s, size).catch(async (err) => { await this.#discard(s); throw err })
    } finally {
      s.size = s.hasher.size
      s.busy = false
    }
    return view(s)
  }

  /** Truncates the temp file and rebuilds the running digests from what is left: the digests
   *  cannot be rolled back, and a refusal is rare enough to pay for a re-read. */
  async #rewind (s: Session, size: number): Promise<void> {
    if (size === s.hasher.size) return
    await truncate(s.tmp, size)
    const hasher = await MultiHasher.create({ digests: s.digests })
    if (size > 0) {
      let unsettled = 0
      for await (const piece of createReadStream(s.tmp, { start: 0, end: size - 1, highWaterMark: WRITE_BATCH })) {
        hasher.update(piece as Buffer)
        unsettled += (piece as Buffer).byteLength
        if (unsettled >= 8 * WRITE_BATCH) { await hasher.settle(); unsettled = 0 }
      }
    }
    s.hasher.abandon()
    s.hasher = hasher
  }

  /** Ends the session: verifies the declared digests and size, then stores the blob. The
   *  session is gone afterwards whatever the outcome (a mismatch means starting again). */
  async commit (id: string, expect: NonNullable<PutOptions['expect']> = {}): Promise<BlobInfo> {
    const s = this.#claim(id)
    this.#sessions.delete(id)
    try {
      const d = await s.hasher.digest()
      checkExpected(d, expect)
      const fh = await open(s.tmp, 'r+')
      try { await fh.sync() } finally { await fh.close() }
      return await this.#store.commitTemp(s.tmp, d)
    } catch (err) {
      s.hasher.abandon()
      await rm(s.tmp, { force: true })
      throw storageError(err)
    }
  }

  /** False if there was no such session. */
  async cancel (id: string): Promise<boolean> {
    const s = this.#sessions.get(id)
    if (s == null) return false
    if (s.busy) throw conflict(`upload ${id} is receiving data`)
    await this.#discard(s)
    return true
  }

  /** Abandons sessions idle since before `now - idleMs`; returns their ids. */
  async abandonIdle (now = Date.now()): Promise<string[]> {
    const idle = [...this.#sessions.values()].filter(s => !s.busy && now - s.updatedAt > this.#idleMs)
    for (const s of idle) await this.#discard(s)
    return idle.map(s => s.id)
  }

  /** Stops the timer and discards every session (node shutdown, tests). */
  async close (): Promise<void> {
    clearInterval(this.#timer)
    for (const s of [...this.#sessions.values()]) await this.#discard(s)
  }

  #claim (id: string): Session {
    const s = this.#sessions.get(id)
    if (s == null) throw notFound(`upload ${id} not found (finished, cancelled or expired)`)
    if (s.busy) throw conflict(`upload ${id} is already receiving data in another request`)
    s.busy = true
    return s
  }

  async #discard (s: Session): Promise<void> {
    this.#sessions.delete(s.id)
    s.hasher.abandon()
    await rm(s.tmp, { force: true })
  }
}

const view = (s: Session): UploadStatus => ({ id: s.id, owner: s.owner, size: s.size, createdAt: s.createdAt, updatedAt: s.updatedAt })
