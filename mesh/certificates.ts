// Mesh membership by certificate (mesh/README.md, "Membership"): a mesh has a root key (kept
// offline), and the root signs one certificate per member binding its peer ID to a site name,
// the repositories its manifests may change and an expiry. Certificates are signed envelopes
// like manifests (same dag-cbor envelope, same Ed25519 primitives), so any node checks one with
// nothing but the mesh root public key.
import * as dagCbor from '@ipld/dag-cbor'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import { readFile, stat } from 'node:fs/promises'
import { writeFileAtomic } from '../config/atomic-file.ts'
import { decodeEnvelope, signEnvelope, signedBy } from './manifest.ts'

/** A member certificate's payload (dag-cbor map, deterministic). `root` is the root public key
 *  written as the Ed25519 peer ID it derives, so signedBy checks it like a manifest's origin. */
export interface Certificate {
  v: 1
  type: 'akmesh/member'
  mesh: string
  root: string
  peer: string
  site: string
  /** Repositories the member's manifests may change; ['*'] is all. */
  publish: string[]
  issued: number
  expires: number
}

/** A mesh's identity: name plus root public key. Two meshes with one name and two roots never mix. */
export interface MeshIdentity { mesh: string, root: string }

export type CertificateRejection = 'undecodable' | 'malformed' | 'wrong-mesh' | 'wrong-root' | 'bad-signature' | 'expired' | 'not-yet-valid'

export class CertificateError extends Error {
  readonly reason: CertificateRejection
  constructor (reason: CertificateRejection, message: string) {
    super(message)
    this.name = 'CertificateError'
    this.reason = reason
  }
}

/** Certificates are small; a peer cannot make us decode more. */
export const MAX_CERTIFICATE_BYTES = 16 * 1024
const MAX_GRANTS = 1024
const CERT_KEYS = ['v', 'type', 'mesh', 'root', 'peer', 'site', 'publish', 'issued', 'expires']

/** Creates the root key file (mode 0600, refuses to overwrite); returns the mesh identity. */
export async function createRootKey (file: string, mesh: string): Promise<MeshIdentity & { file: string }> {
  const exists = await stat(file).then(() => true, () => false)
  if (exists) throw new Error(`${file} already exists: a mesh root key is never overwritten (move it away first)`)
  const key = await generateKeyPair('Ed25519')
  await writeFileAtomic(file, privateKeyToProtobuf(key), 0o600)
  return { mesh, root: peerIdFromPrivateKey(key).toString(), file }
}

export async function loadRootKey (file: string): Promise<PrivateKey> {
  const bytes = await readFile(file).catch((e: any) => { throw new Error(`${file}: cannot read the mesh root key (${e.code ?? e.message})`) })
  let key: PrivateKey
  try { key = privateKeyFromProtobuf(bytes) } catch (e: any) { throw new Error(`${file}: not a libp2p private key (${e.message})`) }
  if (key.type !== 'Ed25519') throw new Error(`${file}: expected an Ed25519 key, got ${key.type}`)
  const { mode } = await stat(file)
  if ((mode & 0o077) !== 0) throw new Error(`${file}: mode ${(mode & 0o777).toString(8)} lets other users read the mesh root key; run chmod 600 ${file}`)
  return key
}

export function rootOf (key: PrivateKey): string { return peerIdFromPrivateKey(key).toString() }

export interface InviteOptions {
  mesh: string
  peer: string
  site: string
  publish?: string[]
  /** Validity from now, ms. */
  validForMs: number
  now?: number
}

/** Signs a member certificate with the root key; returns the envelope bytes (what travels). */
export async function issueCertificate (rootKey: PrivateKey, opts: InviteOptions): Promise<Uint8Array> {
  const now = opts.now ?? Date.now()
  const cert: Certificate = {
    v: 1,
    type: 'akmesh/member',
    mesh: opts.mesh,
    root: rootOf(rootKey),
    peer: opts.peer,
    site: opts.site,
    publish: opts.publish != null && opts.publish.length > 0 ? [...new Set(opts.publish)].sort() : ['*'],
    issued: now,
    expires: now + opts.validForMs
  }
  validateCertificate(cert) // never sign what receivers would refuse
  return await signEnvelope(dagCbor.encode(cert), rootKey)
}

