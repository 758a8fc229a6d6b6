// The one answer to "whose manifests count here" (mesh/README.md, "Membership"): an origin is a
// member when it holds a valid certificate of this mesh (name + root public key) whose grants
// cover the repository, whoever relayed it; peer IDs in the peering file's `allow` list also count
// (migration from allowlists), with a log line recommending certificates.
import * as dagCbor from '@ipld/dag-cbor'
import type { Logger } from 'pino'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { writeFileAtomic } from '../config/atomic-file.ts'
import { isAllowed, type Peering } from '../config/peering-schema.ts'
import { CertificateError, grantsCover, verifyCertificate, type Certificate, type CertificateRejection } from './certificates.ts'
import { OncePer } from './once-per.ts'
import { RevocationStore, type LearnedRevocation } from './revocation-store.ts'
import { describeRevocation, revokes, type Revocation } from './revocations.ts'

/** This node's own certificate, installed by `akmesh mesh join`. */
export const OWN_CERTIFICATE_FILE = 'mesh-certificate.cbor'
/** Certificates learned from peers and bundles (a dag-cbor list of envelopes). */
export const KNOWN_CERTIFICATES_FILE = 'mesh-certificates.cbor'

/** Why a manifest's origin is refused (the rejection report's reason). */
export type MembershipRefusal = 'not-allowed' | 'outside-grants' | 'certificate-expired' | 'wrong-root' | 'revoked'
export interface Refusal { reason: MembershipRefusal, message: string }

/** When a manifest was signed (its timestamp: revocations refuse from a time on) and this node's clock. */
export interface AdmitTimes { signedAt?: number, now?: number }

/** A revocation for /-/mesh/status. */
export interface RevocationView { peer: string, site?: string, at: string, all: boolean, issued: string }

/** What verifiers need (mesh/manifest.ts, node/bundle/): a member? may it change this repo? */
export interface MembershipCheck {
  isMember (peer: string): boolean
  /** undefined: admitted. Without `signedAt`, a revoked origin is refused. */
  admit (origin: string, repo: string, times?: AdmitTimes): Refusal | undefined
  /** Verifies and keeps a certificate (bundles carry them). */
  learn?: (bytes: Uint8Array) => Promise<unknown>
  /** Verifies and keeps a revocation (bundles, catch-up, gossip, the admin API carry them);
   *  throws RevocationError when it does not verify. */
  learnRevocation?: (bytes: Uint8Array) => Promise<LearnedRevocation>
  /** The revocation envelopes held (to pass on). */
  revocations?: () => Uint8Array[]
  /** The revocations held, for people. */
  revoked?: () => RevocationView[]
  members?: () => unknown[]
}

export interface MembershipInit {
  dataDir: string
  self: string
  peering: () => Pick<Peering, 'mesh' | 'allow' | 'meshRoot' | 'connect' | 'certificateBytes'>
  log?: Logger
}

const ALLOWLIST_LOG_MS = 60 * 60_000
const EXPIRING_MS = 14 * 86_400_000

export class Membership implements MembershipCheck {
  readonly #i: MembershipInit
  /** Verified certificates by peer ID, with the envelope that proves each. */
  readonly #certs = new Map<string, { cert: Certificate, bytes: Uint8Array }>()
  /** The last refusal of a presented certificate per peer (reported for its manifests). */
  readonly #refused = new Map<string, CertificateError>()
  readonly #allowlistLog = new OncePer(ALLOWLIST_LOG_MS)
  readonly #revocations: RevocationStore

  constructor (init: MembershipInit) {
    this.#i = init
    this.#revocations = new RevocationStore(init.dataDir)
  }

  /** Loads this node's certificate and those learned before (unverifiable ones are dropped). */
  static async open (init: MembershipInit): Promise<Membership> {
    const m = new Membership(init)
    // The peering file may name the certificate file instead of the copy `mesh join` keeps.
    const own = init.peering().certificateBytes ?? await readOptional(join(init.dataDir, OWN_CERTIFICATE_FILE))
    if (own != null) {
      const cert = await m.learn(own, { persist: false })
      if (cert != null && cert.peer !== init.self) init.log?.error({ peer: cert.peer, self: init.self }, 'this node\'s member certificate names another peer: it counts for that peer only; install this node\'s own (akmesh mesh join)')
    }
    const known = await readOptional(join(init.dataDir, KNOWN_CERTIFICATES_FILE))
    if (known != null) {
      let list: unknown = []
      try { list = dagCbor.decode(known) } catch {}
      for (const bytes of Array.isArray(list) ? list : []) if (bytes instanceof Uint8Array) await m.learn(bytes, { persist: false })
    }
    await m.#revocations.load(m.#identity())
    return m
  }

