// Catch-up (anti-entropy): `/akmesh/<mesh>/sync/1.0.0`, one request per stream. The asker sends
// its per-origin contiguous watermarks (store/manifests.ts); the answerer returns the manifests it holds above them (for every
// origin it holds, including ones the asker never heard of) in a bounded page: a JSON head
// `{ count, more }` then `count` envelope frames. The asker verifies and applies each page in one
// transaction and asks again while `more`. Runs on every new connection and every ~30 s per peer,
// because gossipsub only repairs the last few seconds of messages.
import type { Connection, PeerId, Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import type { Logger } from 'pino'
import type { ManifestLog } from '../store/manifests.ts'
import type { MeshLibp2p } from './libp2p.ts'
import { MAX_ENVELOPE_BYTES } from './manifest.ts'
import type { ReceiveOutcome } from './replication.ts'
import { describeError } from './errors.ts'
import { RevocationError } from './revocations.ts'

export const syncProtocol = (mesh: string): string => `/akmesh/${mesh}/sync/1.0.0`

export const PAGE_MANIFESTS = 500
export const PAGE_BYTES = 4 * 1024 * 1024
/** A request names each origin (a ~52-char peer ID) and a seq: 1 MiB is ~15 k origins. */
const MAX_REQUEST = 1024 * 1024
const TIMEOUT_MS = 30_000
const INTERVAL_MS = 30_000
/** Pages per round: a peer that keeps saying `more` without progress is not followed forever. */
const MAX_PAGES = 1000

/** Both sides pass member certificates (base64 envelopes, mesh/membership.ts): the asker its
 *  own, the answerer those of the origins in its page, so certificates travel with catch-up.
 *  Both pass every revocation they hold (mesh/revocations.ts), learned before the page's
 *  manifests are checked, so a node that was offline when a member was revoked refuses it. */
interface SyncRequest { have: Record<string, number>, certificates?: string[], revocations?: string[] }
interface SyncHead { count: number, more: boolean, certificates?: string[], revocations?: string[] }
/** Certificates taken from one message (each ≤ 16 KiB; a page names at most this many origins). */
const MAX_CERTIFICATES = 64
/** Revocations taken from one message (each ≤ 4 KiB, ~300 bytes in practice). */
const MAX_REVOCATIONS = 1024

const enc = (v: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(v))
const dec = (b: Uint8Array): any => JSON.parse(new TextDecoder().decode(b))

export interface SyncReceiver {
  receiveMany (envelopes: Uint8Array[], from: { via: string, peer: string }): Promise<ReceiveOutcome[]>
}

export interface SyncInit {
  libp2p: MeshLibp2p
  mesh: string
  manifests: ManifestLog
  receiver: SyncReceiver
  log: Logger
  /** Member certificates to pass on and learn (mesh/membership.ts); absent: none travel. */
  certificates?: CertificateExchange
}

export interface CertificateExchange {
  /** This node's own certificate, if it joined by certificate. */
  own (): Uint8Array | undefined
  /** The certificates held for these peers. */
  certificates (peers: Iterable<string>): Uint8Array[]
  learn (bytes: Uint8Array): Promise<unknown>
  /** The revocation envelopes held (all of them travel). */
  revocations?: () => Uint8Array[]
  learnRevocation?: (bytes: Uint8Array) => Promise<unknown>
  /** Only members are served (the request's own certificate counts: it is learned first). */
  isMember? (peer: string): boolean
}

const b64 = (list: Uint8Array[], max = MAX_CERTIFICATES): string[] => list.slice(0, max).map(b => Buffer.from(b).toString('base64'))
const unb64 = (list: unknown, max = MAX_CERTIFICATES): Uint8Array[] => Array.isArray(list)
  ? list.slice(0, max).filter((x): x is string => typeof x === 'string').map(x => new Uint8Array(Buffer.from(x, 'base64')))
  : []

/** The page answering `have`: envelopes above each watermark, bounded in count and bytes. */
export function syncPage (manifests: ManifestLog, have: Record<string, number>): { envelopes: Uint8Array[], more: boolean } {
  const envelopes: Uint8Array[] = []
  let bytes = 0
  for (const [origin, mine] of manifests.heads()) {
    const theirs = Number.isSafeInteger(have[origin]) ? have[origin] : 0
    if (mine <= theirs) continue
    let after = theirs
    for (;;) {
      const room = PAGE_MANIFESTS - envelopes.length
      if (room <= 0) return { envelopes, more: true }
      const rows = manifests.since(origin, after, Math.min(room, 100))
      if (rows.length === 0) break
      for (const r of rows) {
        if (envelopes.length > 0 && bytes + r.envelope.byteLength > PAGE_BYTES) return { envelopes, more: true }
        envelopes.push(r.envelope)
        bytes += r.envelope.byteLength
        after = r.seq
      }
    }
  }
  return { envelopes, more: false }
}

/** The origins whose manifests the answerer holds above the asker's watermarks. */
function originsAbove (manifests: ManifestLog, have: Record<string, number>): string[] {
  const out: string[] = []
  for (const [origin, mine] of manifests.heads()) if (mine > (Number.isSafeInteger(have[origin]) ? have[origin] : 0)) out.push(origin)
  return out
}

export class ManifestSync {
  readonly protocol: string
  readonly #i: SyncInit
  readonly #log: Logger
  readonly #controller = new AbortController()
  readonly #running = new Map<string, Promise<void>>()
  #timer: ReturnType<typeof setTimeout> | undefined

  constructor (init: SyncInit) {
    this.#i = init
    this.protocol = syncProtocol(init.mesh)
    this.#log = init.log.child({ component: 'mesh:sync' })
  }

  async start (): Promise<void> {
    await this.#i.libp2p.handle(this.protocol, async (stream: Stream, connection: Connection) => {
      await this.#serve(stream, connection)
    }, { maxInboundStreams: 8, runOnLimitedConnection: false })
    this.#i.libp2p.addEventListener('peer:identify', this.#onIdentify)
    for (const peer of this.#i.libp2p.getPeers()) void this.syncWith(peer)
    this.#schedule()
  }

  async stop (): Promise<void> {
    this.#controller.abort()
    clearTimeout(this.#timer)
    this.#i.libp2p.removeEventListener('peer:identify', this.#onIdentify)
    await Promise.allSettled([...this.#running.values()])
    await this.#i.libp2p.unhandle(this.protocol).catch(() => {})
  }

  // After identify the peer's protocols are known, so the dial does not race the handshake.
  readonly #onIdentify = (evt: CustomEvent<{ peerId: PeerId, protocols: string[] }>): void => {
    if (evt.detail.protocols.includes(this.protocol)) void this.syncWith(evt.detail.peerId)
  }

  #schedule (): void {
    if (this.#controller.signal.aborted) return
    const delay = INTERVAL_MS * (0.75 + Math.random() / 2)
    this.#timer = setTimeout(() => {
      for (const peer of this.#i.libp2p.getPeers()) void this.syncWith(peer)
      this.#schedule()
    }, delay)
    this.#timer.unref?.()
  }

  /** Pulls from `peer` until caught up; one round per peer at a time, failures logged. */
  syncWith (peer: PeerId): Promise<void> {
    const key = peer.toString()
    const running = this.#running.get(key)
    if (running != null) return running
    const round = this.#pull(peer)
      .catch((err: any) => { if (!this.#controller.signal.aborted) this.#log.warn({ peer: key, error: describeError(err) }, 'catch-up failed') })
      .finally(() => { this.#running.delete(key) })
    this.#running.set(key, round)
    return round
  }

  async #pull (peer: PeerId): Promise<void> {
    const from = { via: 'sync', peer: peer.toString() }
    let total = 0
    for (let page = 0; page < MAX_PAGES && !this.#controller.signal.aborted; page++) {
      const have = Object.fromEntries(this.#i.manifests.watermarks())
      const own = this.#i.certificates?.own()
      const { envelopes, more, certificates, revocations } = await this.#request(peer, { have, ...(own != null ? { certificates: b64([own]) } : {}), ...this.#revocationsField() })
      await this.#learn(certificates, from.peer)
      await this.#learnRevocations(revocations, from.peer)
      const outcomes = await this.#i.receiver.receiveMany(envelopes, from)
      const fresh = outcomes.filter(o => o === 'new').length
      total += fresh
      // No progress (all rejected or held: the answerer lacks our hole too): asking again would
      // return the same page.
      if (!more || fresh === 0) break
    }
    if (total > 0) this.#log.info({ peer: from.peer, manifests: total }, 'caught up')
  }

  async #learn (certificates: Uint8Array[], peer: string): Promise<void> {
    for (const c of certificates) {
      try { await this.#i.certificates?.learn(c) } catch (err) { this.#log.warn({ peer, error: describeError(err) }, 'could not keep a member certificate') }
    }
  }

  #revocationsField (): { revocations?: string[] } {
    const held = this.#i.certificates?.revocations?.() ?? []
    return held.length > 0 ? { revocations: b64(held, MAX_REVOCATIONS) } : {}
  }

  async #learnRevocations (revocations: Uint8Array[], peer: string): Promise<void> {
    for (const r of revocations) {
      try { await this.#i.certificates?.learnRevocation?.(r) } catch (err) {
        // A node without a mesh root cannot check revocations: not worth a line every round.
        if (!(err instanceof RevocationError && err.reason === 'no-root')) this.#log.warn({ peer, error: describeError(err) }, 'refused a revocation')
      }
    }
  }

  async #request (peer: PeerId, req: SyncRequest): Promise<{ envelopes: Uint8Array[], more: boolean, certificates: Uint8Array[], revocations: Uint8Array[] }> {
    const signal = AbortSignal.any([this.#controller.signal, AbortSignal.timeout(TIMEOUT_MS)])
    let stream: Stream | undefined
    try {
      stream = await this.#i.libp2p.dialProtocol(peer, this.protocol, { signal })
      const lp = lpStream(stream, { maxDataLength: Math.max(MAX_REQUEST, MAX_ENVELOPE_BYTES) })
      await lp.write(enc(req), { signal })
      const head = dec((await lp.read({ signal })).subarray()) as SyncHead
      if (!Number.isSafeInteger(head?.count) || head.count < 0 || head.count > PAGE_MANIFESTS) throw new Error('malformed page head')
      const envelopes: Uint8Array[] = []
      for (let k = 0; k < head.count; k++) envelopes.push((await lp.read({ signal })).subarray())
      await stream.close({ signal })
      return { envelopes, more: head.more === true, certificates: unb64(head.certificates), revocations: unb64(head.revocations, MAX_REVOCATIONS) }
    } catch (err) {
      stream?.abort(err as Error)
      throw err
    }
  }

  async #serve (stream: Stream, connection: Connection): Promise<void> {
    const signal = AbortSignal.any([this.#controller.signal, AbortSignal.timeout(TIMEOUT_MS)])
    const lp = lpStream(stream, { maxDataLength: MAX_REQUEST })
    try {
      const req = dec((await lp.read({ signal })).subarray()) as SyncRequest
      if (req == null || typeof req.have !== 'object') throw new Error('malformed request')
      const asker = connection.remotePeer.toString()
      await this.#learn(unb64(req.certificates), asker)
      await this.#learnRevocations(unb64(req.revocations, MAX_REVOCATIONS), asker)
      if (this.#i.certificates?.isMember?.(asker) === false) throw new Error(`refused catch-up: ${asker} is not a member of this mesh`)
      const { envelopes, more } = syncPage(this.#i.manifests, req.have)
      // Its own certificate first (the exchange at connect), then those of the page's origins.
      const certificates = this.#i.certificates?.certificates([this.#i.libp2p.peerId.toString(), ...originsAbove(this.#i.manifests, req.have)]) ?? []
      const head: SyncHead = { count: envelopes.length, more, ...(certificates.length > 0 ? { certificates: b64(certificates) } : {}), ...this.#revocationsField() }
      await lp.writeV([enc(head), ...envelopes], { signal })
      await stream.close({ signal })
    } catch (err: any) {
      this.#log.debug({ peer: connection.remotePeer.toString(), error: describeError(err) }, 'sync request failed')
      stream.abort(err)
    }
  }
}
