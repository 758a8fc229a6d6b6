// Manifests: one signed record per change to a repository, in any format (mesh/README.md,
// "Manifests"). Encoded as deterministic dag-cbor; the envelope { payload, signature } is what
// travels and what the manifest log stores.
import * as dagCbor from '@ipld/dag-cbor'
import { peerIdFromString } from '@libp2p/peer-id'
import type { PayloadSigner } from './ed25519-signer.ts'
import { CHANGE_KINDS, type Change, type RemoteChange, type RemoteFile } from '../store/changes.ts'
import { parseBlobCid } from '../store/hash.ts'
import type { MembershipRefusal, Refusal } from './membership.ts'

export interface Manifest extends RemoteChange {
  v: 1
  mesh: string
}
export type ManifestFile = RemoteFile

/** Bounds on what a peer can make us decode and store. A manifest carries one version's files
 *  and its format's metadata (an npm version document is a few KiB), so 1 MiB is generous. */
export const MAX_ENVELOPE_BYTES = 1024 * 1024
const MAX_FILES = 10_000
const MAX_TEXT = 1024
const MAX_DEPTH = 64
const MAX_CHUNK_SIZE = 64 * 1024 * 1024

/** Receivers order changes by origin timestamps and keep their own clocks ahead of what they
 *  applied, so a manifest from far in the future is refused (for now: catch-up offers it again). */
export const MAX_CLOCK_SKEW_MS = 10 * 60 * 1000

export type ManifestRejection = 'too-large' | 'undecodable' | 'malformed' | 'wrong-mesh' | MembershipRefusal | 'bad-signature' | 'from-the-future'

export class ManifestError extends Error {
  readonly reason: ManifestRejection
  /** The origin the manifest claims, once its payload decoded (for reports, not trust). */
  origin?: string
  constructor (reason: ManifestRejection, message: string, origin?: string) {
    super(message)
    this.name = 'ManifestError'
    this.reason = reason
    if (origin != null) this.origin = origin
  }
}

/** Blob facts a manifest pins, whether or not the bytes are here (FileBlobStore fits). */
export interface BlobCatalog {
  describe (cid: string): { cid: string, size: number, sha256: string, sha512: string, sha1: string, md5: string | null, chunkSize: number } | undefined
  chunkRoot (cid: string): Promise<string>
  /** Computes and records digests a present blob was stored without (describe shows them as ''):
   *  a format may skip sha512/sha1, but a manifest names every digest. */
  completeDigests? (cid: string): Promise<unknown>
}

/** The manifest of a local change-log row. */
export async function buildManifest (change: Change, ctx: { mesh: string, origin: string, prev: number, format: string, blobs: BlobCatalog }): Promise<Manifest> {
  const d = change.detail
  const files: ManifestFile[] = []
  for (const f of d.files ?? []) {
    let b = ctx.blobs.describe(f.cid)
    if (b != null && (b.sha512 === '' || b.sha1 === '') && ctx.blobs.completeDigests != null) {
      await ctx.blobs.completeDigests(f.cid)
      b = ctx.blobs.describe(f.cid)
    }
    if (b == null) throw new Error(`change ${change.seq}: blob ${f.cid} of ${f.filename} is unknown`)
    files.push({
      filename: f.filename, cid: f.cid, size: b.size, sha256: b.sha256, sha512: b.sha512, sha1: b.sha1,
      ...(b.md5 != null ? { md5: b.md5 } : {}),
      chunkSize: b.chunkSize, chunkRoot: await ctx.blobs.chunkRoot(f.cid)
    })
  }
  return {
    v: 1,
    mesh: ctx.mesh,
    origin: ctx.origin,
    seq: change.seq,
    prev: ctx.prev,
    timestamp: change.at,
    kind: change.kind,
    repo: change.repo,
    format: ctx.format,
    name: change.name,
    version: change.version,
    ...(d.tag != null ? { tag: d.tag } : {}),
    ...(d.replace === true ? { replace: true as const } : {}),
    files,
    metadata: d.metadata ?? {}
  }
}

export function encodeManifest (m: Manifest): Uint8Array {
  return dagCbor.encode(m)
}

export async function signManifest (m: Manifest, key: PayloadSigner): Promise<Uint8Array> {
  return await signEnvelope(encodeManifest(m), key)
}

/** The signed envelope { payload, signature } (dag-cbor) of any payload: manifests, bundle
 *  indexes. */
