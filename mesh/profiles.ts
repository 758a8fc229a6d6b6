// What this node has measured about each peer, used to pick sources for chunks (mesh/swarm.ts):
// round-trip time (libp2p ping, every PING_INTERVAL), throughput (EWMA over real chunk transfers,
// and small probes when the link has been idle), and recent failures. Kept in
// <dataDir>/peer-profiles.json so a restart does not forget which peers are fast.
//
// Scoring (documented in mesh/README.md, "Choosing sources"): the expected time to fetch one
// chunk from a peer,
//     expectedMs = rttMs + chunkBytes / throughput × 1000,   × (1 + recentFailures)
// with an optimistic prior for a peer never measured (so it gets tried and measured), and
// excluded while banned. Lower is better; a peer's share of the work follows from the scheduler
// giving each free request slot the next chunk, so faster peers come back for more sooner.
import { readFile } from 'node:fs/promises'
import type { PeerId } from '@libp2p/interface'
import type { Logger } from 'pino'
import { writeFileAtomic } from '../config/atomic-file.ts'
import type { MeshLibp2p } from './libp2p.ts'

/** Throughput assumed for a peer never measured: high, so new peers are tried early. */
export const PRIOR_BPS = 50 * 1024 * 1024
export const PRIOR_RTT_MS = 5
const EWMA = 0.3
const MIN_SAMPLE_BYTES = 128 * 1024
/** Failures older than this no longer count. */
const FAILURE_WINDOW_MS = 10 * 60_000
/** Chunks that failed verification within FAILURE_WINDOW_MS before a peer is banned. */
const BAD_CHUNKS_TO_BAN = 3
export const BAN_MS = 10 * 60_000
const PING_INTERVAL_MS = 30_000
const SAVE_INTERVAL_MS = 30_000

export interface PeerProfile {
  peerId: string
  rttMs: number | null
  throughputBps: number | null
  /** When throughput was last measured (ms since epoch). */
  measuredAt: number | null
  bytesReceived: number
  bytesSent: number
  chunksReceived: number
  /** Requests that errored or timed out, and chunks that failed verification, all time. */
  errors: number
  badChunks: number
  /** Failure times within the window (errors and bad chunks). */
  recentFailures: number[]
  recentBadChunks: number[]
  bannedUntil: number | null
}

const blank = (peerId: string): PeerProfile => ({
  peerId, rttMs: null, throughputBps: null, measuredAt: null, bytesReceived: 0, bytesSent: 0, chunksReceived: 0,
  errors: 0, badChunks: 0, recentFailures: [], recentBadChunks: [], bannedUntil: null
})

export class PeerProfiles {
  readonly #file: string | undefined
  readonly #log: Logger | undefined
  readonly #profiles = new Map<string, PeerProfile>()
  #dirty = false
  #timer: ReturnType<typeof setInterval> | undefined
  #pinger: ReturnType<typeof setInterval> | undefined

  /** `file`: where profiles persist (none: memory only). */
  constructor (opts: { file?: string, log?: Logger } = {}) {
    this.#file = opts.file
    this.#log = opts.log?.child({ component: 'mesh:profiles' })
  }

