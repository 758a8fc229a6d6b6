// Reading a bundle for import: the index's signature and its exporter's membership (openIndex),
// every block against its CID, every manifest's signature and origin (openEnvelope), and each
// blob is staged under `<data>/imports/<root>/` (BLAKE3 for its CID, each chunk against its
// block's CID, the chunk root against the manifest; the SHA digests are the origin-signed ones,
// mesh/README.md "Verify once at the origin") where no client and no peer can see it. Nothing is
// committed here. A staged blob survives an interrupted import, so running the import again
// resumes: blobs staged or already held are skipped by seeking past their blocks.
// A manifest whose origin this node does not accept (trust.ts) is set aside as refused, still
// verified; blobs only refused manifests name are skipped, not staged. With `strict`, any refusal
// refuses the whole bundle before a blob is staged.
import { readBlockHead, readHeader } from '@ipld/car/decoder'
import { mkdir, open, readFile, rename, rm, stat, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { CID } from 'multiformats/cid'
import { writeFileAtomic } from '../../config/atomic-file.ts'
import { ManifestError, type Manifest } from '../../mesh/manifest.ts'
import type { FileBlobStore } from '../../store/blobs.ts'
import { integrityError, isRegistryError, RegistryError } from '../../store/errors.ts'
import { blake3Implementation, blake3Of, cidFromBlake3, type Digests } from '../../store/hash.ts'
import { CHUNK_SIZE } from '../../store/types.ts'
import type { RemoteFile } from '../../store/changes.ts'
import { blockMatches, chunkCount, openIndex, raw, type BundleIndex } from './format.ts'
import type { MembershipCheck } from '../../mesh/membership.ts'
import type { Progress } from './progress.ts'
import type { RefusedManifest } from './refusals.ts'
import { originCount, openOrRefuse } from './trust.ts'
import { ownedCopy, type VolumeReader } from './volumes.ts'

export interface StageContext {
  dataDir: string
  store: FileBlobStore
  mesh: string
  /** Whose manifests are accepted, for which repositories (mesh/membership.ts). */
  membership: MembershipCheck
  signal?: AbortSignal
  progress?: Progress
  /** Refuse the whole bundle if any manifest's origin is refused (--strict). */
  strict?: boolean
}

export interface StagedBlob { cid: string, path: string, digests: Digests }

export interface StagedBundle {
  root: string
  dir: string
  index: BundleIndex
  items: Array<{ change: Manifest, envelope: Uint8Array, cid: string }>
  staged: Map<string, StagedBlob>
  /** Blobs of the bundle already held here (not read). */
  held: string[]
  /** Blobs an earlier, interrupted run of this import staged (not read again). */
  resumed: string[]
  /** Manifests of origins this node does not accept: verified, not applied. */
  refused: RefusedManifest[]
  /** Blobs only refused manifests name: skipped, not staged. */
  withheld: string[]
}

/** --strict and a manifest refused: nothing is imported. */
export class RefusedBundleError extends RegistryError {
  readonly refused: RefusedManifest[]
  constructor (refused: RefusedManifest[]) {
    super('Forbidden', `${refused.length} manifest(s) from ${originCount(refused)} origin(s) this node does not accept, and --strict: ` +
      refused.map(r => `manifest ${r.origin}/${r.seq} (block ${r.cid}) rejected (${r.reason}): ${r.message}`).join('; ') + '; nothing was applied')
    this.refused = refused
  }
}

export const stagingDir = (dataDir: string, root: string): string => join(dataDir, 'imports', root)

/** Reads and verifies the whole bundle; throws IntegrityError naming the first bad block or
 *  manifest (and then discards what it staged), or another error (staged blobs are kept). */
export async function stageBundle (reader: VolumeReader, ctx: StageContext): Promise<StagedBundle> {
  let dir: string | undefined
  let settling: Promise<void> = Promise.resolve() // the last staged blob's fsync and rename
  try {
    const header = await readHeader(reader) as { version: number, roots: CID[] }
    if (header.version !== 1 || header.roots.length !== 1) throw integrityError(`not an akmesh bundle: a CAR v${header.version} with ${header.roots.length} roots`)
    const root = CID.decode(ownedCopy(header.roots[0].bytes)) // a view of the reader's window
    const indexBlock = await readBlock(reader, 'the bundle index')
    if (!indexBlock.cid.equals(root)) throw integrityError(`the first block ${indexBlock.cid} is not the root ${root}`)
    await mustMatch(indexBlock.cid, indexBlock.bytes, 'the bundle index')
    const index = await openIndex(indexBlock.bytes, { isAllowed: (p) => ctx.membership.isMember(p), learn: ctx.membership.learn?.bind(ctx.membership), learnRevocation: ctx.membership.learnRevocation?.bind(ctx.membership) })
    if (index.mesh !== ctx.mesh) throw integrityError(`the bundle is of mesh "${index.mesh}", this node of "${ctx.mesh}"`)
    dir = stagingDir(ctx.dataDir, root.toString())
    ctx.progress?.add(reader.pos)

    const items: StagedBundle['items'] = []
    const refused: RefusedManifest[] = []
    const named = new Map<string, RemoteFile>()
    const wanted = new Set<string>() // named by a manifest that will be applied
    for (const entry of index.manifests) {
      const what = `manifest ${entry.origin}/${entry.seq} (block ${entry.cid})`
      const block = await readBlock(reader, what)
      if (!block.cid.equals(entry.cid)) throw integrityError(`${what}: found block ${block.cid} in its place`)
      const envelope = block.bytes
      await mustMatch(block.cid, envelope, what)
      let change: Manifest
      let refusal: { reason: string, message: string } | undefined
      try {
        ({ change, refusal } = await openOrRefuse(envelope, { mesh: ctx.mesh, membership: ctx.membership }))
      } catch (err) {
        if (!(err instanceof ManifestError)) throw err
        throw integrityError(`${what} rejected (${err.reason}): ${err.message}`)
      }
      if (change.origin !== entry.origin || change.seq !== entry.seq) throw integrityError(`${what}: the signed manifest is ${change.origin}/${change.seq}`)
      const cid = block.cid.toString()
      // A blob is checked against the facts of the first manifest to apply that names it.
      if (refusal != null) {
        for (const f of change.files) if (!named.has(f.cid)) named.set(f.cid, f)
        const { origin, seq, prev, kind, repo, name, version } = change
        refused.push({ origin, seq, prev, kind, repo, name, version, ...refusal, cid })
      } else {
        for (const f of change.files) if (!wanted.has(f.cid)) { named.set(f.cid, f); wanted.add(f.cid) }
        items.push({ change, envelope, cid })
      }
      ctx.progress?.add(block.section)
    }
    if (ctx.strict === true && refused.length > 0) {
      await rm(dir, { recursive: true, force: true })
      throw new RefusedBundleError(refused)
    }

    await mkdir(dir, { recursive: true })
    const staged = new Map<string, StagedBlob>()
    const held: string[] = []
    const resumed: string[] = []
    const withheld: string[] = []
    for (const b of index.blobs) {
      ctx.signal?.throwIfAborted()
      const fact = named.get(b.cid)
      if (fact == null) throw integrityError(`blob ${b.cid} is not named by any manifest in the bundle`)
      if (fact.size !== b.size) throw integrityError(`blob ${b.cid}: the index says ${b.size} bytes, its manifest ${fact.size}`)
      // Bytes no manifest applied here names are not read, as those of blobs held here are not.
      if (!wanted.has(b.cid)) {
        await skipBlob(reader, b, ctx.progress)
        withheld.push(b.cid)
        continue
      }
      const already = ctx.store.has(b.cid) ? undefined : await readStaged(dir, b.cid)
      if (ctx.store.has(b.cid) || already != null) {
        await skipBlob(reader, b, ctx.progress)
        if (already != null) { staged.set(b.cid, already); resumed.push(b.cid) } else held.push(b.cid)
        continue
      }
      // Each blob's fsync and rename run while the next blob is read (one at a time).
      const next = await stageBlob(reader, dir, b, fact, ctx)
      await settling
      settling = next.settled
      staged.set(b.cid, next.blob)
    }
    await settling
    settling = Promise.resolve()
    if (reader.pos !== reader.total) throw integrityError(`${reader.total - reader.pos} unexpected bytes after the last block the index names (offset ${reader.pos})`)
    return { root: root.toString(), dir, index, items, staged, held, resumed, refused, withheld }
  } catch (thrown) {
    await settling.catch(() => {})
    // An interruption or a system error (ENOSPC, EIO) keeps what was staged, for a resume; a
    // damaged bundle discards it.
    const e = thrown as { name?: string, code?: unknown, message?: string }
    if (ctx.signal?.aborted === true || e?.name === 'AbortError' || (typeof e?.code === 'string' && /^E[A-Z]+$/.test(e.code))) throw thrown
    const err = isRegistryError(thrown) ? thrown : integrityError(`bundle unreadable at offset ${reader.pos}: ${e?.message ?? String(thrown)}`)
    if (err.code === 'IntegrityError' && dir != null) await rm(dir, { recursive: true, force: true })
    throw err
  }
}

/** A block that is kept (the index, a manifest): its bytes and CID are owned copies, not views
 *  of the reader's windows, which the blobs after it overwrite. */
async function readBlock (reader: VolumeReader, what: string): Promise<{ cid: CID, bytes: Uint8Array, section: number }> {
  const start = reader.pos
  if (start >= reader.total) throw integrityError(`bundle truncated: ${what} is missing (the bundle ends at offset ${start})${reader.hint}`)
  const head = await readBlockHead(reader)
  const cid = CID.decode(ownedCopy(head.cid.bytes))
  const bytes = await reader.take(head.blockLength)
  return { cid, bytes, section: reader.pos - start }
}

async function mustMatch (cid: CID, bytes: Uint8Array, what: string): Promise<void> {
  if (!await blockMatches(cid, bytes)) throw integrityError(`${what}: block ${cid} does not match its CID (the bundle is damaged)`)
}

async function skipBlob (reader: VolumeReader, b: { cid: string, size: number }, progress?: Progress): Promise<void> {
  const n = chunkCount(b.size)
  for (let i = 0; i < n; i++) {
    const start = reader.pos
    if (start >= reader.total) throw integrityError(`bundle truncated: chunk ${i} of blob ${b.cid} is missing (the bundle ends at offset ${start})${reader.hint}`)
    const head = await readBlockHead(reader)
    if (start + head.length > reader.total) throw integrityError(`bundle truncated inside chunk ${i} of blob ${b.cid} (block ${head.cid})${reader.hint}`)
    reader.seek(head.blockLength)
    progress?.add(reader.pos - start)
  }
}

/** Streams a blob's chunk blocks into a staging file, checking each against its CID and the
 *  whole against the blob's CID and its manifest's chunk root. The SHA digests are not computed
 *  here: they are the ones the origin signed in the manifest (mesh/README.md, "Verify once at
 *  the origin"), recorded once the BLAKE3 CID and every chunk match. Each chunk is written while
 *  the next is read (the reader's windows keep a view valid until the second refill after);
 *  `settled` (fsync, digests file, rename into place) runs while the caller stages the next blob. */
async function stageBlob (reader: VolumeReader, dir: string, b: { cid: string, size: number }, fact: RemoteFile, ctx: StageContext): Promise<{ blob: StagedBlob, settled: Promise<void> }> {
  const path = join(dir, b.cid)
  const part = `${path}.part`
  const fh = await open(part, 'w')
  const whole = await (await blake3Implementation()).create()
  const chunks: Uint8Array[] = []
  let writing: Promise<unknown> = Promise.resolve()
  try {
    const n = chunkCount(b.size)
    for (let i = 0; i < n; i++) {
      ctx.signal?.throwIfAborted()
      const what = `chunk ${i} of blob ${b.cid}`
      const start = reader.pos
      if (start >= reader.total) throw integrityError(`bundle truncated: ${what} is missing (the bundle ends at offset ${start})${reader.hint}`)
      const head = await readBlockHead(reader)
      const expected = i < n - 1 ? CHUNK_SIZE : b.size - (n - 1) * CHUNK_SIZE
      if (head.cid.code !== raw.code || head.blockLength !== expected) {
        throw integrityError(`${what}: block ${head.cid} has ${head.blockLength} bytes, expected a raw block of ${expected}`)
      }
      if (start + head.length > reader.total) throw integrityError(`bundle truncated inside ${what} (block ${head.cid})${reader.hint}`)
      const bytes = await reader.exactly(head.blockLength, true)
      await mustMatch(head.cid, bytes, what)
      // The chunk table is the verified chunk CIDs' digests (owned: the CID is a view of a window).
      chunks.push(ownedCopy(head.cid.multihash.digest))
      whole.update(bytes)
      await writing
      writing = writeAll(fh, bytes)
      writing.catch(() => {})
      ctx.progress?.add(reader.pos - start)
    }
    await writing
    const cid = cidFromBlake3(whole.digest())
    if (cid !== b.cid) throw integrityError(`blob ${b.cid}: its chunks hash to ${cid}`)
    const chunkRoot = Buffer.from(await blake3Of(Buffer.concat(chunks))).toString('hex')
    if (chunkRoot !== fact.chunkRoot) throw integrityError(`blob ${b.cid}: its chunkRoot is ${chunkRoot}, but its manifest signs ${fact.chunkRoot}`)
    const digests: Digests = { cid, size: b.size, sha256: fact.sha256, sha512: fact.sha512, sha1: fact.sha1, md5: fact.md5 ?? null, chunks }
    // Durable before it is named complete (a resumed import trusts a renamed file and its json).
    // The bytes' fsync and the digests file's (its own fsyncs and its directory's) run at once:
    // the disk is the limit of an import, and each waited-for fsync is a device flush.
    const settled = (async () => {
      try {
        const json = JSON.stringify({ ...digests, chunks: digests.chunks.map(c => Buffer.from(c).toString('hex')) })
        const both = await Promise.allSettled([(async () => { await fh.sync(); await fh.close() })(), writeFileAtomic(`${path}.json`, json)])
        for (const r of both) if (r.status === 'rejected') throw r.reason
        await rename(part, path)
      } catch (err) {
        await fh.close().catch(() => {})
        await rm(part, { force: true })
        throw err
      }
    })()
    settled.catch(() => {}) // awaited by the caller
    return { blob: { cid: b.cid, path, digests }, settled }
  } catch (err) {
    await writing.catch(() => {})
    await fh.close().catch(() => {})
    await rm(part, { force: true })
    throw err
  }
}

async function writeAll (fh: FileHandle, bytes: Uint8Array): Promise<void> {
  for (let done = 0; done < bytes.byteLength;) done += (await fh.write(bytes, done, bytes.byteLength - done)).bytesWritten
}

/** A blob a previous run of this import staged completely (its digests beside it). */
async function readStaged (dir: string, cid: string): Promise<StagedBlob | undefined> {
  const path = join(dir, cid)
  try {
    const [s, text] = await Promise.all([stat(path), readFile(`${path}.json`, 'utf8')])
    const d = JSON.parse(text)
    if (d.cid !== cid || d.size !== s.size) return undefined
    return { cid, path, digests: { ...d, chunks: (d.chunks as string[]).map(h => new Uint8Array(Buffer.from(h, 'hex'))) } }
  } catch { return undefined }
}
