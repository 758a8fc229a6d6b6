// Manifests of a remote OCI repository.
//   by tag:    metadata. Fetched with the manifest media types in Accept, kept for metadataTtl,
//              recorded as a manifest artifact and a tag; when the upstream fails, the tag as
//              last recorded is served with `Warning: 110` (stale-if-error, across restarts too).
//   by digest: content. Served from the cache if there; else fetched once, checked against the
//              digest by the store, recorded, then served. Bytes that do not match are refused
//              and nothing is recorded.
import { createHash } from 'node:crypto'
import { Readable } from 'node:stream'
import type { Context } from 'koa'
import { RegistryError, upstreamError } from '../../store/errors.ts'
import type { BlobInfo } from '../../store/types.ts'
import type { FormatContext } from '../format.ts'
import { STALE_WARNING, type RemoteRepository } from '../shared/remote/remote-repository.ts'
import { cachedBlob } from '../shared/remote/cached-blob.ts'
import { UpstreamClient } from '../shared/remote/upstream-client.ts'
import { linkedBlob } from './blobs.ts'
import { ociError } from './errors.ts'
import { getManifest, MANIFEST_FILE, resolveManifest, type ManifestMetadata } from './manifests.ts'
import { DOCKER_LIST, DOCKER_MANIFEST, isManifestType, OCI_INDEX, OCI_MANIFEST, parseManifest, type Manifest } from './media.ts'
import { isDigest, isTag, sha256Of } from './names.ts'
import { pullOf, upstreamUrl } from './remote-upstream.ts'

/** The spec asks registries to take manifests of at least 4 MB; a cache takes no more. */
const MAX_MANIFEST = 4 * 1024 * 1024
/** Without it a registry may answer in a format this node does not serve (Docker schema 1). */
const ACCEPT = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST].join(', ')

/** Cached manifests are manifest artifacts as a push records them, plus where they came from. */
export interface CachedManifestMetadata extends ManifestMetadata {
  cached: true
  upstream: string
  fetchedAt: number
  /** The digests it pins (blobs, or child manifests): its files once all are cached. */
  references: string[]
}

const sha256 = (b: Uint8Array) => 'sha256:' + createHash('sha256').update(b).digest('hex')

/** Why a fetched body is not a manifest this node may serve (or not the one asked for). */
export function manifestRefusal (digest?: string) {
  return (contentType: string, body: Buffer, headers: Headers): string | undefined => {
    const type = contentType.split(';')[0].trim().toLowerCase()
    if (!isManifestType(type)) return `Content-Type ${type === '' ? '(none)' : type} is not a manifest media type`
    try { parseManifest(body, type) } catch (err) { return `not a valid manifest (${(err as Error).message})` }
    const actual = sha256(body)
    const declared = headers.get('docker-content-digest')
    if (declared != null && declared !== actual) return `the manifest's bytes have digest ${actual}, but the upstream declared ${declared}`
    if (digest != null && digest !== actual) return `the manifest's bytes have digest ${actual}, not ${digest}`
    return undefined
  }
}

export async function getRemoteManifest (ctx: Context, fc: FormatContext, remote: RemoteRepository, name: string, reference: string): Promise<void> {
  if (isDigest(reference)) return await byDigest(ctx, fc, remote, name, reference)
  if (!isTag(reference)) throw ociError('MANIFEST_INVALID', `"${reference}" is neither a tag nor a digest`)
  if (remote.settings.offline) return await getManifest(ctx, fc, name, reference)
  const url = upstreamUrl(remote, name, `manifests/${reference}`)
  let answer
  try {
    answer = await remote.metadata(`manifest ${name}:${reference}`, url, {
      refuse: manifestRefusal(), upstream: { ...pullOf(name), headers: { accept: ACCEPT } }
    })
  } catch (err) {
    const code = (err as RegistryError).code
    if (code !== 'UpstreamError' && code !== 'UpstreamTimeout') throw err
    // Never fetched since this node started, but recorded before: stale beats an error.
    if (resolveManifest(fc, name, reference) == null) throw err
    fc.log.warn({ name, tag: reference, err: (err as Error).message }, 'upstream failed; serving the tag as last cached')
    ctx.set('Warning', STALE_WARNING)
    return await getManifest(ctx, fc, name, reference)
  }
  const { doc, stale } = answer
  const digest = sha256(doc.body)
  const mediaType = doc.contentType.split(';')[0].trim().toLowerCase()
  // Another site of the mesh that cached this image has its row with every blob it pins: taken
  // from that peer rather than recorded anew, so the blobs' bytes come from the mesh too.
  await remote.fromPeers(`manifest ${name}@${digest}`, { name, version: digest }, () => manifestRecorded(fc, name, digest))
  // Not recorded yet, or its bytes were evicted (store/cache-evict.ts): stored (again).
  if (!manifestHeld(fc, name, digest)) {
    const blob = await fc.store.put(Readable.from([doc.body]), { expect: { sha256: sha256Of(digest) } })
    record(fc, name, digest, parseManifest(doc.body, mediaType), blob, UpstreamClient.describe(url))
  }
  if (fc.artifacts.tags(fc.repo.name, name)[reference] !== digest) fc.artifacts.setTag(fc.repo.name, name, reference, digest)
  if (stale) ctx.set('Warning', STALE_WARNING)
  ctx.status = 200
  ctx.set('Content-Type', mediaType)
  ctx.set('Docker-Content-Digest', digest)
  ctx.set('ETag', `"${digest}"`)
  ctx.set('X-Akmesh-Cache', stale ? 'stale' : 'metadata')
  ctx.body = doc.body
}

