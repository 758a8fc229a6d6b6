// Artifact lookup: `/akmesh/<mesh>/lookup/1.0.0`, one request per stream. A node about to fetch
// something from outside the mesh (a remote repository's upstream) first asks its connected
// peers for the signed manifests they hold of that one artifact version, so bytes another site
// already fetched come over the mesh even when gossip and catch-up have not brought the manifest
// yet (both sites install at once, a node just restarted). The request is a JSON
// `{ repo, name, version }`; the answer a JSON head `{ count, certificates? }` then `count`
// envelope frames (framed like mesh/sync.ts). The answer holds only what catch-up would also send
// that member (every manifest held of that version), and the asker applies it through the same
// receiver as catch-up: verified, admitted and applied, or refused. Members only (the guard).
import type { Connection, PeerId, Stream, StreamHandler } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import type { Logger } from 'pino'
import type { ManifestLog } from '../store/manifests.ts'
import type { PeerLookup } from '../store/types.ts'
import { describeError } from './errors.ts'
import type { MeshLibp2p } from './libp2p.ts'
import { MAX_ENVELOPE_BYTES } from './manifest.ts'
import type { SyncReceiver } from './sync.ts'

export const lookupProtocol = (mesh: string): string => `/akmesh/${mesh}/lookup/1.0.0`

/** Manifests of one version in an answer: a publish, a few tag moves or replaces, a delete. */
export const MAX_ANSWER_MANIFESTS = 32
/** How long a lookup waits for its peers: past it, the asker goes upstream as it would alone. */
export const LOOKUP_WAIT_MS = 3_000
/** Repository, name and version are short strings; anything longer is not a lookup. */
const MAX_REQUEST = 16 * 1024
/** Certificates taken from one answer (one per origin, each ≤ 16 KiB). */
const MAX_CERTIFICATES = MAX_ANSWER_MANIFESTS

/** How long an asker waits for a peer that is fetching the artifact from outside the mesh. */
export const PENDING_WAIT_MS = 60_000
/** A peer still asking the mesh itself: asked again this often, within the lookup's bound. */
const LOOKING_RETRY_MS = 50
/** After its fetch ended, how long the answerer waits for the signer's manifest of it. */
const SIGNED_WAIT_MS = 2_000

interface LookupRequest { repo: string, name: string, version: string }
/** `pending`: the answerer is fetching it now; a second head follows when that ends.
 *  `looking`: the answerer is asking the mesh for it too (nothing held). */
interface LookupHead { count: number, certificates?: string[], pending?: true, looking?: true }

/** What this node is doing about an artifact now (protocols/shared/remote/content-progress.ts,
 *  passed in by node/): asking the mesh, or fetching it (settles when the fetch ends). */
export type ArtifactProgress = (repo: string, name: string, version: string) => 'looking' | Promise<void> | undefined

const enc = (v: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(v))
const dec = (b: Uint8Array): any => JSON.parse(new TextDecoder().decode(b))

export interface LookupInit {
  libp2p: MeshLibp2p
  mesh: string
  manifests: ManifestLog
  /** Applies what an answer brings (Replication: the same checks as catch-up). */
  receiver: SyncReceiver
  /** Member certificates of the answer's origins travel with it, as in catch-up. */
  certificates: { certificates: (peers: Iterable<string>) => Uint8Array[], learn: (bytes: Uint8Array) => Promise<unknown> }
  /** Wraps the handler so only members are answered (mesh.introductions.membersOnly). */
  guard: (handler: StreamHandler) => StreamHandler
  progress?: ArtifactProgress
  log: Logger
  waitMs?: number
}

export class ArtifactLookup implements PeerLookup {
  readonly protocol: string
  readonly #i: LookupInit
  readonly #log: Logger
  readonly #controller = new AbortController()

  constructor (init: LookupInit) {
    this.#i = init
    this.protocol = lookupProtocol(init.mesh)
    this.#log = init.log.child({ component: 'mesh:lookup' })
  }

