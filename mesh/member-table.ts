// Who this node counts as a member, one row each, for operators (`/-/mesh/status` `members`,
// `akmesh peers list`): members known by certificate, peers known only through the peering
// file's allow list, and this node; with connected or not and the last manifest seen of each.
// Pure: the node and the CLI gather the inputs (live, or from the data directory) and call it.
import type { Certificate } from './certificates.ts'

/** `member`: valid certificate; `expiring`: valid, expires within 14 days; `expired`; `revoked`
 *  (set by revocation, see stateOf); `allowlist`: no certificate, counted through `allow`;
 *  `self`: this node without a certificate (its own manifests always count here). */
export type MemberState = 'member' | 'expiring' | 'expired' | 'revoked' | 'allowlist' | 'self'

/** What Membership.members() reports of a member known by certificate. */
export interface CertifiedMember {
  peer: string
  site: string
  publish: string[]
  expires: string
  expired: boolean
  expiring: boolean
  /** Set when the root revoked the certificate (any truthy value: revoked). */
  revoked?: unknown
}

/** An origin's newest manifest held (ISO times). */
export interface LastManifestSeen { seq: number, timestamp: string, receivedAt: string }

export interface MemberRow {
  peer: string
  /** This node. */
  self: boolean
  /** null: known only through the allow list. */
  site: string | null
  /** The certificate's grants; null without a certificate (an allow-listed peer may change every repository). */
  publish: string[] | null
  expires: string | null
  expired: boolean
  expiring: boolean
  state: MemberState
  /** null: unknown (no node runs on the data directory), or this node. */
  connected: boolean | null
  lastManifest: LastManifestSeen | null
  revoked?: unknown
}

export interface MemberWarning {
  peer: string
  site: string
  self: boolean
  kind: 'expiring' | 'expired' | 'revoked'
  expires: string
  message: string
}

export interface MemberTableInput {
  mesh: string
  /** This node's peer ID (undefined: the data directory has no identity yet). */
  self?: string
  members: CertifiedMember[]
  allow: string[]
  /** Peer IDs connected now; undefined when no node runs. */
  connected?: ReadonlySet<string>
  lastSeen: (origin: string) => { seq: number, timestamp: number, receivedAt: number } | undefined
  /** This node's certificate file, decoded but not verified: shown when Membership dropped it
   *  (an expired certificate is refused at load, yet the operator must hear about it). */
  own?: Certificate
  now?: number
}

const DAY_MS = 86_400_000
const EXPIRING_MS = 14 * DAY_MS

/** Where revocation decides first: a revoked certificate is `revoked`, whatever its expiry. */
function stateOf (m: CertifiedMember): MemberState {
  if (m.revoked != null && m.revoked !== false) return 'revoked'
  if (m.expired) return 'expired'
  return m.expiring ? 'expiring' : 'member'
}

export function memberTable (input: MemberTableInput): MemberRow[] {
  const now = input.now ?? Date.now()
  const connected = (peer: string): boolean | null => peer === input.self ? null : input.connected == null ? null : input.connected.has(peer)
  const lastManifest = (peer: string): LastManifestSeen | null => {
    const m = input.lastSeen(peer)
    return m == null ? null : { seq: m.seq, timestamp: new Date(m.timestamp).toISOString(), receivedAt: new Date(m.receivedAt).toISOString() }
  }
  const rows = new Map<string, MemberRow>()
  for (const m of input.members) {
    rows.set(m.peer, {
      peer: m.peer, self: m.peer === input.self, site: m.site, publish: m.publish, expires: m.expires, expired: m.expired, expiring: m.expiring,
      state: stateOf(m), connected: connected(m.peer), lastManifest: lastManifest(m.peer), ...(m.revoked !== undefined ? { revoked: m.revoked } : {})
    })
  }
  const uncertified = (peer: string, state: MemberState): MemberRow =>
    ({ peer, self: peer === input.self, site: null, publish: null, expires: null, expired: false, expiring: false, state, connected: connected(peer), lastManifest: lastManifest(peer) })
  if (input.self != null && !rows.has(input.self)) {
    const own = input.own?.peer === input.self ? input.own : undefined
    if (own != null) {
      const member: CertifiedMember = { peer: own.peer, site: own.site, publish: own.publish, expires: new Date(own.expires).toISOString(), expired: own.expires <= now, expiring: own.expires > now && own.expires - now < EXPIRING_MS }
      rows.set(input.self, { ...uncertified(input.self, stateOf(member)), ...member })
    } else {
      rows.set(input.self, uncertified(input.self, 'self'))
    }
  }
  for (const peer of input.allow) if (peer !== '*' && !rows.has(peer)) rows.set(peer, uncertified(peer, 'allowlist'))
  // `allow: ["*"]` lets anyone in: the peers connected now are the ones it admits.
  if (input.allow.includes('*')) for (const peer of input.connected ?? []) if (!rows.has(peer)) rows.set(peer, uncertified(peer, 'allowlist'))
  return [...rows.values()].sort((a, b) => Number(b.self) - Number(a.self) || (a.site ?? '\uffff').localeCompare(b.site ?? '\uffff') || a.peer.localeCompare(b.peer))
}

/** A warning per certificate that expires within 14 days, has expired or was revoked; each
 *  says which commands renew it. */
export function memberWarnings (rows: MemberRow[], mesh: string, now = Date.now()): MemberWarning[] {
  const out: MemberWarning[] = []
  for (const r of rows) {
    if (r.site == null || r.expires == null || r.publish == null) continue
    const kind = r.state === 'revoked' ? 'revoked' : r.state === 'expired' ? 'expired' : r.state === 'expiring' ? 'expiring' : undefined
    if (kind == null) continue
    const days = Math.ceil((Date.parse(r.expires) - now) / DAY_MS)
    const when = kind === 'revoked' ? 'was revoked' : kind === 'expired' ? `expired ${r.expires}` : `expires ${r.expires} (in ${days} day${days === 1 ? '' : 's'})`
    const file = `${r.site}.cert`
    const invite = `akmesh mesh invite --name ${mesh} --peer ${r.peer} --site ${r.site}${r.publish.includes('*') ? '' : ` --publish ${r.publish.join(',')}`} -o ${file}`
    const message = kind === 'revoked'
      ? `the certificate of ${r.self ? 'this node' : r.peer} (site ${r.site}) was revoked: its manifests no longer count`
      : r.self
        ? `this node's certificate (site ${r.site}) ${when}; renew it where the mesh root key is kept: ${invite}, then on this node: akmesh mesh join ${file} and restart the node`
        : `the certificate of ${r.peer} (site ${r.site}) ${when}; renew it where the mesh root key is kept: ${invite}, and have that site run akmesh mesh join ${file}`
    out.push({ peer: r.peer, site: r.site, self: r.self, kind, expires: r.expires, message })
  }
  return out
}
