// `akmesh export`: writes a bundle (node/bundle/format.ts) of the selected manifests, byte for byte
// as their origins signed them, and every blob they name, chunk by chunk. Reads the data
// directory directly: SQLite (WAL) lets it read beside a running node, blob files never change
// once renamed into place, and the selection is one read transaction. Memory stays flat: a few
// 1 MiB chunk buffers in turn; the next chunk is read while the current one is written (head
// and bytes in one writev, car-sections.ts) and checked against the chunk table (in a worker).
import type { PrivateKey } from '@libp2p/interface'
import { open, rm } from 'node:fs/promises'
import type { CID } from 'multiformats/cid'
import type { FileBlobStore } from '../../store/blobs.ts'
import type { DB } from '../../store/db.ts'
import { conflict, integrityError } from '../../store/errors.ts'
import type { ManifestLog } from '../../store/manifests.ts'
import { CHUNK_SIZE } from '../../store/types.ts'
import { blake3InThread, warmBlake3Thread } from './blake3-offload.ts'
import { BUNDLE_FORMAT, BUNDLE_VERSION, DAG_CBOR_CODE, blake3Cid, chunkCid, chunkCount, signIndex, type BundleIndex } from './format.ts'
import { Progress } from './progress.ts'
import { selectBundle, type SelectOptions, type Selection } from './select.ts'
import { bundleFiles, VolumeWriter } from './volumes.ts'
import { carHeader, sectionHead } from './car-sections.ts'

export interface ExportDeps {
  db: DB
  store: FileBlobStore
  manifests: ManifestLog
  mesh: string
  /** The exporting node: its peer ID, the key of that ID (signs the index) and its name. */
  peerId: string
  privateKey: PrivateKey
  nodeName?: string
  /** Member certificates of these peers (mesh/membership.ts): carried so a site needs only the root. */
  certificates?: (peers: Iterable<string>) => Uint8Array[]
  /** Every revocation the exporter holds: carried so an air-gapped site refuses revoked origins. */
  revocations?: () => Uint8Array[]
}

export interface ExportOptions extends SelectOptions {
  out: string
  /** Replace an existing bundle at `out` (and its volumes); without it an existing file is refused. */
  force?: boolean
  volumeSize?: number
  signal?: AbortSignal
  progress?: boolean
}

export interface ExportResult {
  root: string
  files: string[]
  bytes: number
  manifests: number
  blobs: number
  blobBytes: number
  absent: number
  selection: Selection
  summary: string
}

/** Bytes of a CAR section: varint(length) + CID + data. */
const sectionSize = (cidBytes: number, data: number): number => varintSize(cidBytes + data) + cidBytes + data
const varintSize = (n: number): number => { let s = 1; while (n >= 0x80) { n = Math.floor(n / 0x80); s++ } return s }

export async function exportBundle (deps: ExportDeps, opts: ExportOptions): Promise<ExportResult> {
  const existing = await bundleFiles(opts.out)
  if (existing.length > 0 && opts.force !== true) {
    throw conflict(`${existing.join(', ')} already exist${existing.length === 1 ? 's' : ''}: pass --force to overwrite ${existing.length === 1 ? 'it' : 'them'}`)
  }
  const selection = selectBundle(deps, opts)
  const { manifests, store } = deps
  if (selection.blobs.length > 0) warmBlake3Thread()

  // The index names every block, so manifest CIDs are computed first (envelopes are small; they
  // are read again when written rather than held).
  const entries: BundleIndex['manifests'] = []
  let total = 0
  for (const m of selection.manifests) {
    const envelope = manifests.get(m.origin, m.seq)?.envelope
    if (envelope == null) throw new Error(`manifest ${m.origin}/${m.seq} vanished during export`)
    const cid = await blake3Cid(DAG_CBOR_CODE, envelope)
    entries.push({ origin: m.origin, seq: m.seq, cid })
    total += sectionSize(cid.bytes.byteLength, envelope.byteLength)
  }
  for (const b of selection.blobs) total += chunkCount(b.size) * sectionSize(36, 0) + b.size
  const index: BundleIndex = {
    format: BUNDLE_FORMAT,
    v: BUNDLE_VERSION,
    mesh: deps.mesh,
    exporter: deps.peerId,
    ...(deps.nodeName != null ? { exporterName: deps.nodeName } : {}),
    createdAt: Date.now(),
    watermarks: selection.watermarks,
    selection: {
      mode: selection.mode,
      ...(opts.repos != null && opts.repos.length > 0 ? { repos: opts.repos } : {}),
      ...(opts.origins != null && opts.origins.length > 0 ? { origins: [...new Set(opts.origins)].sort() } : {}),
      ...(opts.destination != null ? { destination: opts.destination } : {})
    },
    base: selection.base,
    manifests: entries,
    blobs: selection.blobs,
    absent: selection.absent
  }
  const certificates = deps.certificates?.([deps.peerId, ...entries.map(e => e.origin)]) ?? []
  if (certificates.length > 0) index.certificates = certificates
  const revocations = deps.revocations?.() ?? []
  if (revocations.length > 0) index.revocations = revocations
  const indexBytes = await signIndex(index, deps.privateKey)
  const root = await blake3Cid(DAG_CBOR_CODE, indexBytes)
  total += sectionSize(root.bytes.byteLength, indexBytes.byteLength)

  const progress = new Progress('export', total, { enabled: opts.progress })
  const out = new VolumeWriter(opts.out, opts.volumeSize, { overwrite: opts.force })
  const put = async (cid: CID, bytes: Uint8Array): Promise<void> => {
    opts.signal?.throwIfAborted()
    await out.writev([sectionHead(cid, bytes.byteLength), bytes])
    progress.add(sectionSize(cid.bytes.byteLength, bytes.byteLength))
  }

  let blobBytes = 0
  try {
    const header = carHeader([root])
    await out.write(header)
    progress.add(header.byteLength)
    await put(root, indexBytes)
    for (const e of entries) await put(e.cid, (manifests.get(e.origin, e.seq) as { envelope: Uint8Array }).envelope)
    const buffers = new ChunkBuffers()
    for (const b of selection.blobs) {
      await writeBlob(store, b, put, buffers)
      blobBytes += b.size
    }
    await out.close()
    // Files of the bundle this one replaced that it did not overwrite (more volumes, or the
    // single file beside new volumes) would be read as part of it: remove them.
    await Promise.all(existing.filter(p => !out.paths.includes(p)).map(async p => await rm(p, { force: true })))
  } catch (err) {
    await out.abandon()
    // Once it began to overwrite a bundle (--force), what is left of that one is no bundle.
    const written = out.paths.length > 0 ? [...new Set([...out.paths, ...existing])] : []
    await Promise.all(written.map(async p => await rm(p, { force: true })))
    throw err
  }
  progress.finish()
  return {
    root: root.toString(),
    files: out.paths,
    bytes: out.written,
    manifests: entries.length,
    blobs: selection.blobs.length,
    blobBytes,
    absent: selection.absent.length,
    selection,
    summary: progress.summary()
  }
}