  async start (): Promise<void> {
    await this.#i.libp2p.handle(this.protocol, this.#i.guard(async (stream: Stream, connection: Connection) => {
      await this.#serve(stream, connection)
    }), { maxInboundStreams: 32, runOnLimitedConnection: false })
  }

  async stop (): Promise<void> {
    this.#controller.abort()
    await this.#i.libp2p.unhandle(this.protocol).catch(() => {})
  }

  async find (repo: string, name: string, version: string, held: () => boolean, signal?: AbortSignal): Promise<boolean> {
    if (held()) return true
    const peers = this.#i.libp2p.getPeers()
    if (peers.length === 0 || this.#controller.signal.aborted) return false
    const settled = new AbortController()
    const bounded = AbortSignal.any([settled.signal, this.#controller.signal, ...(signal != null ? [signal] : [])])
    try {
      // The first peer whose answer makes the artifact held here wins; the others are cut off.
      return await firstTrue(peers.map(async peer => await this.#ask(peer, { repo, name, version }, held, bounded)))
    } finally {
      settled.abort()
    }
  }

  async #ask (peer: PeerId, req: LookupRequest, held: () => boolean, signal: AbortSignal): Promise<boolean> {
    const from = peer.toString()
    const deadline = Date.now() + (this.#i.waitMs ?? LOOKUP_WAIT_MS)
    try {
      let answer = await this.#request(peer, req, signal, deadline)
      // Both asking at once: the lower peer ID goes upstream, the other waits for its fetch.
      while (answer.looking && from < this.#i.libp2p.peerId.toString() && Date.now() + LOOKING_RETRY_MS < deadline) {
        await new Promise(resolve => setTimeout(resolve, LOOKING_RETRY_MS))
        answer = await this.#request(peer, req, signal, deadline)
      }
      const { envelopes, certificates } = answer
      for (const c of certificates) {
        try { await this.#i.certificates.learn(c) } catch (err) { this.#log.debug({ peer: from, error: describeError(err) }, 'could not keep a member certificate') }
      }
      if (envelopes.length === 0) return false
      await this.#i.receiver.receiveMany(envelopes, { via: 'lookup', peer: from })
      return held()
    } catch (err) {
      // A peer that is gone, slow or does not speak the protocol only means "not from it".
      if (!signal.aborted) this.#log.debug({ peer: from, ...req, error: describeError(err) }, 'lookup failed')
      return false
    }
  }

  async #request (peer: PeerId, req: LookupRequest, base: AbortSignal, deadline: number): Promise<{ envelopes: Uint8Array[], certificates: Uint8Array[], looking: boolean }> {
    let stream: Stream | undefined
    let signal = AbortSignal.any([base, AbortSignal.timeout(Math.max(1, deadline - Date.now()))])
    try {
      stream = await this.#i.libp2p.dialProtocol(peer, this.protocol, { signal })
      const lp = lpStream(stream, { maxDataLength: MAX_ENVELOPE_BYTES })
      await lp.write(enc(req), { signal })
      let head = dec((await lp.read({ signal })).subarray()) as LookupHead
      if (head?.pending === true) {
        // The peer is fetching it: its copy, once fetched, beats a second upstream fetch.
        signal = AbortSignal.any([base, AbortSignal.timeout(PENDING_WAIT_MS)])
        head = dec((await lp.read({ signal })).subarray()) as LookupHead
      }
      if (!Number.isSafeInteger(head?.count) || head.count < 0 || head.count > MAX_ANSWER_MANIFESTS) throw new Error('malformed lookup answer')
      const envelopes: Uint8Array[] = []
      for (let k = 0; k < head.count; k++) envelopes.push((await lp.read({ signal })).subarray())
      await stream.close({ signal })
      const certificates = Array.isArray(head.certificates)
        ? head.certificates.slice(0, MAX_CERTIFICATES).filter((x): x is string => typeof x === 'string').map(x => new Uint8Array(Buffer.from(x, 'base64')))
        : []
      return { envelopes, certificates, looking: head.looking === true }
    } catch (err) {
      stream?.abort(err as Error)
      throw err
    }
  }

  /** The version's manifests once the signer has signed the fetch just ended (more than
   *  `before` of them), or what is held after a short wait (a failed fetch signs nothing). */
  async #signed (repo: string, name: string, version: string, before: number, signal: AbortSignal): Promise<ReturnType<ManifestLog['forVersion']>> {
    const until = Date.now() + SIGNED_WAIT_MS
    for (;;) {
      const held = this.#i.manifests.forVersion(repo, name, version, MAX_ANSWER_MANIFESTS)
      if (held.length > before || Date.now() > until || signal.aborted) return held
      await new Promise(resolve => setTimeout(resolve, 20))
    }
  }

  async #serve (stream: Stream, connection: Connection): Promise<void> {
    const signal = AbortSignal.any([this.#controller.signal, AbortSignal.timeout(PENDING_WAIT_MS + 10_000)])
    const lp = lpStream(stream, { maxDataLength: MAX_REQUEST })
    try {
      const req = dec((await lp.read({ signal })).subarray()) as Partial<LookupRequest>
      if (typeof req?.repo !== 'string' || typeof req.name !== 'string' || typeof req.version !== 'string') throw new Error('malformed lookup request')
      const { repo, name, version } = req
      const phase = this.#i.progress?.(repo, name, version)
      let held = this.#i.manifests.forVersion(repo, name, version, MAX_ANSWER_MANIFESTS)
      if (phase instanceof Promise) {
        await lp.write(enc({ count: 0, pending: true } satisfies LookupHead), { signal })
        await Promise.race([phase, abortOf(signal)])
        held = await this.#signed(repo, name, version, held.length, signal)
      }
      const certificates = held.length === 0 ? [] : this.#i.certificates.certificates(new Set(held.map(m => m.origin)))
      const head: LookupHead = {
        count: held.length,
        ...(phase === 'looking' ? { looking: true } : {}),
        ...(certificates.length > 0 ? { certificates: certificates.slice(0, MAX_CERTIFICATES).map(c => Buffer.from(c).toString('base64')) } : {})
      }
      await lp.writeV([enc(head), ...held.map(m => m.envelope)], { signal })
      await stream.close({ signal })
    } catch (err: any) {
      this.#log.debug({ peer: connection.remotePeer.toString(), error: describeError(err) }, 'lookup request failed')
      stream.abort(err)
    }
  }
}

/** Resolves when `signal` aborts (never rejects). */
function abortOf (signal: AbortSignal): Promise<void> {
  return new Promise(resolve => { if (signal.aborted) resolve(); else signal.addEventListener('abort', () => { resolve() }, { once: true }) })
}

/** True as soon as one of `answers` is; false once all are false (none rejects). */
function firstTrue (answers: Array<Promise<boolean>>): Promise<boolean> {
  return new Promise(resolve => {
    let left = answers.length
    for (const a of answers) {
      void a.then(yes => {
        if (yes) resolve(true)
        else if (--left === 0) resolve(false)
      })
    }
  })
}
