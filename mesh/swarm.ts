// The multi-source scheduler for one blob: pulls its missing chunks from every peer that holds
// them, whole or in part (mesh/README.md, "Swarm transfers").
//
// - Each peer has a few request slots (more on a link with a larger bandwidth-delay product).
//   Whenever a slot frees, the peer takes the next chunk it should fetch, so a fast peer comes
//   back for work more often: shares follow measured rates without any fixed split.
// - Which chunk: when a client waits (streaming), the lowest missing index it holds; a slower
//   peer skips ahead by how much slower it is than the fastest, so its chunk is due when it
//   arrives instead of holding up the client. With nobody waiting (mirroring), rarest first.
// - Endgame: once every missing chunk is requested, a free peer also requests one that is in
//   flight elsewhere (at most two copies); the first verified copy wins, the other is aborted.
// - Every chunk is checked against the signed chunk table. A bad chunk is discarded and costs
//   its peer (two in one blob: dropped from it; repeated: banned, mesh/profiles.ts); an error or
//   timeout puts the chunk back; three errors in a row drop the peer for 15 s. Holders are re-asked what
//   they have while the transfer runs, so downloaders of the same blob feed each other.
import type { PeerId } from '@libp2p/interface'
import type { Logger } from 'pino'
import { blake3Of } from '../store/hash.ts'
import type { PartialBlob } from '../store/partial.ts'
import type { PeerProfiles } from './profiles.ts'
import { hasBit, type BlobClient } from './transfer.ts'
import { describeError } from './errors.ts'

const MIN_SLOTS = 6
const MAX_SLOTS = 8
const MAX_COPIES = 2
/** How far a slow peer may skip ahead of the client (chunks). */
const MAX_SKIP = 32
const ERRORS_TO_DROP = 3
const MAX_TIMEOUT_MS = 5 * 60_000
const BAD_CHUNKS_TO_DROP = 2
/** How often peers that lack chunks are asked again what they hold. */
const HAVE_REFRESH_MS = 1000
/** Giving up when no peer offers a missing chunk for this long; sooner while a client waits (it
 *  gets a 503, or a cut response, and retries, rather than hanging). */
const STALL_MS = 30_000
const STALL_CLIENT_MS = 3_000
/** Giving up when no chunk has arrived for this long, whatever peers say they are doing. */
const NO_PROGRESS_MS = 120_000
/** A source dropped for errors (not for bad chunks) is tried again after this. */
const DROP_COOLDOWN_MS = 15_000
/** Floor of a chunk request's deadline: a busy seeder queues requests from many downloaders. */
const MIN_TIMEOUT_MS = 30_000

export class SwarmUnavailable extends Error {}

interface SwarmPeer {
  id: PeerId
  key: string
  bits: Uint8Array | undefined
  complete: boolean
  /** It is fetching the blob itself: chunks it lacks now may come later. */
  fetching: boolean
  inflight: Set<number>
  errors: number
  badChunks: number
  dropped: boolean
  /** When a source dropped for errors may be tried again (undefined: dropped for good). */
  retryAt: number | undefined
  asking: boolean
}

interface Request { peer: SwarmPeer, ac: AbortController, started: number, expectedMs: number }

export interface SwarmInit {
  cid: string
  /** Chunks in the blob. */
  total: number
  client: BlobClient
  profiles: PeerProfiles
  log: Logger
  /** Candidate sources (connected peers, DHT providers) for discovery round `round` (0: the
   *  first); each is asked `have`, and asked again each round until it holds the whole blob. */
  candidates: (round: number) => Promise<PeerId[]>
  /** The lowest chunk a waiting client needs, or undefined when nobody waits (background). */
  urgentFrom: () => number | undefined
  /** Called after each chunk is verified and written. */
  onChunk: (index: number) => void
  signal: AbortSignal
}

export interface SourceStats { chunks: number, bytes: number }

export class Swarm {
  /** Verified chunks and bytes taken from each peer. */
  readonly stats = new Map<string, SourceStats>()
  readonly #i: SwarmInit
  #p: PartialBlob | undefined
  readonly #peers = new Map<string, SwarmPeer>()
  readonly #inflight = new Map<number, Request[]>()
  #wake: (() => void) | undefined
  #lastOffer = Date.now()
  #rounds = 0
  #relayHops: number | undefined