/** Streams one blob as chunk blocks named by the store's chunk table, checking each chunk (a
 *  damaged local file must fail here, not at the far site). The check runs in the BLAKE3 worker
 *  while the chunk is written: a mismatch fails the export, which then removes the bundle. */
async function writeBlob (store: FileBlobStore, b: { cid: string, size: number }, put: (cid: CID, bytes: Uint8Array) => Promise<void>, buffers: ChunkBuffers): Promise<void> {
  const hashes = store.chunkHashes(b.cid)
  const n = chunkCount(b.size)
  if (hashes.length !== n) throw integrityError(`blob ${b.cid}: chunk table has ${hashes.length} entries, expected ${n}; run akmesh verify`)
  const fh = await open(store.pathOf(b.cid), 'r')
  const read = async (i: number): Promise<Buffer> => {
    const length = Math.min(CHUNK_SIZE, b.size - i * CHUNK_SIZE)
    const chunk = buffers.next().subarray(0, length)
    let got = 0
    while (got < length) {
      const { bytesRead } = await fh.read(chunk, got, length - got, i * CHUNK_SIZE + got)
      if (bytesRead === 0) throw integrityError(`blob ${b.cid} is shorter on disk than its ${b.size} bytes; run akmesh verify`)
      got += bytesRead
    }
    return chunk
  }
  const check = async (i: number, chunk: Buffer): Promise<void> => {
    if (!Buffer.from(await blake3InThread(chunk)).equals(Buffer.from(hashes[i]))) {
      throw integrityError(`blob ${b.cid} is damaged on this node (chunk ${i} does not match its hash); run akmesh verify`)
    }
  }
  // Chunk i + 1 is read while chunk i is written and checked; its buffer is reused only after both.
  let next: Promise<Buffer> = read(0)
  let inFlight: Promise<unknown> = Promise.resolve()
  try {
    for (let i = 0; i < n; i++) {
      const chunk = await next
      if (i + 1 < n) { next = read(i + 1); next.catch(() => {}) } // awaited next turn (or the error is thrown then)
      const checked = check(i, chunk)
      checked.catch(() => {})
      await inFlight
      inFlight = Promise.all([put(chunkCid(hashes[i]), chunk), checked])
      inFlight.catch(() => {})
    }
    await inFlight
  } finally {
    await next.catch(() => {})
    await inFlight.catch(() => {})
    await fh.close()
  }
}

/** A few chunk buffers used in turn. At most three are in use (the chunk written and checked,
 *  the next one waiting for it, the one read ahead); four leave margin. Shared memory, so the
 *  BLAKE3 worker reads them without a copy. (A fresh 1 MiB buffer per chunk cost ~2 s of GC per
 *  GiB, measured with --cpu-prof.) */
class ChunkBuffers {
  readonly #ring = Array.from({ length: 4 }, () => Buffer.from(new SharedArrayBuffer(CHUNK_SIZE)))
  #i = 0
  next (): Buffer { return this.#ring[this.#i++ % this.#ring.length] }
}
