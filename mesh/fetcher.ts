// Fetching a blob known from a manifest (present = 0) from peers: the chunk table is checked
// against the signed chunk root, chunks are pulled from every holder at once (mesh/swarm.ts) into
// a partial file (store/partial.ts) and verified one by one, HTTP clients stream verified chunks
// in order as they land, peers are served the chunks already here, and the finished file is
// committed through the store's normal path. One transfer per CID however many clients ask.
import { rm } from 'node:fs/promises'
import { Readable } from 'node:stream'
import { CID } from 'multiformats/cid'
import type { PeerId } from '@libp2p/interface'
import type { Logger } from 'pino'
import type { FileBlobStore } from '../store/blobs.ts'
import { RegistryError } from '../store/errors.ts'
import { blake3Of } from '../store/hash.ts'
import { PartialBlob } from '../store/partial.ts'
import type { BlobInfo, ByteRange, RemoteBlobs } from '../store/types.ts'
import type { MeshLibp2p } from './libp2p.ts'
import type { PeerProfiles } from './profiles.ts'
import { Swarm, SwarmUnavailable } from './swarm.ts'
import { BlobClient } from './transfer.ts'
import { describeError } from './errors.ts'
import { OncePer } from './once-per.ts'
import { Fetch, RELAY_HOPS, type TransferRecord } from './fetch-state.ts'
import { LinkProber } from './link-prober.ts'
import { RetryQueue } from './retry-queue.ts'

/** How long a fetch waits for a relaying peer's first chunk before giving up (in the background:
 *  a waiting client gives up after `waitMs`). */
const RELAY_WAIT_MS = 20_000
/** Default of the peering file's `blobWaitMs`: how long a client waits for a blob no reachable
 *  peer offers before its 503. */
export const DEFAULT_WAIT_MS = 5_000
/** The same blob failing again is logged at most this often. */
const FAILURE_LOG_MS = 60_000
/** Recent transfers kept for the admin API. */
const HISTORY = 100
/** A DHT provider search at most this often per blob while no connected peer offers it. */
const DHT_INTERVAL_MS = 15_000

export interface BlobFetcherInit {
  libp2p: MeshLibp2p
  store: FileBlobStore
  mesh: string
  profiles: PeerProfiles
  log: Logger
  /** How long a client waits for a first chunk while no peer offers one (read per request, so a
   *  peering file edit applies to the next); default DEFAULT_WAIT_MS. */
  waitMs?: () => number
  /** The signed manifest a blob's SHA digests came from (store/digest-origin.ts), reported with
   *  each committed transfer: a client refusing the bytes then names who signed the digest. */
  digestOrigin?: (cid: string) => { origin: string, seq: number } | undefined
}

/** Seconds a client is told to wait before asking again (`Retry-After`). */
const RETRY_AFTER_S = 30

export const unavailable = (m: string): RegistryError => new RegistryError('Unavailable', m, { 'Retry-After': String(RETRY_AFTER_S) })

interface Entry { fetch: Fetch, ready: Promise<void>, done: Promise<BlobInfo> }

export class BlobFetcher implements RemoteBlobs {
  readonly #libp2p: MeshLibp2p
  readonly #store: FileBlobStore
  readonly #client: BlobClient
  readonly #profiles: PeerProfiles
  readonly #log: Logger
  readonly #entries = new Map<string, Entry>()
  readonly #history: TransferRecord[] = []
  readonly #controller = new AbortController()
  readonly #prober: LinkProber
  readonly #retries: RetryQueue
  readonly #waitMs: () => number
  readonly #digestOrigin: BlobFetcherInit['digestOrigin']
  readonly #failureLogged = new OncePer(FAILURE_LOG_MS)
  /** How many transfers were started (tests observe coalescing through it). */
  started = 0