export async function signEnvelope (payload: Uint8Array, key: PayloadSigner): Promise<Uint8Array> {
  const signature = await key.sign(payload)
  return dagCbor.encode({ payload, signature })
}

/** Decodes an envelope { payload, signature }; throws when it is not exactly that. */
export function decodeEnvelope (bytes: Uint8Array): { payload: Uint8Array, signature: Uint8Array } {
  const envelope: unknown = dagCbor.decode(bytes)
  if (!isRecord(envelope) || !sameKeys(envelope, ['payload', 'signature']) ||
      !(envelope.payload instanceof Uint8Array) || !(envelope.signature instanceof Uint8Array)) {
    throw new Error('not an envelope { payload, signature }')
  }
  return { payload: envelope.payload, signature: envelope.signature }
}

/** Does `signature` over `payload` verify against the key of the peer ID `signer`? */
export async function signedBy (signer: string, payload: Uint8Array, signature: Uint8Array): Promise<boolean> {
  try {
    const key = peerIdFromString(signer).publicKey
    return key != null && await key.verify(payload, signature)
  } catch { return false }
}

export interface OpenOptions {
  mesh: string
  /** May this origin change this repository (mesh/membership.ts)? undefined: yes. */
  admit?: (origin: string, repo: string, signedAt: number) => Refusal | undefined
  /** A plain member test (tests, tools): used when `admit` is not given. */
  isAllowed?: (origin: string) => boolean
  /** This node's clock (ms); default Date.now(). */
  now?: number
}

/** Decodes, validates and verifies an envelope; throws ManifestError naming the reason. */
export async function openEnvelope (bytes: Uint8Array, opts: OpenOptions): Promise<Manifest> {
  if (bytes.byteLength > MAX_ENVELOPE_BYTES) throw new ManifestError('too-large', `envelope of ${bytes.byteLength} bytes exceeds ${MAX_ENVELOPE_BYTES}`)
  let envelope: { payload: Uint8Array, signature: Uint8Array }
  let payload: unknown
  try {
    envelope = decodeEnvelope(bytes)
    payload = dagCbor.decode(envelope.payload)
  } catch (err) {
    throw new ManifestError('undecodable', `undecodable envelope: ${(err as Error).message}`)
  }
  const m = validateManifest(payload)
  if (m.mesh !== opts.mesh) throw new ManifestError('wrong-mesh', `manifest of mesh "${m.mesh}", not "${opts.mesh}"`, m.origin)
  const refusal = opts.admit != null
    ? opts.admit(m.origin, m.repo, m.timestamp)
    : opts.isAllowed?.(m.origin) === true ? undefined : { reason: 'not-allowed' as const, message: `origin ${m.origin} is not a member of this mesh` }
  if (refusal != null) throw new ManifestError(refusal.reason, refusal.message, m.origin)
  if (!await signedBy(m.origin, envelope.payload, envelope.signature)) throw new ManifestError('bad-signature', `signature does not verify against ${m.origin}`, m.origin)
  const now = opts.now ?? Date.now()
  if (m.timestamp > now + MAX_CLOCK_SKEW_MS) {
    throw new ManifestError('from-the-future', `manifest ${m.origin}/${m.seq} is dated ${m.timestamp - now} ms ahead of this clock`, m.origin)
  }
  return m
}

const MANIFEST_KEYS = ['v', 'mesh', 'origin', 'seq', 'prev', 'timestamp', 'kind', 'repo', 'format', 'name', 'version', 'files', 'metadata']
const FILE_KEYS = ['filename', 'cid', 'size', 'sha256', 'sha512', 'sha1', 'chunkSize', 'chunkRoot']