  /** Loads the saved profiles (a missing or unreadable file starts empty, logged). */
  async load (): Promise<void> {
    if (this.#file == null) return
    let text: string
    try { text = await readFile(this.#file, 'utf8') } catch { return }
    try {
      const saved = JSON.parse(text) as { profiles?: PeerProfile[] }
      for (const p of saved.profiles ?? []) if (typeof p?.peerId === 'string') this.#profiles.set(p.peerId, { ...blank(p.peerId), ...p })
    } catch (err: any) {
      this.#log?.warn({ file: this.#file, error: err?.message }, 'peer profiles unreadable; starting afresh')
    }
  }

  /** Saves periodically and pings connected peers for RTT until `stop`. */
  start (libp2p?: MeshLibp2p): void {
    this.#timer = setInterval(() => { void this.save() }, SAVE_INTERVAL_MS)
    this.#timer.unref?.()
    if (libp2p == null) return
    const pingAll = (): void => {
      for (const peer of libp2p.getPeers()) {
        libp2p.services.ping.ping(peer, { signal: AbortSignal.timeout(10_000) })
          .then(ms => { this.recordRtt(peer, ms) })
          .catch(() => {})
      }
    }
    this.#pinger = setInterval(pingAll, PING_INTERVAL_MS)
    this.#pinger.unref?.()
    // A first RTT soon after a peer connects (not at once: the bootstrap check pings then).
    libp2p.addEventListener('peer:identify', (evt) => {
      const timer = setTimeout(() => {
        libp2p.services.ping.ping(evt.detail.peerId, { signal: AbortSignal.timeout(10_000) })
          .then(ms => { this.recordRtt(evt.detail.peerId, ms) })
          .catch(() => {})
      }, 2000)
      timer.unref?.()
    })
  }

  async stop (): Promise<void> {
    clearInterval(this.#timer)
    clearInterval(this.#pinger)
    await this.save()
  }

  async save (): Promise<void> {
    if (this.#file == null || !this.#dirty) return
    this.#dirty = false
    try {
      await writeFileAtomic(this.#file, JSON.stringify({ profiles: this.all() }, null, 1) + '\n')
    } catch (err: any) {
      this.#dirty = true
      this.#log?.warn({ file: this.#file, error: err?.message }, 'saving peer profiles failed')
    }
  }

  #get (peer: PeerId | string): PeerProfile {
    const id = peer.toString()
    let p = this.#profiles.get(id)
    if (p == null) { p = blank(id); this.#profiles.set(id, p) }
    this.#dirty = true
    return p
  }

  get (peer: PeerId | string): PeerProfile | undefined {
    const p = this.#profiles.get(peer.toString())
    if (p != null) prune(p, Date.now())
    return p
  }

  all (): PeerProfile[] {
    const now = Date.now()
    return [...this.#profiles.values()].map(p => { prune(p, now); return { ...p } })
  }

  recordRtt (peer: PeerId | string, ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) return
    const p = this.#get(peer)
    p.rttMs = p.rttMs == null ? ms : p.rttMs * (1 - EWMA) + ms * EWMA
  }

  /** A chunk (or probe) of `bytes` took `ms` from request to last byte, with `concurrent`
   *  requests to that peer in flight (itself included). */
  recordTransfer (peer: PeerId | string, bytes: number, ms: number, opts: { chunk?: boolean, concurrent?: number } = {}): void {
    if (!Number.isFinite(ms) || bytes <= 0) return
    const p = this.#get(peer)
    // Only transfers large enough for bandwidth, not latency, to dominate are a sample (the
    // short last chunk of a blob would otherwise read as a very slow link). Request latency
    // stays in: it is part of what a chunk costs.
    if (bytes >= MIN_SAMPLE_BYTES) {
      // Requests in flight to the peer at once share its link: each saw about 1/n of it.
      const bps = bytes * Math.max(1, opts.concurrent ?? 1) / (Math.max(ms, 1) / 1000)
      p.throughputBps = p.throughputBps == null ? bps : p.throughputBps * (1 - EWMA) + bps * EWMA
      p.measuredAt = Date.now()
    }
    p.bytesReceived += bytes
    if (opts.chunk !== false) p.chunksReceived++
  }

  recordSent (peer: PeerId | string, bytes: number): void {
    this.#get(peer).bytesSent += bytes
  }

  /** A request that errored or timed out. */
  recordError (peer: PeerId | string): void {
    const p = this.#get(peer)
    p.errors++
    p.recentFailures.push(Date.now())
  }

  /** A chunk that did not match its hash: after BAD_CHUNKS_TO_BAN within the window, the peer is
   *  banned for BAN_MS. Returns true if this banned it. */
  recordBadChunk (peer: PeerId | string): boolean {
    const p = this.#get(peer)
    const now = Date.now()
    p.badChunks++
    p.recentFailures.push(now)
    p.recentBadChunks.push(now)
    prune(p, now)
    if (p.recentBadChunks.length >= BAD_CHUNKS_TO_BAN && (p.bannedUntil ?? 0) < now) {
      p.bannedUntil = now + BAN_MS
      this.#log?.warn({ peer: p.peerId, badChunks: p.recentBadChunks.length, until: new Date(p.bannedUntil).toISOString() }, 'peer banned: repeated chunks that failed verification')
      return true
    }
    return false
  }

  isBanned (peer: PeerId | string, now = Date.now()): boolean {
    const until = this.#profiles.get(peer.toString())?.bannedUntil
    return until != null && until > now
  }

  /** Expected milliseconds to fetch `bytes` from `peer` (the scoring formula above). */
  expectedMs (peer: PeerId | string, bytes: number): number {
    const p = this.get(peer)
    const rtt = p?.rttMs ?? PRIOR_RTT_MS
    const bps = p?.throughputBps ?? PRIOR_BPS
    return (rtt + bytes / bps * 1000) * (1 + (p?.recentFailures.length ?? 0))
  }

  /** Whether throughput was measured within `ms`. */
  measuredWithin (peer: PeerId | string, ms: number): boolean {
    const at = this.#profiles.get(peer.toString())?.measuredAt
    return at != null && Date.now() - at < ms
  }
}

function prune (p: PeerProfile, now: number): void {
  const from = now - FAILURE_WINDOW_MS
  while (p.recentFailures.length > 0 && p.recentFailures[0] < from) p.recentFailures.shift()
  while (p.recentBadChunks.length > 0 && p.recentBadChunks[0] < from) p.recentBadChunks.shift()
  if (p.bannedUntil != null && p.bannedUntil <= now) p.bannedUntil = null
}