async function byDigest (ctx: Context, fc: FormatContext, remote: RemoteRepository, name: string, digest: string): Promise<void> {
  const hex = sha256Of(digest)
  if (await manifestServable(fc, name, digest)) return await getManifest(ctx, fc, name, digest)
  const url = upstreamUrl(remote, name, `manifests/${digest}`)
  const answer = await remote.content(`manifest ${name}@${digest}`, url, {
    expect: () => ({ sha256: hex }),
    commit: async (blob, res) => {
      const contentType = (res.headers.get('content-type') ?? '').split(';')[0].trim().toLowerCase()
      if (blob.size > MAX_MANIFEST) throw upstreamError(`upstream ${UpstreamClient.describe(url)} sent a manifest of ${blob.size} bytes (at most ${MAX_MANIFEST}); refused`)
      const bytes = await readAll(fc.store.open(blob.cid))
      const why = manifestRefusal(digest)(contentType, bytes, res.headers)
      if (why != null) throw upstreamError(`upstream ${UpstreamClient.describe(url)}: ${why}; refused, nothing cached`)
      record(fc, name, digest, parseManifest(bytes, contentType), blob, UpstreamClient.describe(url))
    },
    toClient: false,
    upstream: { ...pullOf(name), headers: { accept: ACCEPT } },
    artifact: { name, version: digest },
    isKnown: () => manifestRecorded(fc, name, digest)
  })
  await answer.done
  await getManifest(ctx, fc, name, digest)
}

/** Whether the manifest is recorded here (its bytes here or not). */
function manifestRecorded (fc: FormatContext, name: string, digest: string): boolean {
  return resolveManifest(fc, name, digest)?.files.some(f => f.filename === MANIFEST_FILE) === true
}

/** Whether the manifest is recorded with its bytes here. */
function manifestHeld (fc: FormatContext, name: string, digest: string): boolean {
  const cid = resolveManifest(fc, name, digest)?.files.find(f => f.filename === MANIFEST_FILE)?.cid
  return cid != null && fc.store.has(cid)
}

/** Whether the manifest is recorded with its bytes here or at a peer (evicted and at no peer:
 *  fetched from the upstream again). */
async function manifestServable (fc: FormatContext, name: string, digest: string): Promise<boolean> {
  const cid = resolveManifest(fc, name, digest)?.files.find(f => f.filename === MANIFEST_FILE)?.cid
  if (cid == null || await cachedBlob(fc.store, cid) == null) return false
  fc.remote?.served(cid)
  return true
}

/** Records a fetched manifest as a manifest artifact (as a push would), with whatever it
 *  references that is already cached; a concurrent recording of the same bytes is the same. */
function record (fc: FormatContext, name: string, digest: string, manifest: Manifest, blob: BlobInfo, upstream: string): void {
  fc.blobLinks.link(fc.repo.name, name, blob.cid)
  if (fc.artifacts.get(fc.repo.name, name, digest) != null) return
  const references = [...new Set([...manifest.blobs, ...manifest.manifests].map(d => d.digest))]
  const files = cachedFiles(fc, name, references)
  const metadata: CachedManifestMetadata = {
    mediaType: manifest.mediaType,
    digest,
    size: blob.size,
    artifactType: manifest.artifactType ?? null,
    subject: manifest.subject?.digest ?? null,
    annotations: manifest.annotations ?? null,
    pushedBy: 'remote',
    cached: true,
    upstream,
    fetchedAt: Date.now(),
    references
  }
  try {
    fc.artifacts.publish({
      repo: fc.repo.name, name, version: digest,
      files: [{ filename: MANIFEST_FILE, cid: blob.cid }, ...[...files].map(([filename, cid]) => ({ filename, cid }))],
      metadata: { ...metadata }
    })
  } catch (err) {
    if (!(err instanceof RegistryError && err.code === 'Conflict')) throw err
  }
  completeCachedManifests(fc, name)
}

/** What of `references` is cached in this image: digest → CID. */
function cachedFiles (fc: FormatContext, name: string, references: string[]): Map<string, string> {
  const files = new Map<string, string>()
  for (const digest of references) {
    const cid = linkedBlob(fc, name, digest)?.cid ??
      fc.artifacts.get(fc.repo.name, name, digest)?.files.find(f => f.filename === MANIFEST_FILE)?.cid
    if (cid != null) files.set(digest, cid)
  }
  return files
}

/** A cached manifest gets everything it pins as files once all of it is cached (one replace per
 *  manifest, not one per layer), so the mesh replicates the whole image as for a pushed one.
 *  Called after a blob or a child manifest of `name` is cached. */
export function completeCachedManifests (fc: FormatContext, name: string): void {
  for (const a of fc.artifacts.versions(fc.repo.name, name)) {
    const md = a.metadata as Partial<CachedManifestMetadata>
    if (md.cached !== true || md.references == null || a.files.length === md.references.length + 1) continue
    const files = cachedFiles(fc, name, md.references)
    const manifest = a.files.find(f => f.filename === MANIFEST_FILE)
    if (files.size < md.references.length || manifest == null) continue
    fc.artifacts.publish({
      repo: fc.repo.name, name, version: a.version,
      files: [{ filename: MANIFEST_FILE, cid: manifest.cid }, ...[...files].map(([filename, cid]) => ({ filename, cid }))],
      metadata: a.metadata
    }, { replace: true })
  }
}

async function readAll (stream: Readable): Promise<Buffer> {
  const pieces: Buffer[] = []
  for await (const piece of stream) pieces.push(piece as Buffer)
  return Buffer.concat(pieces)
}
