// Revocation of a member (mesh/README.md, "Membership"): the root signs, offline, that the
// manifests a peer signs from a time on (or all of them) no longer count. A revocation is the same
// signed envelope as a certificate, so any node checks it with nothing but the mesh root public key,
// and it travels the way certificates and manifests do: gossip, catch-up, bundles.
import * as dagCbor from '@ipld/dag-cbor'
import { peerIdFromString } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import { rootOf, type MeshIdentity } from './certificates.ts'
import { decodeEnvelope, signEnvelope, signedBy } from './manifest.ts'

export const REVOCATION_TYPE = 'akmesh/revoke'

/** A revocation's payload (deterministic dag-cbor map). Manifests of `peer` whose timestamp is at
 *  or after `at` are refused; with `all`, every manifest of `peer` is. */
export interface Revocation {
  v: 1
  type: typeof REVOCATION_TYPE
  mesh: string
  root: string
  peer: string
  at: number
  all: boolean
  issued: number
}

export type RevocationRejection = 'undecodable' | 'malformed' | 'wrong-mesh' | 'wrong-root' | 'bad-signature' | 'no-root'

export class RevocationError extends Error {
  readonly reason: RevocationRejection
  constructor (reason: RevocationRejection, message: string) {
    super(message)
    this.name = 'RevocationError'
    this.reason = reason
  }
}

/** Revocations are tiny; a peer cannot make us decode more. */
export const MAX_REVOCATION_BYTES = 4 * 1024
const KEYS = ['v', 'type', 'mesh', 'root', 'peer', 'at', 'all', 'issued']

export interface RevokeOptions {
  mesh: string
  peer: string
  /** ms; default now. */
  at?: number
  all?: boolean
  now?: number
}

/** Signs a revocation with the root key; returns the envelope bytes (what travels). */
export async function issueRevocation (rootKey: PrivateKey, opts: RevokeOptions): Promise<Uint8Array> {
  const now = opts.now ?? Date.now()
  const r: Revocation = { v: 1, type: REVOCATION_TYPE, mesh: opts.mesh, root: rootOf(rootKey), peer: opts.peer, at: opts.at ?? now, all: opts.all === true, issued: now }
  validateRevocation(r) // never sign what receivers would refuse
  return await signEnvelope(dagCbor.encode(r), rootKey)
}

/** Decodes an envelope and checks its payload's shape, not its trust. */
export function decodeRevocation (bytes: Uint8Array): Revocation {
  if (bytes.byteLength > MAX_REVOCATION_BYTES) throw new RevocationError('undecodable', `revocation of ${bytes.byteLength} bytes exceeds ${MAX_REVOCATION_BYTES}`)
  let payload: unknown
  try { payload = dagCbor.decode(decodeEnvelope(bytes).payload) } catch (e: any) { throw new RevocationError('undecodable', `undecodable revocation: ${e.message}`) }
  return validateRevocation(payload)
}

/** Verifies a revocation against this mesh's identity; throws RevocationError. Revocations do not
 *  expire: one signed by the root is final. */
export async function verifyRevocation (bytes: Uint8Array, mesh: MeshIdentity): Promise<Revocation> {
  const r = decodeRevocation(bytes)
  if (r.mesh !== mesh.mesh) throw new RevocationError('wrong-mesh', `revocation of mesh "${r.mesh}", not "${mesh.mesh}"`)
  if (r.root !== mesh.root) throw new RevocationError('wrong-root', `revocation signed for mesh root ${r.root}, not this mesh's root ${mesh.root}`)
  const { payload, signature } = decodeEnvelope(bytes)
  if (!await signedBy(mesh.root, payload, signature)) throw new RevocationError('bad-signature', `revocation of ${r.peer} is not signed by the mesh root ${mesh.root}`)
  return r
}

/** Is this envelope a revocation (rather than a manifest)? Gossip carries both on one topic; only
 *  small envelopes are decoded to find out. */
export function isRevocationEnvelope (bytes: Uint8Array): boolean {
  if (bytes.byteLength > MAX_REVOCATION_BYTES) return false
  try {
    const payload = dagCbor.decode<unknown>(decodeEnvelope(bytes).payload)
    return typeof payload === 'object' && payload !== null && (payload as { type?: unknown }).type === REVOCATION_TYPE
  } catch { return false }
}

/** Does the revocation refuse a manifest signed (timestamped) at `signedAt`? */
export const revokes = (r: Pick<Revocation, 'at' | 'all'>, signedAt: number): boolean => r.all || signedAt >= r.at

/** Of two revocations of one peer, the one that refuses more (all, else the earlier time). */
export function stricter<T extends Pick<Revocation, 'at' | 'all'>> (a: T, b: T): T {
  if (a.all !== b.all) return a.all ? a : b
  return b.at < a.at ? b : a
}

/** A revocation for people: what it refuses. */
export const describeRevocation = (r: Pick<Revocation, 'at' | 'all'>): string =>
  r.all ? 'revoked: every manifest it signed is refused' : `revoked from ${new Date(r.at).toISOString()}: manifests it signed since are refused`

function validateRevocation (x: unknown): Revocation {
  const bad = (field: string, want: string): never => { throw new RevocationError('malformed', `revocation field ${field}: expected ${want}`) }
  if (typeof x !== 'object' || x === null || Array.isArray(x) || x instanceof Uint8Array) return bad('(root)', 'a map')
  const r = x as Record<string, unknown>
  const keys = Object.keys(r)
  if (keys.length !== KEYS.length || !KEYS.every(k => Object.hasOwn(r, k))) bad('(keys)', `exactly ${KEYS.join(', ')}`)
  if (r.v !== 1) bad('v', '1')
  if (r.type !== REVOCATION_TYPE) bad('type', REVOCATION_TYPE)
  if (typeof r.mesh !== 'string' || r.mesh.length < 1 || r.mesh.length > 64) bad('mesh', 'a string of 1-64 characters')
  if (!isEd25519PeerId(r.root)) bad('root', 'an Ed25519 peer ID (the root public key)')
  if (!isEd25519PeerId(r.peer)) bad('peer', 'an Ed25519 peer ID')
  if (!Number.isSafeInteger(r.at) || (r.at as number) < 0) bad('at', 'a non-negative integer (ms)')
  if (typeof r.all !== 'boolean') bad('all', 'a boolean')
  if (!Number.isSafeInteger(r.issued) || (r.issued as number) < 0) bad('issued', 'a non-negative integer (ms)')
  return r as unknown as Revocation
}

function isEd25519PeerId (x: unknown): x is string {
  if (typeof x !== 'string' || x.length > 128) return false
  try { return peerIdFromString(x).type === 'Ed25519' } catch { return false }
}