  constructor (init: SwarmInit) {
    this.#i = init
  }

  /** Peers that said they hold some of the blob, fastest first. */
  holders (): PeerId[] {
    const chunk = this.#p?.chunkSize ?? 1024 * 1024
    return [...this.#peers.values()].filter(p => this.#usable(p) && (p.bits as Uint8Array).some(b => b !== 0))
      .sort((a, b) => this.#i.profiles.expectedMs(a.id, chunk) - this.#i.profiles.expectedMs(b.id, chunk))
      .map(p => p.id)
  }

  #missing (i: number): boolean { return this.#p == null || !this.#p.has(i) }

  /** From now on, peers are asked to relay the blob (fetch it for us, with `hops` further). */
  askRelays (hops: number): void {
    this.#relayHops = hops
  }

  /** Asks each new candidate what it holds; resolves once all answered. */
  async discover (): Promise<void> {
    const fresh = (await this.#i.candidates(this.#rounds++)).filter(id => !this.#peers.has(id.toString()))
    for (const id of fresh) {
      this.#peers.set(id.toString(), { id, key: id.toString(), bits: undefined, complete: false, fetching: false, inflight: new Set(), errors: 0, badChunks: 0, dropped: false, retryAt: undefined, asking: false })
    }
    await Promise.all([...this.#peers.values()].filter(p => !p.complete && !p.dropped).map(async p => { await this.#ask(p) }))
  }

  /** Whether some peer that is not itself fetching the blob is known (a relay in the middle of
   *  a line says so before it holds any chunk). */
  someoneFetching (): boolean {
    for (const p of this.#peers.values()) if (!p.dropped && p.fetching && !this.#i.profiles.isBanned(p.id)) return true
    return false
  }

  /** Whether some peer offers a chunk still missing here. */
  offersSomething (): boolean {
    for (const p of this.#peers.values()) {
      if (p.dropped || p.bits == null || this.#i.profiles.isBanned(p.id)) continue
      for (let i = 0; i < this.#i.total; i++) if (this.#missing(i) && hasBit(p.bits, i)) return true
    }
    return false
  }

  /** Fetches every chunk missing from `partial`, until all are verified and written; throws
   *  SwarmUnavailable after STALL_MS with no peer offering a missing chunk. */
  async run (partial: PartialBlob): Promise<void> {
    const { signal } = this.#i
    this.#p = partial
    let lastRefresh = 0
    let lastProgress = Date.now()
    let verified = partial.verified
    try {
      while (!partial.complete) {
        signal.throwIfAborted()
        const now = Date.now()
        if (partial.verified !== verified) { verified = partial.verified; lastProgress = now }
        if (now - lastProgress > NO_PROGRESS_MS) {
          throw new SwarmUnavailable(`no chunk of ${partial.cid} arrived for ${NO_PROGRESS_MS / 1000} s (${partial.total - partial.verified} missing)`)
        }
        for (const p of this.#peers.values()) {
          if (p.dropped && p.retryAt != null && now >= p.retryAt) { p.dropped = false; p.errors = 0; p.retryAt = undefined }
        }
        if (now - lastRefresh >= HAVE_REFRESH_MS) {
          lastRefresh = now
          void this.discover().then(() => { this.#kick() }, () => {})
        }
        this.#pump()
        if (this.#inflight.size > 0 || this.offersSomething() || this.someoneFetching()) this.#lastOffer = now
        else if (now - this.#lastOffer > (this.#i.urgentFrom() != null ? STALL_CLIENT_MS : STALL_MS)) {
          throw new SwarmUnavailable(`no reachable peer offers the ${partial.total - partial.verified} missing chunks of ${partial.cid}`)
        }
        await new Promise<void>(resolve => {
          const timer = setTimeout(resolve, HAVE_REFRESH_MS)
          this.#wake = () => { clearTimeout(timer); resolve() }
        })
      }
    } finally {
      for (const reqs of this.#inflight.values()) for (const r of reqs) r.ac.abort()
    }
  }

  #kick (): void { const w = this.#wake; this.#wake = undefined; w?.() }

  async #ask (p: SwarmPeer): Promise<void> {
    if (p.asking) return
    p.asking = true
    try {
      const { bits, fetching } = await this.#i.client.availability(p.id, this.#i.cid, AbortSignal.any([this.#i.signal, AbortSignal.timeout(10_000)]),
        // Relays only while nobody offers a chunk: once one does, more relays would only spread load.
        this.#relayHops != null && this.holders().length === 0 ? this.#relayHops : undefined)
      p.bits = bits != null && bits.byteLength > 0 ? bits : undefined
      p.fetching = fetching
      p.complete = bits != null && Array.from({ length: this.#i.total }, (_, i) => i).every(i => hasBit(bits, i))
    } catch (err: any) {
      this.#failed(p, `have: ${describeError(err)}`)
    } finally {
      p.asking = false
    }
  }

  get #part (): PartialBlob { return this.#p as PartialBlob }

  #slots (p: SwarmPeer): number {
    const prof = this.#i.profiles.get(p.id)
    if (prof?.throughputBps == null || prof.rttMs == null) return MIN_SLOTS
    const bdp = prof.throughputBps * prof.rttMs / 1000
    return Math.min(MAX_SLOTS, Math.max(MIN_SLOTS, 1 + Math.ceil(bdp / this.#part.chunkSize)))
  }

  #usable (p: SwarmPeer): boolean {
    return !p.dropped && p.bits != null && !this.#i.profiles.isBanned(p.id)
  }

  /** Fills every free slot, fastest peers first. */
  #pump (): void {
    const { profiles } = this.#i
    const chunk = this.#part.chunkSize
    const peers = [...this.#peers.values()].filter(p => this.#usable(p))
      .sort((a, b) => profiles.expectedMs(a.id, chunk) - profiles.expectedMs(b.id, chunk))
    if (peers.length === 0) return
    // A client waiting for its first byte: that chunk alone, from the fastest peer holding it,
    // so it does not share the links with the chunks after it (time to first byte is one chunk).
    const urgent = this.#i.urgentFrom()
    if (urgent != null && this.#part.verified === 0 && !this.#part.has(urgent)) {
      if (this.#inflight.has(urgent)) return
      const first = peers.find(p => hasBit(p.bits as Uint8Array, urgent))
      if (first != null) { this.#request(first, urgent); return }
    }
    const fastest = profiles.expectedMs(peers[0].id, chunk)
    for (const p of peers) {
      // A peer n times slower than the fastest gets about 1/n of the slots: more would only
      // park chunks on it that the client reaches before they arrive.
      const slots = Math.max(1, Math.floor(this.#slots(p) * fastest / profiles.expectedMs(p.id, chunk)))
      while (p.inflight.size < slots) {
        const skip = Math.min(MAX_SKIP, Math.max(0, Math.floor(profiles.expectedMs(p.id, chunk) / fastest) - 1))
        const index = this.#pick(p, skip) ?? this.#endgame(p)
        if (index == null) break
        this.#request(p, index)
      }
    }
  }

  #pick (p: SwarmPeer, skip: number): number | undefined {
    const bits = p.bits as Uint8Array
    const total = this.#part.total
    const wanted = (i: number): boolean => !this.#part.has(i) && !this.#inflight.has(i) && hasBit(bits, i)
    const urgent = this.#i.urgentFrom()
    if (urgent != null) {
      // In order from where the client is (then anything before it), skipping ahead for a slow peer.
      let last: number | undefined
      let seen = 0
      for (let k = 0; k < total; k++) {
        const i = (urgent + k) % total
        if (!wanted(i)) continue
        last = i
        if (seen++ === skip) return i
      }
      return last
    }
    // Rarest first, ties broken at random so downloaders of one blob spread out.
    let best: number[] = []
    let bestCount = Infinity
    for (let i = 0; i < total; i++) {
      if (!wanted(i)) continue
      let count = 0
      for (const q of this.#peers.values()) if (this.#usable(q) && hasBit(q.bits as Uint8Array, i)) count++
      if (count < bestCount) { bestCount = count; best = [i] } else if (count === bestCount) best.push(i)
    }
    return best.length === 0 ? undefined : best[Math.floor(Math.random() * best.length)]
  }

  /** A second copy of an in-flight chunk this peer holds: the one a waiting client needs next if
   *  its request is overdue, or, once every missing chunk is requested, the lowest one. */
  #endgame (p: SwarmPeer): number | undefined {
    const bits = p.bits as Uint8Array
    const urgent = this.#i.urgentFrom()
    if (urgent != null) {
      let next = urgent
      while (next < this.#part.total && this.#part.has(next)) next++
      const reqs = this.#inflight.get(next)
      if (reqs?.length === 1 && reqs[0].peer !== p && hasBit(bits, next) &&
          performance.now() - reqs[0].started > 2 * reqs[0].expectedMs &&
          this.#i.profiles.expectedMs(p.id, this.#part.lengthOf(next)) < reqs[0].expectedMs) return next
    }
    for (let i = 0; i < this.#part.total; i++) if (!this.#part.has(i) && !this.#inflight.has(i)) return undefined
    let best: number | undefined
    for (const [i, reqs] of this.#inflight) {
      if (reqs.length >= MAX_COPIES || reqs.some(r => r.peer === p) || !hasBit(bits, i)) continue
      if (best == null || i < best) best = i
    }
    return best
  }

  #request (p: SwarmPeer, index: number): void {
    const { client, profiles, signal } = this.#i
    const length = this.#part.lengthOf(index)
    const ac = new AbortController()
    const expectedMs = profiles.expectedMs(p.id, length)
    const req: Request = { peer: p, ac, started: performance.now(), expectedMs }
    const reqs = this.#inflight.get(index) ?? []
    reqs.push(req)
    this.#inflight.set(index, reqs)
    p.inflight.add(index)
    // A deadline from what this peer is expected to take, with a generous floor.
    const timeout = Math.ceil(Math.min(MAX_TIMEOUT_MS, Math.max(MIN_TIMEOUT_MS, 4 * expectedMs)))
    const started = req.started
    void (async () => {
      try {
        const bytes = await client.chunk(p.id, this.#part.cid, index, AbortSignal.any([ac.signal, signal, AbortSignal.timeout(timeout)]))
        const hash = await blake3Of(bytes)
        if (bytes.byteLength !== length || Buffer.compare(Buffer.from(hash), Buffer.from(this.#part.table[index])) !== 0) {
          this.#bad(p, index)
          return
        }
        const ms = performance.now() - started
        if (!await this.#part.write(index, bytes)) return // another copy won (endgame)
        profiles.recordTransfer(p.id, length, ms, { concurrent: p.inflight.size })
        const s = this.stats.get(p.key) ?? { chunks: 0, bytes: 0 }
        s.chunks++
        s.bytes += length
        this.stats.set(p.key, s)
        p.errors = 0
        for (const other of this.#inflight.get(index) ?? []) if (other !== req) other.ac.abort()
        this.#i.onChunk(index)
      } catch (err: any) {
        if (!ac.signal.aborted && !signal.aborted) {
          profiles.recordError(p.id)
          this.#failed(p, `chunk ${index}: ${describeError(err)}`)
        }
      } finally {
        p.inflight.delete(index)
        const left = (this.#inflight.get(index) ?? []).filter(r => r !== req)
        if (left.length > 0) this.#inflight.set(index, left)
        else this.#inflight.delete(index)
        this.#kick()
      }
    })()
  }

  #bad (p: SwarmPeer, index: number): void {
    p.badChunks++
    const banned = this.#i.profiles.recordBadChunk(p.id)
    this.#i.log.warn({ peer: p.key, cid: this.#part.cid, index, badChunks: p.badChunks, banned }, 'chunk failed verification; discarded')
    if (p.badChunks >= BAD_CHUNKS_TO_DROP || banned) this.#drop(p, 'chunks failed verification', false)
  }

  #failed (p: SwarmPeer, error: string): void {
    p.errors++
    this.#i.log.debug({ peer: p.key, cid: this.#i.cid, error }, 'peer request failed')
    if (p.errors >= ERRORS_TO_DROP) this.#drop(p, error, true)
  }

  /** Stops using `p` for this blob: for a while (`retry`: it failed requests, which a busy or
   *  restarting peer does), or for good (it served bad chunks). */
  #drop (p: SwarmPeer, why: string, retry: boolean): void {
    if (p.dropped) return
    p.dropped = true
    p.retryAt = retry ? Date.now() + DROP_COOLDOWN_MS : undefined
    this.#i.log.warn({ peer: p.key, cid: this.#i.cid, why, retryInMs: retry ? DROP_COOLDOWN_MS : undefined }, 'source dropped for this blob')
  }
}