/** Checks every field of a decoded payload; throws ManifestError('malformed') naming the field. */
export function validateManifest (x: unknown): Manifest {
  const bad = (field: string, want: string): never => { throw new ManifestError('malformed', `manifest field ${field}: expected ${want}`) }
  if (!isRecord(x)) return bad('(root)', 'a map')
  const tagged = x.kind === 'tag' || x.kind === 'untag'
  const want = [...MANIFEST_KEYS, ...(tagged ? ['tag'] : []), ...('replace' in x ? ['replace'] : [])]
  if (!sameKeys(x, want)) bad('(keys)', `exactly ${want.join(', ')}; got ${Object.keys(x).sort().join(', ')}`)
  if (x.v !== 1) bad('v', '1')
  text(x.mesh, 1, 256) || bad('mesh', 'a string of 1-256 characters')
  if (!isEd25519PeerId(x.origin)) bad('origin', 'an Ed25519 peer ID')
  if (!count(x.seq, 1)) bad('seq', 'a positive integer')
  if (!count(x.prev, 0) || (x.prev as number) >= (x.seq as number)) bad('prev', 'a non-negative integer below seq')
  if (!count(x.timestamp, 0)) bad('timestamp', 'a non-negative integer (ms)')
  if (!(CHANGE_KINDS as readonly unknown[]).includes(x.kind)) bad('kind', CHANGE_KINDS.join(' | '))
  text(x.repo, 1, 256) || bad('repo', 'a string of 1-256 characters')
  text(x.format, 1, 64) || bad('format', 'a string of 1-64 characters')
  text(x.name, 1, MAX_TEXT) || bad('name', `a string of 1-${MAX_TEXT} characters`)
  text(x.version, 0, MAX_TEXT) || bad('version', `a string of at most ${MAX_TEXT} characters`)
  if (tagged) text(x.tag, 1, 256) || bad('tag', 'a string of 1-256 characters')
  if ('replace' in x && x.replace !== true) bad('replace', 'true or absent')
  if (!Array.isArray(x.files) || x.files.length > MAX_FILES) bad('files', `an array of at most ${MAX_FILES}`)
  const names = new Set<string>()
  ;(x.files as unknown[]).forEach((f, i) => {
    const at = `files[${i}]`
    if (!isRecord(f)) return bad(at, 'a map')
    const keys = 'md5' in f ? [...FILE_KEYS, 'md5'] : FILE_KEYS
    if (!sameKeys(f, keys)) bad(at, `exactly ${keys.join(', ')}`)
    text(f.filename, 1, MAX_TEXT) || bad(`${at}.filename`, `a string of 1-${MAX_TEXT} characters`)
    if (names.has(f.filename as string)) bad(`${at}.filename`, 'unique filenames')
    names.add(f.filename as string)
    if (typeof f.cid !== 'string' || parseBlobCid(f.cid) == null || parseBlobCid(f.cid)?.toString() !== f.cid) bad(`${at}.cid`, 'a CIDv1 (raw, BLAKE3, base32)')
    if (!count(f.size, 0)) bad(`${at}.size`, 'a non-negative integer')
    hex(f.sha256, 64) || bad(`${at}.sha256`, '64 lowercase hex digits')
    hex(f.sha512, 128) || bad(`${at}.sha512`, '128 lowercase hex digits')
    hex(f.sha1, 40) || bad(`${at}.sha1`, '40 lowercase hex digits')
    if ('md5' in f) hex(f.md5, 32) || bad(`${at}.md5`, '32 lowercase hex digits')
    if (!count(f.chunkSize, 1) || (f.chunkSize as number) > MAX_CHUNK_SIZE) bad(`${at}.chunkSize`, `an integer of 1-${MAX_CHUNK_SIZE}`)
    hex(f.chunkRoot, 64) || bad(`${at}.chunkRoot`, '64 lowercase hex digits')
  })
  if (!isRecord(x.metadata) || !isJson(x.metadata, 0)) bad('metadata', 'a map of JSON values')
  return x as unknown as Manifest
}

function isRecord (x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x) && !(x instanceof Uint8Array) && Object.getPrototypeOf(x) === Object.prototype
}

function sameKeys (x: Record<string, unknown>, keys: string[]): boolean {
  const have = Object.keys(x)
  return have.length === keys.length && keys.every(k => Object.hasOwn(x, k))
}

const text = (x: unknown, min: number, max: number): boolean => typeof x === 'string' && x.length >= min && x.length <= max
const count = (x: unknown, min: number): boolean => Number.isSafeInteger(x) && (x as number) >= min
const hex = (x: unknown, length: number): boolean => typeof x === 'string' && x.length === length && /^[0-9a-f]+$/.test(x)

/** Metadata is stored as JSON: only values JSON can hold (no bytes, links, floats like NaN). */
function isJson (x: unknown, depth: number): boolean {
  if (depth > MAX_DEPTH) return false
  if (x === null || typeof x === 'boolean' || typeof x === 'string') return true
  if (typeof x === 'number') return Number.isFinite(x)
  if (Array.isArray(x)) return x.every(v => isJson(v, depth + 1))
  if (isRecord(x)) return Object.values(x).every(v => isJson(v, depth + 1))
  return false
}

function isEd25519PeerId (x: unknown): x is string {
  if (typeof x !== 'string' || x.length > 128) return false
  try { return peerIdFromString(x).type === 'Ed25519' } catch { return false }
}
