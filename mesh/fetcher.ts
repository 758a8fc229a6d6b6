// Fetching a blob known from a manifest (present = 0) from peers, verified chunk by chunk against
// the signed chunk root, written through the normal `store.put` path and streamed to any HTTP
// client that asks while it arrives. One transfer per CID however many clients ask (coalescing).
import { Readable } from 'node:stream'
import { CID } from 'multiformats/cid'
import type { PeerId } from '@libp2p/interface'
import type { Logger } from 'pino'
import type { FileBlobStore } from '../store/blobs.ts'
import { RegistryError } from '../store/errors.ts'
import { blake3Of } from '../store/hash.ts'
import type { BlobInfo, RemoteBlobs } from '../store/types.ts'
import type { MeshLibp2p } from './libp2p.ts'
import { BlobClient, hasBit } from './transfer.ts'

/** Chunks requested at once per transfer (across its sources). */
const IN_FLIGHT = 6
/** Verified chunks held ahead of the slowest consumer (memory bound: WINDOW × chunk size). */
const WINDOW = 16
/** Blobs fetched at once in the background for mirrored repositories. */
const MIRROR_CONCURRENCY = 2
/** Per-request deadline: a floor for latency plus time for the chunk at a pessimistic 1 MiB/s. */
const requestTimeout = (bytes: number): number => 10_000 + Math.ceil(bytes / (1024 * 1024)) * 1000

export interface BlobFetcherInit { libp2p: MeshLibp2p, store: FileBlobStore, mesh: string, log: Logger }

export const unavailable = (m: string): RegistryError => new RegistryError('Unavailable', m, { 'Retry-After': '30' })

interface Consumer { pos: number }

/** One blob being fetched: verified chunks in order, fanned out to `store.put` and readers. */
class Transfer {
  readonly chunks = new Map<number, Uint8Array>()
  readonly consumers = new Set<Consumer>()
  contiguous = 0 // chunks [0, contiguous) are verified
  total = Infinity
  failed: unknown
  finished = false
  #wake: Array<() => void> = []