  /** The mesh identity this node checks certificates against, if a root is configured. */
  #identity (): { mesh: string, root: string } | undefined {
    const p = this.#i.peering()
    return p.meshRoot != null ? { mesh: p.mesh, root: p.meshRoot } : undefined
  }

  /** Verifies and keeps a certificate (newer expiry wins); returns it, or undefined if refused. */
  async learn (bytes: Uint8Array, opts: { persist?: boolean } = {}): Promise<Certificate | undefined> {
    const id = this.#identity()
    if (id == null) return undefined
    // Every catch-up answer carries the certificates again: the same bytes, already verified
    // against this root, need no second signature check (about 12 ms per 1,000 manifests).
    const same = this.#sameAsHeld(bytes, id)
    if (same != null) return same
    let cert: Certificate
    try {
      cert = await verifyCertificate(bytes, id)
    } catch (err) {
      if (!(err instanceof CertificateError)) throw err
      let peer: string | undefined
      try { peer = (dagCbor.decode(dagCbor.decode<{ payload: Uint8Array }>(bytes).payload) as { peer?: unknown }).peer as string } catch {}
      if (typeof peer === 'string' && !this.#certs.has(peer)) this.#refused.set(peer, err)
      this.#i.log?.warn({ peer, reason: err.reason, error: err.message }, 'refused a member certificate')
      return undefined
    }
    const held = this.#certs.get(cert.peer)
    if (held != null && held.cert.expires >= cert.expires) return held.cert
    this.#certs.set(cert.peer, { cert, bytes })
    this.#refused.delete(cert.peer)
    if (opts.persist !== false) await this.#save()
    return cert
  }

  #sameAsHeld (bytes: Uint8Array, id: { mesh: string, root: string }, now = Date.now()): Certificate | undefined {
    let peer: unknown
    try { peer = (dagCbor.decode(dagCbor.decode<{ payload: Uint8Array }>(bytes).payload) as { peer?: unknown }).peer } catch { return undefined }
    const held = typeof peer === 'string' ? this.#certs.get(peer) : undefined
    if (held == null || held.cert.root !== id.root || held.cert.mesh !== id.mesh || held.cert.expires <= now) return undefined
    return equalBytes(held.bytes, bytes) ? held.cert : undefined
  }

  async #save (): Promise<void> {
    const list = [...this.#certs.values()].map(c => c.bytes)
    await writeFileAtomic(join(this.#i.dataDir, KNOWN_CERTIFICATES_FILE), dagCbor.encode(list))
  }

  /** The certificate envelopes this node holds (to pass on at connect, with catch-up, in bundles). */
  certificates (peers?: Iterable<string>): Uint8Array[] {
    if (peers == null) return [...this.#certs.values()].map(c => c.bytes)
    const out: Uint8Array[] = []
    for (const p of new Set(peers)) { const c = this.#certs.get(p); if (c != null) out.push(c.bytes) }
    return out
  }

  certificate (peer: string): Certificate | undefined { return this.#certs.get(peer)?.cert }

  /** Every member known by certificate, for /-/mesh/status (expiring: within 14 days; revoked:
   *  the revocation in force, if any). */
  members (now = Date.now()): Array<{ peer: string, site: string, publish: string[], expires: string, expired: boolean, expiring: boolean, revoked?: { at: string, all: boolean } }> {
    return [...this.#certs.values()].map(({ cert: c }) => {
      const r = this.#revocations.get(c.peer)
      return {
        peer: c.peer, site: c.site, publish: c.publish, expires: new Date(c.expires).toISOString(),
        expired: c.expires <= now, expiring: c.expires > now && c.expires - now < EXPIRING_MS,
        ...(r != null ? { revoked: { at: new Date(r.at).toISOString(), all: r.all } } : {})
      }
    })
  }

  /** Verifies and keeps a revocation of this mesh's root; throws RevocationError. */
  async learnRevocation (bytes: Uint8Array): Promise<LearnedRevocation> {
    const learned = await this.#revocations.learn(bytes, this.#identity())
    if (learned.fresh) {
      const r = learned.revocation
      this.#i.log?.warn({ peer: r.peer, at: new Date(r.at).toISOString(), all: r.all, self: r.peer === this.#i.self }, `member ${r.peer} ${describeRevocation(r)}`)
    }
    return learned
  }

  revocation (peer: string): Revocation | undefined { return this.#revocations.get(peer) }
  revocations (): Uint8Array[] { return this.#revocations.envelopes() }
  revoked (): RevocationView[] {
    return this.#revocations.list().map(r => {
      const site = this.#certs.get(r.peer)?.cert.site
      return { peer: r.peer, ...(site != null ? { site } : {}), at: new Date(r.at).toISOString(), all: r.all, issued: new Date(r.issued).toISOString() }
    })
  }

  /** This node's own certificate envelope (sent to every peer it catches up from). */
  own (): Uint8Array | undefined { return this.#certs.get(this.#i.self)?.bytes }

  isMember (peer: string, now = Date.now()): boolean {
    if (peer === this.#i.self) return true
    const c = this.#certs.get(peer)
    if (c != null && c.cert.expires > now) return true
    return this.#allowListed(peer)
  }

  /** Connection policy, separate from membership: a member, and the peering file's `connect`
   *  rules (`only`, `deny`: peer IDs or `site:<name>`) let it. */
  mayConnect (peer: string, now = Date.now()): boolean {
    if (peer === this.#i.self) return true
    if (!this.isMember(peer, now)) return false
    const rules = this.#i.peering().connect
    if (rules == null) return true
    const site = this.#certs.get(peer)?.cert.site
    const matches = (entry: string): boolean => entry === peer || (site != null && entry === `site:${site}`)
    if (rules.deny.some(matches)) return false
    return rules.only == null || rules.only.some(matches)
  }

  admit (origin: string, repo: string, times: AdmitTimes = {}): Refusal | undefined {
    if (origin === this.#i.self) return undefined
    const now = times.now ?? Date.now()
    // Before certificates and the allow list: neither undoes a revocation.
    const r = this.#revocations.get(origin)
    if (r != null && revokes(r, times.signedAt ?? now)) {
      const signed = times.signedAt != null ? `a manifest signed ${new Date(times.signedAt).toISOString()}` : 'its manifests'
      return { reason: 'revoked', message: `origin ${origin} is ${describeRevocation(r)} (revocation issued ${new Date(r.issued).toISOString()}); refused ${signed}` }
    }
    const c = this.#certs.get(origin)
    if (c != null) {
      if (c.cert.expires <= now) return { reason: 'certificate-expired', message: `origin ${origin} (site ${c.cert.site}): its certificate expired ${new Date(c.cert.expires).toISOString()}` }
      if (!grantsCover(c.cert, repo)) return { reason: 'outside-grants', message: `origin ${origin} (site ${c.cert.site}) may change ${c.cert.publish.join(', ')}, not repository ${repo}` }
      return undefined
    }
    if (this.#allowListed(origin)) return undefined
    const refused = this.#refused.get(origin)
    if (refused != null) return { reason: refusalOf(refused.reason), message: `origin ${origin} is not a member of this mesh: ${refused.message}` }
    return { reason: 'not-allowed', message: `origin ${origin} is not a member of this mesh` }
  }

  #allowListed (peer: string): boolean {
    const p = this.#i.peering()
    if (!isAllowed(p, peer)) return false
    if (p.meshRoot != null && this.#allowlistLog.due(peer)) {
      this.#i.log?.info({ peer }, 'peer counted as a member through the peering file\'s allow list; issue it a certificate (akmesh mesh invite) and drop the entry (logged once an hour per peer)')
    }
    return true
  }
}

function refusalOf (reason: CertificateRejection): MembershipRefusal {
  if (reason === 'expired') return 'certificate-expired'
  if (reason === 'wrong-root' || reason === 'wrong-mesh' || reason === 'bad-signature') return 'wrong-root'
  return 'not-allowed'
}

async function readOptional (file: string): Promise<Uint8Array | undefined> {
  try { return await readFile(file) } catch (e: any) {
    if (e.code === 'ENOENT') return undefined
    throw new Error(`${file}: cannot read (${e.code ?? e.message})`)
  }
}

function equalBytes (a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.compare(a, b) === 0
}