  constructor (init: BlobFetcherInit) {
    this.#libp2p = init.libp2p
    this.#store = init.store
    this.#client = new BlobClient(init.libp2p, init.mesh)
    this.#profiles = init.profiles
    this.#log = init.log.child({ component: 'mesh:fetch' })
    this.#prober = new LinkProber({
      libp2p: init.libp2p, client: this.#client, profiles: init.profiles, busy: () => this.#entries.size > 0, signal: this.#controller.signal, log: this.#log
    })
    this.#waitMs = init.waitMs ?? (() => DEFAULT_WAIT_MS)
    this.#digestOrigin = init.digestOrigin
    this.#retries = new RetryQueue({
      fetch: async (cid) => await this.fetch(cid),
      absent: (cid) => this.#store.describe(cid)?.present === false,
      running: (cid) => this.#entries.has(cid),
      signal: this.#controller.signal,
      log: this.#log
    })
  }

  /** Resumes fetches a restart interrupted and starts idle-link probes. */
  async start (): Promise<void> {
    for (const cid of await this.#store.partials()) {
      const d = this.#store.describe(cid)
      if (d == null || d.present) {
        await rm(this.#store.partialPath(cid), { force: true })
        continue
      }
      this.#log.info({ cid }, 'resuming an interrupted fetch')
      this.mirror(cid)
    }
    this.#prober.start()
    this.#retries.start()
    // A peer that just connected may hold what failed for want of a source.
    this.#libp2p.addEventListener('peer:identify', this.#onPeer)
  }

  readonly #onPeer = (evt: CustomEvent<{ peerId: PeerId }>): void => {
    const n = this.#retries.waiting()
    if (n > 0) this.#log.info({ peer: evt.detail.peerId.toString(), blobs: n }, 'a peer connected: retrying failed fetches')
    this.#retries.retry(true)
  }

  /** Stops every transfer; partial files stay for the next start. */
  async stop (): Promise<void> {
    this.#prober.stop()
    this.#retries.stop()
    this.#libp2p.removeEventListener('peer:identify', this.#onPeer)
    this.#controller.abort()
    await Promise.allSettled([...this.#entries.values()].map(async e => await e.done))
  }

  /** Recent and running transfers, newest first. */
  transfers (): TransferRecord[] {
    return [...this.#history].reverse().map(r => ({ ...r, sources: { ...r.sources } }))
  }

  /** A peer asked for `cid`, which is known here but absent: fetch it (first chunks first), so
   *  nodes in the middle of a line relay blobs. True while a fetch of it runs. */
  relay (cid: string, hops: number): boolean {
    if (this.#controller.signal.aborted) return false
    const running = this.#entries.get(cid)
    if (running != null) return running.fetch.record.status === 'running'
    const d = this.#store.describe(cid)
    if (d == null || d.present) return false
    const e = this.#start(cid, hops)
    e.fetch.relayed = true
    return true
  }

  /** The verified chunks of a blob being fetched, for serving peers. */
  partial (cid: string): PartialBlob | undefined {
    const f = this.#entries.get(cid)?.fetch
    return f?.committed === false ? f.partial : undefined
  }

  /** Whether any peer is connected (none: no fetch can find a source now). */
  reachable (): boolean {
    return this.#libp2p.getPeers().length > 0
  }

  /** Starts (or joins) the fetch of `cid`; resolves once its first chunk is verified (rejects
   *  Unavailable if no source serves it), so a client gets a 503 before any header. Until then
   *  the transfer fetches in streaming order, first chunk first. */
  async ready (cid: string): Promise<void> {
    const e = this.#start(cid)
    const waiting = { pos: 0 }
    e.fetch.readers.add(waiting)
    try {
      await this.#firstChunk(cid, e)
    } catch (err) {
      // Someone wanted it: when a peer connects (perhaps its holder, back), fetch it again.
      this.#retries.wanted(cid)
      throw err
    } finally {
      e.fetch.readers.delete(waiting)
    }
  }

  /** Waits for chunk 0, at most `waitMs` while no peer offers a missing chunk (a relay that is
   *  still looking does not count: that is what made clients wait 20 s for their 503). A chunk
   *  on offer is waited for under the swarm's own deadlines. The fetch goes on in the background. */
  async #firstChunk (cid: string, e: Entry): Promise<void> {
    const waitMs = this.#waitMs()
    let timer: ReturnType<typeof setTimeout> | undefined
    const expired = new Promise<true>(resolve => { timer = setTimeout(() => { resolve(true) }, waitMs) })
    try {
      if (await Promise.race([e.ready.then(() => false as const), expired]) === false) return
    } finally {
      clearTimeout(timer)
    }
    if (e.fetch.swarm?.offersSomething() === true) { await e.ready; return }
    const relaying = e.fetch.swarm?.someoneFetching() === true ? ' (a peer that knows it is still looking for a holder)' : ''
    throw unavailable(`blob ${cid} is in the mesh but no reachable peer offered it within ${waitMs} ms${relaying}; ` +
      `its holders may be offline. Retry after ${RETRY_AFTER_S} s (Retry-After)`)
  }

  /** Fetches `cid` to the store (coalesced), resolving when it is committed. */
  async fetch (cid: string): Promise<BlobInfo> {
    return await this.#start(cid).done
  }

  /** The blob's bytes (or a range of them) as they arrive. Call `ready` first to learn, before
   *  sending headers, whether a source exists. */
  open (cid: string, range?: ByteRange): Readable {
    if (this.#store.has(cid)) return this.#store.open(cid, range)
    const e = this.#start(cid)
    const d = this.#store.describe(cid)
    const chunkSize = d?.chunkSize ?? 1
    const start = range?.start ?? 0
    const end = range == null ? (d?.size ?? 0) : range.end + 1
    const reader = { pos: Math.floor(start / chunkSize) }
    const f = e.fetch
    f.readers.add(reader)
    const store = this.#store
    const body = Readable.from((async function * () {
      try {
        await e.ready
        for (let at = start; at < end;) {
          if (f.failed != null) throw f.failed
          const partial = f.partial
          if (partial == null || !partial.has(reader.pos)) {
            if (f.committed || store.has(cid)) { yield * store.open(cid, { start: at, end: end - 1 }); return }
            await f.waitChange()
            continue
          }
          const bytes = await partial.read(reader.pos)
          const from = at - reader.pos * chunkSize
          const to = Math.min(bytes.byteLength, end - reader.pos * chunkSize)
          if (to > from) yield bytes.subarray(from, to)
          at = (reader.pos + 1) * chunkSize
          reader.pos++
        }
      } finally {
        f.readers.delete(reader)
      }
    })(), { objectMode: false })
    body.once('close', () => { f.readers.delete(reader) })
    return body
  }

  #start (cid: string, relayHops = RELAY_HOPS): Entry {
    const existing = this.#entries.get(cid)
    if (existing != null) return existing
    this.started++
    const d = this.#store.describe(cid)
    const fetch = new Fetch(cid, d?.size ?? 0)
    fetch.relayHops = relayHops
    this.#history.push(fetch.record)
    if (this.#history.length > HISTORY) this.#history.shift()
    let setReady!: () => void
    const ready = new Promise<void>((resolve) => { setReady = resolve })
    const done = this.#run(cid, fetch, setReady)
    const entry = { fetch, ready: Promise.race([ready, done.then(() => {})]), done }
    entry.ready.catch(() => {})
    done.catch((err: unknown) => {
      if (this.#controller.signal.aborted) return
      const cause = describeError(err)
      const level = this.#failureLogged.due(cid) ? 'warn' : 'debug'
      this.#log[level]({ cid, error: cause, relayed: fetch.relayed, clientsWaiting: fetch.readers.size }, 'blob fetch failed')
    }).finally(() => { this.#entries.delete(cid) })
    this.#entries.set(cid, entry)
    return entry
  }

  readonly #lastDht = new Map<string, number>()

  /** Connected peers; from the second round on, DHT providers too, at most every
   *  DHT_INTERVAL_MS per blob, while no known peer offers a missing chunk. */
  async #candidates (cid: string, swarm: Swarm, round: number): Promise<PeerId[]> {
    const peers = this.#libp2p.getPeers()
    if (round === 0 || swarm.offersSomething() || Date.now() - (this.#lastDht.get(cid) ?? 0) < DHT_INTERVAL_MS) return peers
    this.#lastDht.set(cid, Date.now())
    if (this.#lastDht.size > 1000) this.#lastDht.delete(this.#lastDht.keys().next().value as string)
    const found: PeerId[] = []
    try {
      for await (const ev of this.#libp2p.services.dht.findProviders(CID.parse(cid), { signal: AbortSignal.any([this.#controller.signal, AbortSignal.timeout(15_000)]) })) {
        if (ev.name === 'PROVIDER') found.push(...ev.providers.map(p => p.id))
        if (found.length >= 8) break
      }
    } catch (err: any) {
      this.#log.debug({ cid, error: describeError(err) }, 'findProviders failed')
    }
    const self = this.#libp2p.peerId.toString()
    return [...peers, ...found].filter(p => p.toString() !== self)
  }

  async #run (cid: string, f: Fetch, setReady: () => void): Promise<BlobInfo> {
    const signal = this.#controller.signal
    const log = this.#log.child({ cid })
    try {
      const d = this.#store.describe(cid)
      if (d == null) throw new RegistryError('NotFound', `blob ${cid} is not known here`)
      if (d.present) return this.#store.stat(cid) as BlobInfo
      if (d.chunkRoot == null) throw unavailable(`blob ${cid} has no signed chunk root`)
      const total = Math.max(1, Math.ceil(d.size / d.chunkSize))
      log.info({ size: d.size, chunks: total }, 'fetching blob from the mesh')

      // Sources first (a table is only worth asking for from a peer that has the blob), with a
      // placeholder partial: the swarm needs the table to verify chunks.
      let provided = false
      const swarm: Swarm = f.swarm = new Swarm({
        cid, total, client: this.#client, profiles: this.#profiles, log, signal,
        candidates: async (round) => await this.#candidates(cid, swarm, round),
        urgentFrom: () => f.urgentFrom(),
        onChunk: (index) => {
          if (index === 0) setReady()
          f.record.sources = Object.fromEntries(swarm.stats)
          f.changed()
          // Announce early: downloaders of the same blob find each other and share chunks.
          if (!provided) { provided = true; void this.provide(cid) }
        }
      })
      await swarm.discover()
      if (swarm.holders().length === 0) await swarm.discover() // the DHT, if no connected peer has it
      // No holder we can reach: ask connected peers that know the blob to fetch it for us (a
      // relay in a line A–B–C), and give them a little time to find it.
      if (swarm.holders().length === 0 && f.relayHops > 0) {
        swarm.askRelays(f.relayHops - 1)
        await swarm.discover()
      }
      for (const until = Date.now() + RELAY_WAIT_MS; swarm.holders().length === 0 && swarm.someoneFetching() && Date.now() < until;) {
        await new Promise(resolve => setTimeout(resolve, 250))
        await swarm.discover()
      }
      if (swarm.holders().length === 0) throw unavailable(`blob ${cid} is in the mesh but no reachable peer holds it; retry later`)

      let table = this.#store.chunkHashes(cid)
      if (table.length !== total || !await matchesRoot(table, d.chunkRoot)) {
        table = []
        for (const peer of swarm.holders()) {
          const key = peer.toString()
          try {
            const candidate = await this.#client.table(peer, cid, AbortSignal.any([signal, AbortSignal.timeout(10_000 + total)]))
            if (candidate.length === total && await matchesRoot(candidate, d.chunkRoot)) { table = candidate; break }
            log.warn({ peer: key }, 'chunk table does not match the signed root')
            this.#profiles.recordBadChunk(key)
          } catch (err: any) {
            log.debug({ peer: key, error: describeError(err) }, 'table failed')
          }
        }
        if (table.length === 0) throw unavailable(`blob ${cid}: no peer served a chunk table matching the signed root`)
        this.#store.recordChunkTable(cid, table)
      }

      const partial = await PartialBlob.open(this.#store, d, table, signal)
      f.partial = partial
      f.record.resumedChunks = partial.verified
      if (partial.verified > 0) log.info({ verified: partial.verified, chunks: total }, 'resuming from chunks already here')
      if (partial.has(0)) setReady()
      try {
        await swarm.run(partial)
      } catch (err) {
        await partial.close()
        if (err instanceof SwarmUnavailable) throw unavailable(`${err.message}; retry later`)
        throw err
      }
      let info: BlobInfo
      try {
        info = await partial.commit()
      } catch (err) {
        // Every chunk matched the signed table, yet the whole does not match the manifest's
        // digests: the origin signed inconsistent facts. Start over next time.
        await partial.discard()
        throw err
      }
      f.committed = true
      f.record.sources = Object.fromEntries(swarm.stats)
      f.record.status = 'done'
      const signer = this.#digestOrigin?.(cid)
      if (signer != null) f.record.digestsSignedBy = `${signer.origin}/${signer.seq}`
      log.info({ size: d.size, sources: f.record.sources, ms: Date.now() - f.record.startedAt, sha256: d.sha256, digestsSignedBy: f.record.digestsSignedBy },
        'blob fetched from the mesh')
      void this.provide(cid)
      return info
    } catch (err: any) {
      f.failed = err
      f.record.status = 'failed'
      f.record.error = describeError(err)
      throw err
    } finally {
      f.record.finishedAt = Date.now()
      f.changed()
    }
  }

  /** Fetches `cid` in the background (the `mirror` policy); see ./retry-queue.ts. */
  mirror (cid: string): void { this.#retries.mirror(cid) }

  /** Announces a present blob in the DHT (errors are logged: a mesh of one has nobody to tell). */
  async provide (cid: string): Promise<void> {
    try {
      await this.#libp2p.services.dht.provide(CID.parse(cid), { signal: AbortSignal.any([this.#controller.signal, AbortSignal.timeout(30_000)]) })
    } catch (err: any) {
      this.#log.debug({ cid, error: describeError(err) }, 'provide failed')
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

async function matchesRoot (table: Uint8Array[], root: string): Promise<boolean> {
  return Buffer.from(await blake3Of(Buffer.concat(table))).toString('hex') === root
}
