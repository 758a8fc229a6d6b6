// Certificates presented at connect (mesh/README.md, "Membership"): `/akmesh/<mesh>/introduce/1.0.0`
// runs on every new connection; each side sends its own certificate envelope (one length-prefixed
// frame, empty when it holds none) and learns the other's. A node with a mesh root lets a peer it
// does not know yet connect *on probation*: until that peer has presented a valid certificate of
// its own, every other protocol it opens waits (the members-only handler wrapper below; gossipsub
// also scores non-members below its graylist, mesh/libp2p.ts); a peer that
// presents none within PROBATION_MS, or an invalid one, or whose site the `connect` rules exclude,
// is hung up on and logged once per peer with the reason.
import type { Connection, Stream, StreamHandler, StreamHandlerOptions } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import type { Logger } from 'pino'
import type { Peering } from '../config/peering-schema.ts'
import { CertificateError, MAX_CERTIFICATE_BYTES, verifyCertificate, type CertificateRejection, type MeshIdentity } from './certificates.ts'
import { describeError } from './errors.ts'
import type { MeshLibp2p } from './libp2p.ts'
import { OncePer } from './once-per.ts'

export const introduceProtocol = (mesh: string): string => `/akmesh/${mesh}/introduce/1.0.0`

/** How long a peer not yet known may stay connected without presenting its certificate. */
export const PROBATION_MS = 10_000
/** Peers on probation at once: a flood of unknown dialers cannot hold more slots. */
const MAX_ON_PROBATION = 64
/** A peer hung up on is not let on probation again for this long (it would just redial). */
const REFUSED_BACKOFF_MS = 60_000
const LOG_ONCE_PER_MS = 60 * 60_000
/** Protocols a peer on probation may use: the libp2p handshake and this one. */
const IDENTIFY = ['/ipfs/id/1.0.0', '/ipfs/id/push/1.0.0']

export type ProbationFailure = 'no-certificate' | 'timeout' | 'certificate-of-another-peer' | 'refused' | 'connect-rules' | CertificateRejection

export class NotAMemberError extends Error {
  constructor (peer: string) {
    super(`peer ${peer} is not a member of this mesh (no valid certificate presented)`)
    this.name = 'NotAMemberError'
  }
}

/** What introductions need of mesh/membership.ts. */
export interface IntroductionMembership {
  own (): Uint8Array | undefined
  learn (bytes: Uint8Array): Promise<unknown>
  isMember (peer: string): boolean
  mayConnect (peer: string): boolean
}

interface RegistrarLookup { getHandler (protocol: string): { handler: StreamHandler, options: StreamHandlerOptions } }

export interface IntroductionsInit {
  libp2p: MeshLibp2p
  mesh: string
  membership: IntroductionMembership
  /** Read on every check (the live peering file): no mesh root, no probation (allowlist only). */
  peering: () => Pick<Peering, 'mesh' | 'meshRoot' | 'connect'>
  log: Logger
  probationMs?: number
}

interface Probation {
  verdict: Promise<boolean>
  settle: (ok: boolean) => void
  timer: ReturnType<typeof setTimeout>
}

export class Introductions {
  readonly protocol: string
  readonly #i: IntroductionsInit
  readonly #log: Logger
  readonly #probation = new Map<string, Probation>()
  readonly #refusedAt = new Map<string, number>()
  readonly #logged = new OncePer(LOG_ONCE_PER_MS)
  readonly #controller = new AbortController()
  #ready = false

  constructor (init: IntroductionsInit) {
    this.#i = init
    this.protocol = introduceProtocol(init.mesh)
    this.#log = init.log.child({ component: 'mesh:introductions' })
  }

