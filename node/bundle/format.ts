// The bundle format: a CARv1 file (https://ipld.io/specs/transport/car/carv1/). Its root is an
// index block (dag-cbor) that lists, in order, every block that follows: the manifest envelopes
// exactly as their origins signed them, then each blob as its 1 MiB chunks. Every block is named
// by a CIDv1 with a BLAKE3 multihash, so any CAR tool can check it, and a chunk's CID is the
// chunk hash the store already keeps (no re-hash to export). Blobs are chunked because a CAR
// block is read whole; 1 MiB blocks keep memory flat whatever the blob size. Because the index
// comes first and names every block, a bundle cut anywhere (even at a block boundary) is caught.
// The root block is the index signed by the exporting node's mesh key, in the envelope manifests
// use ({ payload, signature }): a carrier who drops manifests (a delete, a yank) cannot rewrite
// the index to match. Version 1 bundles had an unsigned index and are refused.
import * as dagCbor from '@ipld/dag-cbor'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { create as createDigest } from 'multiformats/hashes/digest'
import type { PrivateKey } from '@libp2p/interface'
import { decodeEnvelope, signedBy, signEnvelope } from '../../mesh/manifest.ts'
import { RevocationError } from '../../mesh/revocations.ts'
import { integrityError } from '../../store/errors.ts'
import { BLAKE3_CODE, blake3Of, parseBlobCid } from '../../store/hash.ts'
import { CHUNK_SIZE } from '../../store/types.ts'

export const BUNDLE_FORMAT = 'akmesh-bundle'
export const BUNDLE_VERSION = 2
/** The index of a bundle of a million manifests is ~100 MB; refuse anything far beyond. */
const MAX_INDEX_BYTES = 256 * 1024 * 1024

export type SelectionMode = 'all' | 'repos' | 'origins' | 'since' | 'lacks' | 'artifacts'

export interface BundleManifestEntry { origin: string, seq: number, cid: CID }
export interface BundleBlobEntry { cid: string, size: number }

export interface BundleIndex {
  format: typeof BUNDLE_FORMAT
  v: typeof BUNDLE_VERSION
  mesh: string
  /** Peer ID of the exporting node: the index is signed with its key. */
  exporter: string
  /** The exporter's node name (its peering file), for people. */
  exporterName?: string
  createdAt: number
  /** Per origin, the contiguous watermark the exporter held when it selected the bundle. */
  watermarks: Record<string, number>
  selection: { mode: SelectionMode, repos?: string[], origins?: string[], destination?: string }
  /** Incremental bundles: per origin, the watermark of the previous export to the destination. */
  base: Record<string, number>
  manifests: BundleManifestEntry[]
  blobs: BundleBlobEntry[]
  /** Blobs the bundled manifests name that the exporter did not hold (--allow-missing). */
  absent: string[]
  /** Member certificates of the exporter and the origins (envelopes, mesh/certificates.ts). */
  certificates?: Uint8Array[]
  /** Every revocation the exporter holds (root-signed envelopes, mesh/revocations.ts); absent in
   *  bundles of older exporters. */
  revocations?: Uint8Array[]
}

export const chunkCount = (size: number): number => Math.max(1, Math.ceil(size / CHUNK_SIZE))

/** CIDv1 (codec, BLAKE3) of some bytes. */
export async function blake3Cid (codec: number, bytes: Uint8Array): Promise<CID> {
  return CID.createV1(codec, createDigest(BLAKE3_CODE, await blake3Of(bytes)))
}

/** The CID of a blob chunk block: raw codec, the chunk's BLAKE3 (from the store's chunk table). */
export const chunkCid = (hash: Uint8Array): CID => CID.createV1(raw.code, createDigest(BLAKE3_CODE, hash))

/** The root block: the index in an envelope signed by the exporter's key. */
export async function signIndex (index: BundleIndex, key: PrivateKey): Promise<Uint8Array> {
  return await signEnvelope(dagCbor.encode(index), key)
}

/** Decodes the root block, checks it is an index signed by its exporter and that the exporter is
 *  a member (`isAllowed`); throws IntegrityError naming what is wrong. */