  changed (): void { const w = this.#wake; this.#wake = []; for (const f of w) f() }
  async waitChange (): Promise<void> { await new Promise<void>(resolve => this.#wake.push(resolve)) }

  /** Lowest chunk index some consumer still needs. */
  low (): number {
    let m = this.contiguous
    for (const c of this.consumers) m = Math.min(m, c.pos)
    return m
  }

  /** Frees chunks every consumer has passed, but keeps the last WINDOW verified ones: a client
   *  joins (from chunk 0) after `ready`, by which time `put` may have consumed chunk 0 already. */
  drop (): void {
    const keepFrom = Math.min(this.low(), this.contiguous - WINDOW)
    for (const i of this.chunks.keys()) if (i < keepFrom) this.chunks.delete(i)
  }

  /** Registers a reader from chunk 0, or returns undefined if chunk 0 was already dropped (the
   *  reader then waits for the commit and reads the stored blob). Synchronous, so a reader that
   *  joins before the first chunk arrives never misses it. */
  join (): Consumer | undefined {
    if (this.contiguous > 0 && !this.chunks.has(0)) return undefined
    const me: Consumer = { pos: 0 }
    this.consumers.add(me)
    return me
  }

  leave (me: Consumer): void {
    if (!this.consumers.delete(me)) return
    this.drop()
    this.changed()
  }

  async * read (me: Consumer): AsyncGenerator<Uint8Array> {
    try {
      while (me.pos < this.total) {
        if (this.failed != null) throw this.failed
        const c = me.pos < this.contiguous ? this.chunks.get(me.pos) : undefined
        if (c == null) { await this.waitChange(); continue }
        me.pos++
        this.drop()
        this.changed()
        yield c
      }
    } finally {
      this.leave(me)
    }
  }
}

export class BlobFetcher implements RemoteBlobs {
  readonly #libp2p: MeshLibp2p
  readonly #store: FileBlobStore
  readonly #client: BlobClient
  readonly #log: Logger
  readonly #transfers = new Map<string, { transfer: Transfer, ready: Promise<void>, done: Promise<BlobInfo> }>()
  /** How many transfers were started (tests observe coalescing through it). */
  started = 0

  constructor (init: BlobFetcherInit) {
    this.#libp2p = init.libp2p
    this.#store = init.store
    this.#client = new BlobClient(init.libp2p, init.mesh)
    this.#log = init.log.child({ component: 'mesh:fetch' })
  }

  /** Starts (or joins) the fetch of `cid`; resolves once the first chunk is verified (rejects
   *  Unavailable if no source serves it), so a client gets a 503 before any header. */
  async ready (cid: string): Promise<void> {
    await this.#start(cid).ready
  }

  /** Fetches `cid` to the store (coalesced), resolving when it is committed. */
  async fetch (cid: string): Promise<BlobInfo> {
    return await this.#start(cid).done
  }

  /** The blob's bytes as they arrive (or from the store once committed). Call `ready` first to
   *  learn, before sending headers, whether a source exists. */
  open (cid: string): Readable {
    if (this.#store.has(cid)) return this.#store.open(cid)
    const t = this.#start(cid)
    const me = t.transfer.join()
    const store = this.#store
    const body = Readable.from((async function * () {
      await t.ready
      if (me != null) {
        yield * t.transfer.read(me)
      } else {
        await t.done
        yield * store.open(cid)
      }
    })(), { objectMode: false })
    // A body destroyed before it was read (client gone) must not hold the transfer's window.
    body.once('close', () => { if (me != null) t.transfer.leave(me) })
    return body
  }

  #start (cid: string): { transfer: Transfer, ready: Promise<void>, done: Promise<BlobInfo> } {
    const existing = this.#transfers.get(cid)
    if (existing != null) return existing
    this.started++
    this.#log.info({ cid }, 'fetching blob from the mesh')
    const transfer = new Transfer()
    let setReady!: () => void
    const ready = new Promise<void>((resolve) => { setReady = resolve })
    const done = this.#run(cid, transfer, setReady)
    const entry = { transfer, ready: Promise.race([ready, done.then(() => {})]), done }
    entry.ready.catch(() => {})
    done.catch(() => {}).finally(() => { this.#transfers.delete(cid) })
    this.#transfers.set(cid, entry)
    return entry
  }

  /** Connected peers that say they hold the blob (fast path), then DHT providers. */
  async #sources (cid: string, chunks: number): Promise<PeerId[]> {
    const self = this.#libp2p.peerId.toString()
    const asked = new Set<string>([self])
    const holders: PeerId[] = []
    const askAll = async (peers: PeerId[]): Promise<void> => {
      await Promise.all(peers.filter(p => !asked.has(p.toString())).map(async p => {
        asked.add(p.toString())
        try {
          const bits = await this.#client.have(p, cid, AbortSignal.timeout(10_000))
          if (bits != null && Array.from({ length: chunks }, (_, i) => i).every(i => hasBit(bits, i))) holders.push(p)
        } catch (err: any) {
          this.#log.debug({ peer: p.toString(), cid, error: err?.message }, 'have failed')
        }
      }))
    }
    await askAll(this.#libp2p.getPeers())
    if (holders.length > 0) return holders
    try {
      const found: PeerId[] = []
      for await (const ev of this.#libp2p.services.dht.findProviders(CID.parse(cid), { signal: AbortSignal.timeout(15_000) })) {
        if (ev.name === 'PROVIDER') found.push(...ev.providers.map(p => p.id))
        if (found.length >= 8) break
      }
      await askAll(found)
    } catch (err: any) {
      this.#log.debug({ cid, error: err?.message }, 'findProviders failed')
    }
    return holders
  }

  async #run (cid: string, t: Transfer, setReady: () => void): Promise<BlobInfo> {
    try {
      const d = this.#store.describe(cid)
      if (d == null) throw new RegistryError('NotFound', `blob ${cid} is not known here`)
      if (d.present) return this.#store.stat(cid) as BlobInfo
      if (d.chunkRoot == null) throw unavailable(`blob ${cid} has no signed chunk root`)
      const chunkSize = d.chunkSize
      const total = Math.max(1, Math.ceil(d.size / chunkSize))
      const sources = await this.#sources(cid, total)
      if (sources.length === 0) throw unavailable(`blob ${cid} is in the mesh but no reachable peer holds it; retry later`)

      // The chunk table from the first source whose table matches the signed root.
      let table: Uint8Array[] | undefined
      for (const p of [...sources]) {
        try {
          const candidate = await this.#client.table(p, cid, AbortSignal.timeout(requestTimeout(total * 32)))
          const root = Buffer.from(await blake3Of(Buffer.concat(candidate))).toString('hex')
          if (root === d.chunkRoot && candidate.length === total) { table = candidate; break }
          this.#log.warn({ peer: p.toString(), cid }, 'chunk table does not match the signed root; excluding peer')
        } catch (err: any) {
          this.#log.debug({ peer: p.toString(), cid, error: err?.message }, 'table failed')
        }
        sources.splice(sources.indexOf(p), 1)
      }
      if (table == null) throw unavailable(`blob ${cid}: no peer served a chunk table matching the signed root`)
      t.total = total

      const put = this.#store.put(t.read(t.join() as Consumer), { expect: { size: d.size, sha256: d.sha256 } })
      put.catch(() => {})
      await this.#fetchChunks(cid, t, table, sources, d.size, chunkSize, setReady)
      const info = await put
      this.#log.info({ cid, size: d.size }, 'blob fetched from the mesh')
      void this.provide(cid)
      return info
    } catch (err) {
      t.failed = err
      t.changed()
      throw err
    } finally {
      t.finished = true
    }
  }

  async #fetchChunks (cid: string, t: Transfer, table: Uint8Array[], sources: PeerId[], size: number, chunkSize: number, setReady: () => void): Promise<void> {
    const pending: number[] = table.map((_, i) => i)
    let turn = 0
    const worker = async (): Promise<void> => {
      for (;;) {
        if (t.failed != null) return
        const index = pending.shift()
        if (index == null) return
        // Hold back while the slowest consumer is far behind (keeps memory bounded).
        while (index >= t.low() + WINDOW && t.failed == null) await t.waitChange()
        // Chunk 0 alone first: it is what the client waits for (time to first byte).
        while (index > 0 && t.contiguous === 0 && t.failed == null) await t.waitChange()
        if (sources.length === 0) throw unavailable(`blob ${cid}: every source failed or lied; retry later`)
        const peer = sources[turn++ % sources.length]
        const length = Math.min(chunkSize, size - index * chunkSize)
        try {
          const bytes = await this.#client.chunk(peer, cid, index, AbortSignal.timeout(requestTimeout(length)))
          const hash = await blake3Of(bytes)
          if (bytes.byteLength !== length || Buffer.compare(Buffer.from(hash), Buffer.from(table[index])) !== 0) {
            throw new Error(`chunk ${index} does not match its hash`)
          }
          t.chunks.set(index, bytes)
          while (t.chunks.has(t.contiguous)) t.contiguous++
          // Headers go out once the first verified chunk is here: a source that lies from the
          // start still ends in a clean 503, and time to first byte is one chunk.
          if (t.contiguous > 0) setReady()
          t.changed()
        } catch (err: any) {
          // One failure or lie excludes the peer for this blob; the chunk goes to another source.
          this.#log.warn({ peer: peer.toString(), cid, index, error: err?.message }, 'excluding peer for this blob')
          const at = sources.indexOf(peer)
          if (at >= 0) sources.splice(at, 1)
          pending.unshift(index)
        }
      }
    }
    try {
      await Promise.all(Array.from({ length: IN_FLIGHT }, async () => await worker()))
    } catch (err) {
      t.failed = err
      t.changed()
      throw err
    }
  }

  readonly #mirrorQueue: string[] = []
  #mirroring = 0

  /** Fetches `cid` in the background (the `mirror` policy), at most MIRROR_CONCURRENCY at once;
   *  a failure is logged and left for the next client or manifest to retry. */
  mirror (cid: string): void {
    const d = this.#store.describe(cid)
    if (d == null || d.present || this.#mirrorQueue.includes(cid)) return
    this.#mirrorQueue.push(cid)
    this.#drainMirror()
  }

  #drainMirror (): void {
    while (this.#mirroring < MIRROR_CONCURRENCY && this.#mirrorQueue.length > 0) {
      const cid = this.#mirrorQueue.shift() as string
      this.#mirroring++
      this.fetch(cid)
        .catch((err: any) => { this.#log.warn({ cid, error: err?.message }, 'mirror fetch failed') })
        .finally(() => { this.#mirroring--; this.#drainMirror() })
    }
  }

  /** Announces a present blob in the DHT (errors are logged: a mesh of one has nobody to tell). */
  async provide (cid: string): Promise<void> {
    try {
      await this.#libp2p.services.dht.provide(CID.parse(cid), { signal: AbortSignal.timeout(30_000) })
    } catch (err: any) {
      this.#log.debug({ cid, error: err?.message }, 'provide failed')
    }
  }

  /** Announces every present blob, a few at a time. */
  async provideAll (signal: AbortSignal): Promise<void> {
    const cids = this.#store.allBlobs().map(b => b.cid)
    const next = async (): Promise<void> => {
      for (let cid = cids.shift(); cid != null && !signal.aborted; cid = cids.shift()) await this.provide(cid)
    }
    await Promise.all([next(), next(), next(), next()])
  }
}