  /** Registers the protocol and guards every protocol registered so far; only then are peers
   *  let on probation. */
  async start (): Promise<void> {
    await this.#i.libp2p.handle(this.protocol, async (stream: Stream, connection: Connection) => {
      await this.#exchange(stream, connection)
    }, { maxInboundStreams: 2, runOnLimitedConnection: false })
    await this.#guardRegistered()
    this.#i.libp2p.addEventListener('connection:open', this.#onOpen)
    this.#i.libp2p.addEventListener('peer:disconnect', this.#onDisconnect)
    for (const c of this.#i.libp2p.getConnections()) this.#onOpen(new CustomEvent('connection:open', { detail: c }))
    this.#ready = true
  }

  /** Re-registers each handler (identify and introduce aside) wrapped by membersOnly. libp2p's
   *  stream middleware (`libp2p.use`) would be the API for this, but libp2p 3.3 appends the
   *  handler to the registered middleware array on every inbound stream, so handlers pile up
   *  (js-libp2p PR #3534, open); the registrar's handler lookup is the one internal used. */
  async #guardRegistered (): Promise<void> {
    const registrar = (this.#i.libp2p as unknown as { components?: { registrar?: RegistrarLookup } }).components?.registrar
    if (typeof registrar?.getHandler !== 'function') {
      this.#log.warn('cannot guard libp2p\'s own protocols (registrar not reachable); peers on probation reach the DHT and ping before their certificate')
      return
    }
    const exempt = new Set([...IDENTIFY, this.protocol])
    for (const protocol of this.#i.libp2p.getProtocols()) {
      if (exempt.has(protocol)) continue
      const { handler, options } = registrar.getHandler(protocol)
      await this.#i.libp2p.handle(protocol, this.membersOnly(handler), { ...options, force: true })
    }
  }

  async stop (): Promise<void> {
    this.#ready = false
    this.#controller.abort()
    this.#i.libp2p.removeEventListener('connection:open', this.#onOpen)
    this.#i.libp2p.removeEventListener('peer:disconnect', this.#onDisconnect)
    for (const peer of [...this.#probation.keys()]) this.#settle(peer, false)
    await this.#i.libp2p.unhandle(this.protocol).catch(() => {})
  }

  #identity (): MeshIdentity | undefined {
    const p = this.#i.peering()
    return p.meshRoot != null ? { mesh: p.mesh, root: p.meshRoot } : undefined
  }

  /** May a peer this node does not know as a member connect on probation? (The gater asks.)
   *  Needs a mesh root; `connect` rules naming peer IDs apply at once, `site:` ones once the
   *  certificate says the site. */
  mayProbate (peer: string, now = Date.now()): boolean {
    if (!this.#ready || this.#identity() == null) return false
    if (this.#probation.has(peer)) return true
    if (this.#probation.size >= MAX_ON_PROBATION) return false
    const refused = this.#refusedAt.get(peer)
    if (refused != null && now - refused < REFUSED_BACKOFF_MS) return false
    const rules = this.#i.peering().connect
    if (rules == null) return true
    if (rules.deny.includes(peer)) return false
    return rules.only == null || rules.only.includes(peer) || rules.only.some(e => e.startsWith('site:'))
  }

  onProbation (peer: string): boolean { return this.#probation.has(peer) }

  /** Wraps a protocol handler: members are served; a peer on probation waits for its verdict;
   *  anyone else's stream is reset. */
  membersOnly (handler: StreamHandler): StreamHandler {
    return async (stream, connection) => {
      const peer = connection.remotePeer.toString()
      if (this.#i.membership.isMember(peer) || (await this.#probation.get(peer)?.verdict === true && this.#i.membership.isMember(peer))) {
        await handler(stream, connection)
        return
      }
      stream.abort(new NotAMemberError(peer))
    }
  }

  readonly #onOpen = (evt: CustomEvent<Connection>): void => {
    const connection = evt.detail
    const peer = connection.remotePeer.toString()
    // Without a root the gater let in members only; with one, anyone else is on probation.
    if (this.#identity() != null && !this.#i.membership.isMember(peer) && !this.#probation.has(peer)) this.#beginProbation(peer)
    void this.#introduce(connection)
  }

  readonly #onDisconnect = (evt: CustomEvent<{ toString: () => string }>): void => {
    const peer = evt.detail.toString()
    if (this.#probation.has(peer)) this.#settle(peer, false)
  }

  #beginProbation (peer: string): void {
    let settle!: (ok: boolean) => void
    const verdict = new Promise<boolean>(resolve => { settle = resolve })
    const ms = this.#i.probationMs ?? PROBATION_MS
    const timer = setTimeout(() => {
      // Its certificate may have come another way meanwhile (the catch-up request carries it).
      if (this.#i.membership.isMember(peer) && this.#i.membership.mayConnect(peer)) this.#settle(peer, true)
      else this.#fail(peer, 'timeout', `presented no certificate within ${ms} ms`)
    }, ms)
    timer.unref?.()
    this.#probation.set(peer, { verdict, settle, timer })
  }

  #settle (peer: string, ok: boolean): void {
    const p = this.#probation.get(peer)
    if (p == null) return
    clearTimeout(p.timer)
    this.#probation.delete(peer)
    p.settle(ok)
  }

  /** Hangs up on a peer on probation, logged once an hour per peer with the reason. */
  #fail (peer: string, reason: ProbationFailure, message: string): void {
    this.#settle(peer, false)
    if (this.#refusedAt.size >= 1000) this.#refusedAt.delete(this.#refusedAt.keys().next().value as string)
    this.#refusedAt.set(peer, Date.now())
    const addr = this.#i.libp2p.getConnections().find(c => c.remotePeer.toString() === peer)?.remoteAddr.toString()
    if (this.#logged.due(peer)) {
      this.#log.warn({ peer, addr, reason, error: message, nextLogInMs: LOG_ONCE_PER_MS }, `hung up on a peer on probation: ${message} (logged once an hour per peer)`)
    }
    this.#i.libp2p.hangUp(peerIdFromString(peer)).catch(() => {})
  }

  /** The dialing half: sends our certificate, reads theirs. */
  async #introduce (connection: Connection): Promise<void> {
    const signal = AbortSignal.any([this.#controller.signal, AbortSignal.timeout(this.#i.probationMs ?? PROBATION_MS)])
    let stream: Stream | undefined
    try {
      stream = await connection.newStream(this.protocol, { signal })
      const lp = lpStream(stream, { maxDataLength: MAX_CERTIFICATE_BYTES })
      await lp.write(this.#i.membership.own() ?? new Uint8Array(), { signal })
      const theirs = (await lp.read({ signal })).subarray()
      await stream.close({ signal })
      await this.#consider(connection.remotePeer.toString(), theirs)
    } catch (err) {
      stream?.abort(err as Error)
      this.#log.debug({ peer: connection.remotePeer.toString(), error: describeError(err) }, 'introduction failed')
    }
  }

  /** The answering half: reads their certificate, sends ours. */
  async #exchange (stream: Stream, connection: Connection): Promise<void> {
    const signal = AbortSignal.any([this.#controller.signal, AbortSignal.timeout(this.#i.probationMs ?? PROBATION_MS)])
    const lp = lpStream(stream, { maxDataLength: MAX_CERTIFICATE_BYTES })
    try {
      const theirs = (await lp.read({ signal })).subarray()
      await lp.write(this.#i.membership.own() ?? new Uint8Array(), { signal })
      await stream.close({ signal })
      await this.#consider(connection.remotePeer.toString(), theirs)
    } catch (err) {
      stream.abort(err as Error)
      this.#log.debug({ peer: connection.remotePeer.toString(), error: describeError(err) }, 'introduction failed')
    }
  }

  /** Judges what a peer presented as its own certificate. */
  async #consider (peer: string, bytes: Uint8Array): Promise<void> {
    const identity = this.#identity()
    if (identity == null) return
    // A known member presenting a stale or odd certificate keeps its standing; anyone else is
    // judged (on probation, or whose connection is already closing).
    const judged = !this.#i.membership.isMember(peer)
    if (bytes.byteLength === 0) {
      if (judged) this.#fail(peer, 'no-certificate', 'it presented no certificate of this mesh')
      return
    }
    let presented: string
    try {
      presented = (await verifyCertificate(bytes, identity)).peer
    } catch (err) {
      if (!(err instanceof CertificateError)) throw err
      if (judged) this.#fail(peer, err.reason, err.message)
      else this.#log.debug({ peer, reason: err.reason, error: err.message }, 'a member presented a certificate that does not verify')
      return
    }
    if (presented !== peer) {
      if (judged) this.#fail(peer, 'certificate-of-another-peer', `it presented the certificate of ${presented}, not its own`)
      return
    }
    await this.#i.membership.learn(bytes)
    if (!this.#i.membership.isMember(peer)) { this.#fail(peer, 'refused', 'its certificate was refused (see the log line before)'); return }
    if (!this.#probation.has(peer)) return
    if (!this.#i.membership.mayConnect(peer)) { this.#fail(peer, 'connect-rules', 'the peering file\'s connect rules exclude it (site or peer ID)'); return }
    this.#log.info({ peer }, 'a new member presented its certificate')
    this.#settle(peer, true)
  }
}