export async function openIndex (bytes: Uint8Array, opts: { isAllowed: (peerId: string) => boolean, learn?: (certificate: Uint8Array) => Promise<unknown>, learnRevocation?: (revocation: Uint8Array) => Promise<unknown> }): Promise<BundleIndex> {
  if (bytes.byteLength > MAX_INDEX_BYTES) throw integrityError(`bundle index of ${bytes.byteLength} bytes is too large`)
  let root: any
  try { root = dagCbor.decode(bytes) } catch (err) { throw integrityError(`bundle index is not dag-cbor: ${(err as Error).message}`) }
  if (root?.format === BUNDLE_FORMAT) {
    if (root.v === 1) {
      throw integrityError('this bundle is of format version 1, whose index is unsigned (written by an older akmesh): ' +
        `this node accepts only signed bundles (version ${BUNDLE_VERSION}); export it again with this version`)
    }
    throw integrityError('the bundle index is not signed: refused (a carrier could have dropped manifests from it)')
  }
  let envelope: { payload: Uint8Array, signature: Uint8Array }
  try { envelope = decodeEnvelope(bytes) } catch (err) { throw integrityError(`the bundle index is neither a signed index nor an index: ${(err as Error).message}`) }
  const index = decodeIndex(envelope.payload)
  // Certificates prove themselves (signed by the mesh root): learned before the membership checks.
  for (const c of index.certificates ?? []) await opts.learn?.(c)
  // So are revocations, learned before any manifest is checked; one that does not verify here is
  // skipped as a refused certificate is (the manifests it names are then judged without it).
  for (const r of index.revocations ?? []) await opts.learnRevocation?.(r).catch((err: unknown) => { if (!(err instanceof RevocationError)) throw err })
  if (!opts.isAllowed(index.exporter)) throw integrityError(`the bundle was exported by ${index.exporter}, which is not a member of this mesh (no valid certificate of this mesh, not in the peering file's allow list)`)
  if (!await signedBy(index.exporter, envelope.payload, envelope.signature)) {
    throw integrityError(`the bundle index's signature does not verify against its exporter ${index.exporter}: the index was altered after export`)
  }
  return index
}

/** Checks a block's bytes against its CID (BLAKE3 only: the only hash bundles use). */
export async function blockMatches (cid: CID, bytes: Uint8Array): Promise<boolean> {
  if (cid.multihash.code !== BLAKE3_CODE) return false
  return Buffer.from(await blake3Of(bytes)).equals(Buffer.from(cid.multihash.digest))
}

/** Decodes and validates an index (the signed payload); throws IntegrityError naming what is wrong. */
function decodeIndex (bytes: Uint8Array): BundleIndex {
  let x: any
  try { x = dagCbor.decode(bytes) } catch (err) { throw integrityError(`bundle index is not dag-cbor: ${(err as Error).message}`) }
  const bad = (what: string): never => { throw integrityError(`bundle index: ${what}`) }
  if (x == null || typeof x !== 'object') bad('not a map')
  if (x.format !== BUNDLE_FORMAT) bad(`format is ${JSON.stringify(x.format)}, expected "${BUNDLE_FORMAT}"`)
  if (x.v !== BUNDLE_VERSION) bad(`version ${String(x.v)} is not supported (this node reads version ${BUNDLE_VERSION})`)
  if (typeof x.mesh !== 'string' || typeof x.exporter !== 'string' || !Number.isSafeInteger(x.createdAt)) bad('mesh, exporter or createdAt missing')
  if (x.exporterName != null && (typeof x.exporterName !== 'string' || x.exporterName.length > 256)) bad('exporterName is malformed')
  if (!Array.isArray(x.manifests) || !Array.isArray(x.blobs) || !Array.isArray(x.absent)) bad('manifests, blobs or absent is not a list')
  for (const [i, m] of (x.manifests as any[]).entries()) {
    if (typeof m?.origin !== 'string' || !Number.isSafeInteger(m?.seq) || CID.asCID(m?.cid) == null) bad(`manifests[${i}] is malformed`)
  }
  for (const [i, b] of (x.blobs as any[]).entries()) {
    if (typeof b?.cid !== 'string' || parseBlobCid(b.cid)?.toString() !== b.cid || !Number.isSafeInteger(b?.size) || b.size < 0) bad(`blobs[${i}] is malformed`)
  }
  if (!(x.absent as unknown[]).every(c => typeof c === 'string')) bad('absent is malformed')
  if (x.certificates != null && (!Array.isArray(x.certificates) || !(x.certificates as unknown[]).every(c => c instanceof Uint8Array))) bad('certificates is malformed')
  if (x.revocations != null && (!Array.isArray(x.revocations) || !(x.revocations as unknown[]).every(c => c instanceof Uint8Array))) bad('revocations is malformed')
  for (const field of ['base', 'watermarks']) {
    if (x[field] == null || typeof x[field] !== 'object' || !Object.values(x[field]).every(Number.isSafeInteger)) bad(`${field} is malformed`)
  }
  return x as BundleIndex
}

export { raw }
export const DAG_CBOR_CODE = dagCbor.code