/** Decodes an envelope and checks its payload's shape, not its trust (for display and routing). */
export function decodeCertificate (bytes: Uint8Array): Certificate {
  if (bytes.byteLength > MAX_CERTIFICATE_BYTES) throw new CertificateError('undecodable', `certificate of ${bytes.byteLength} bytes exceeds ${MAX_CERTIFICATE_BYTES}`)
  let payload: unknown
  try { payload = dagCbor.decode(decodeEnvelope(bytes).payload) } catch (e: any) { throw new CertificateError('undecodable', `undecodable certificate: ${e.message}`) }
  return validateCertificate(payload)
}

/** Verifies a certificate against this mesh's identity and the clock; throws CertificateError. */
export async function verifyCertificate (bytes: Uint8Array, mesh: MeshIdentity, now = Date.now()): Promise<Certificate> {
  const cert = decodeCertificate(bytes)
  if (cert.mesh !== mesh.mesh) throw new CertificateError('wrong-mesh', `certificate of mesh "${cert.mesh}", not "${mesh.mesh}"`)
  if (cert.root !== mesh.root) throw new CertificateError('wrong-root', `certificate signed for mesh root ${cert.root}, not this mesh's root ${mesh.root}`)
  const { payload, signature } = decodeEnvelope(bytes)
  if (!await signedBy(mesh.root, payload, signature)) throw new CertificateError('bad-signature', `certificate of ${cert.peer} is not signed by the mesh root ${mesh.root}`)
  if (cert.expires <= now) throw new CertificateError('expired', `certificate of ${cert.peer} (site ${cert.site}) expired ${new Date(cert.expires).toISOString()}`)
  if (cert.issued > now + 10 * 60 * 1000) throw new CertificateError('not-yet-valid', `certificate of ${cert.peer} is issued ${new Date(cert.issued).toISOString()}, in the future`)
  return cert
}

/** Do the certificate's grants let its holder change `repo`? */
export function grantsCover (cert: Pick<Certificate, 'publish'>, repo: string): boolean {
  return cert.publish.includes('*') || cert.publish.includes(repo)
}

function validateCertificate (x: unknown): Certificate {
  const bad = (field: string, want: string): never => { throw new CertificateError('malformed', `certificate field ${field}: expected ${want}`) }
  if (typeof x !== 'object' || x === null || Array.isArray(x) || x instanceof Uint8Array) return bad('(root)', 'a map')
  const c = x as Record<string, unknown>
  const keys = Object.keys(c)
  if (keys.length !== CERT_KEYS.length || !CERT_KEYS.every(k => Object.hasOwn(c, k))) bad('(keys)', `exactly ${CERT_KEYS.join(', ')}`)
  if (c.v !== 1) bad('v', '1')
  if (c.type !== 'akmesh/member') bad('type', 'akmesh/member')
  if (!text(c.mesh, 1, 64)) bad('mesh', 'a string of 1-64 characters')
  if (!isEd25519PeerId(c.root)) bad('root', 'an Ed25519 peer ID (the root public key)')
  if (!isEd25519PeerId(c.peer)) bad('peer', 'an Ed25519 peer ID')
  if (!text(c.site, 1, 256)) bad('site', 'a string of 1-256 characters')
  if (!Array.isArray(c.publish) || c.publish.length === 0 || c.publish.length > MAX_GRANTS || !c.publish.every(r => text(r, 1, 256))) bad('publish', `1-${MAX_GRANTS} repository names or "*"`)
  if (!Number.isSafeInteger(c.issued) || (c.issued as number) < 0) bad('issued', 'a non-negative integer (ms)')
  if (!Number.isSafeInteger(c.expires) || (c.expires as number) <= (c.issued as number)) bad('expires', 'an integer (ms) after issued')
  return c as unknown as Certificate
}

const text = (x: unknown, min: number, max: number): x is string => typeof x === 'string' && x.length >= min && x.length <= max

function isEd25519PeerId (x: unknown): x is string {
  if (typeof x !== 'string' || x.length > 128) return false
  try { return peerIdFromString(x).type === 'Ed25519' } catch { return false }
}

/** Parses a validity such as 1y, 90d, 12h, 30m into ms. */
export function parseValidity (s: string): number {
  const m = /^(\d+)\s*(y|d|h|m)$/.exec(s.trim())
  if (m == null || Number(m[1]) <= 0) throw new Error(`expected a validity such as 1y, 90d, 12h or 30m; got "${s}"`)
  const unit = { y: 365 * 86_400_000, d: 86_400_000, h: 3_600_000, m: 60_000 }[m[2] as 'y' | 'd' | 'h' | 'm']
  return Number(m[1]) * unit
}
