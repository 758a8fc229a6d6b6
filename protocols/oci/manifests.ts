// Manifests: each is an artifact (name = image name within the repository, version = manifest
// digest) whose files are the manifest bytes plus every blob or child manifest it references, so
// replication carries a whole image. Tags live in the tags table.
//   PUT      /v2/<repo>/<name>/manifests/<tag|digest>[?tag=...]
//   GET|HEAD /v2/<repo>/<name>/manifests/<tag|digest>   the pushed bytes, byte for byte
//   DELETE   /v2/<repo>/<name>/manifests/<digest>       the manifest (and tags pointing at it)
//   DELETE   /v2/<repo>/<name>/manifests/<tag>          the tag only
import { createHash } from 'node:crypto'
import { Readable } from 'node:stream'
import type { Context } from 'koa'
import getRawBody from 'raw-body'
import { RegistryError } from '../../store/errors.ts'
import type { Artifact, ArtifactFile } from '../../store/types.ts'
import { actorOf, type FormatContext } from '../format.ts'
import { sendBlob } from '../http/blob-response.ts'
import { linkedBlob } from './blobs.ts'
import { OciError, ociError, type OciErrorEntry } from './errors.ts'
import { isForeign, parseManifest, type Manifest } from './media.ts'
import { checkTag, isDigest, isTag, MANIFEST_FILE, sha256Of } from './names.ts'
import { noBody, queryAll } from './respond.ts'

/** The spec asks registries to take manifests of at least 4 MB. */
const MAX_MANIFEST = 4 * 1024 * 1024
export { MANIFEST_FILE }

export interface ManifestMetadata {
  mediaType: string
  digest: string
  size: number
  artifactType: string | null
  subject: string | null
  annotations: Record<string, string> | null
  pushedBy: string
}

/** The manifest a tag or digest names in (repo, name), if any. */
export function resolveManifest (fc: FormatContext, name: string, reference: string): Artifact | undefined {
  if (isDigest(reference)) {
    sha256Of(reference)
    return fc.artifacts.get(fc.repo.name, name, reference)
  }
  if (!isTag(reference)) throw ociError('MANIFEST_INVALID', `"${reference}" is neither a tag nor a digest`)
  const digest = fc.artifacts.tags(fc.repo.name, name)[reference]
  return digest == null ? undefined : fc.artifacts.get(fc.repo.name, name, digest)
}

export async function getManifest (ctx: Context, fc: FormatContext, name: string, reference: string): Promise<void> {
  const artifact = resolveManifest(fc, name, reference)
  const file = artifact?.files.find(f => f.filename === MANIFEST_FILE)
  const blob = file == null ? undefined : await fc.store.locate(file.cid)
  if (artifact == null || blob == null) throw ociError('MANIFEST_UNKNOWN', `manifest ${reference} is not in ${fc.repo.name}/${name}`, { reference })
  const meta = artifact.metadata as unknown as ManifestMetadata
  sendBlob(ctx, fc.store, blob, {
    contentType: meta.mediaType,
    lastModified: artifact.updatedAt,
    headers: { 'Docker-Content-Digest': meta.digest }
  })
}

export async function putManifest (ctx: Context, fc: FormatContext, name: string, reference: string): Promise<void> {
  checkManifestReference(ctx, reference)
  await storeManifest(ctx, fc, name, reference, await readManifestBody(ctx))
}

/** A manifest PUT's reference and ?tag= values are a digest or tags (checked before the body is read). */
export function checkManifestReference (ctx: Context, reference: string): void {
  if (isDigest(reference)) sha256Of(reference)
  else checkTag(reference)
  queryAll(ctx, 'tag').forEach(checkTag)
}

/** The body of a manifest PUT (at most the 4 MB the spec asks registries to take). */
export async function readManifestBody (ctx: Context): Promise<Buffer> {
  return await getRawBody(ctx.req, { limit: MAX_MANIFEST })
}

/** A pushed manifest's bytes, checked and recorded with its tags (the rest of putManifest). */
export async function storeManifest (ctx: Context, fc: FormatContext, name: string, reference: string, bytes: Buffer): Promise<void> {
  const user = actorOf(ctx)
  const byDigest = isDigest(reference)
  const extraTags = queryAll(ctx, 'tag')
  const sha256 = createHash('sha256').update(bytes).digest('hex')
  const digest = `sha256:${sha256}`
  if (byDigest && reference !== digest) {
    throw ociError('DIGEST_INVALID', `the manifest's digest is ${digest}, not ${reference}`, { digest: reference })
  }
  const manifest = parseManifest(bytes, ctx.get('content-type'))
  const files = referencedFiles(fc, name, manifest)

  const blob = await fc.store.put(Readable.from([bytes]), { expect: { sha256 } })
  fc.blobLinks.link(fc.repo.name, name, blob.cid)
  if (fc.artifacts.get(fc.repo.name, name, digest) == null) {
    const metadata: ManifestMetadata = {
      mediaType: manifest.mediaType,
      digest,
      size: bytes.length,
      artifactType: manifest.artifactType ?? null,
      subject: manifest.subject?.digest ?? null,
      annotations: manifest.annotations ?? null,
      pushedBy: user
    }
    try {
      fc.artifacts.publish({
        repo: fc.repo.name, name, version: digest, files: [{ filename: MANIFEST_FILE, cid: blob.cid }, ...files], metadata: { ...metadata }
      })
    } catch (err) {
      // The same bytes pushed concurrently: both pushes describe one manifest.
      if (!(err instanceof RegistryError && err.code === 'Conflict')) throw err
    }
  }
  const tags = byDigest ? extraTags : [reference, ...extraTags]
  for (const tag of tags) fc.artifacts.setTag(fc.repo.name, name, tag, digest)

  ctx.set('Location', `${fc.baseUrl(ctx)}/${name}/manifests/${digest}`)
  ctx.set('Docker-Content-Digest', digest)
  if (manifest.subject != null) ctx.set('OCI-Subject', manifest.subject.digest)
  if (byDigest && extraTags.length > 0) ctx.set('OCI-Tag', extraTags.join(', '))
  noBody(ctx, 201)
}

/** The artifact files a manifest pins: its blobs (image) or child manifests (index). Refuses the
 *  manifest, naming every missing one, if any is not in this image. */
function referencedFiles (fc: FormatContext, name: string, manifest: Manifest): ArtifactFile[] {
  const files = new Map<string, string>()
  const missing: OciErrorEntry[] = []
  for (const d of manifest.blobs) {
    const blob = linkedBlob(fc, name, d.digest)
    if (blob != null && blob.size !== d.size) {
      throw ociError('MANIFEST_INVALID', `descriptor ${d.digest} says ${d.size} bytes; the blob has ${blob.size}`, { digest: d.digest })
    }
    if (blob != null) files.set(d.digest, blob.cid)
    else if (!isForeign(d)) missing.push({ code: 'MANIFEST_BLOB_UNKNOWN', message: `blob ${d.digest} is not in ${fc.repo.name}/${name}`, detail: { digest: d.digest } })
  }
  for (const d of manifest.manifests) {
    const child = fc.artifacts.get(fc.repo.name, name, d.digest)
    const cid = child?.files.find(f => f.filename === MANIFEST_FILE)?.cid
    if (cid != null) files.set(d.digest, cid)
    else missing.push({ code: 'MANIFEST_BLOB_UNKNOWN', message: `manifest ${d.digest} is not in ${fc.repo.name}/${name}`, detail: { digest: d.digest } })
  }
  if (missing.length > 0) {
    const [first, ...more] = missing
    throw new OciError(first.code, first.message, { detail: first.detail, more })
  }
  return [...files].map(([digest, cid]) => ({ filename: digest, cid }))
}

export function deleteManifest (ctx: Context, fc: FormatContext, name: string, reference: string): void {
  try {
    if (isDigest(reference)) {
      sha256Of(reference)
      const cid = fc.artifacts.get(fc.repo.name, name, reference)?.files.find(f => f.filename === MANIFEST_FILE)?.cid
      fc.artifacts.remove(fc.repo.name, name, reference)
      // Its bytes were also readable as a blob of this image; that goes with it.
      if (cid != null) fc.blobLinks.unlink(fc.repo.name, name, cid)
    } else {
      checkTag(reference)
      fc.artifacts.removeTag(fc.repo.name, name, reference)
    }
  } catch (err) {
    if (err instanceof RegistryError && err.code === 'NotFound' && !(err instanceof OciError)) {
      throw ociError('MANIFEST_UNKNOWN', `manifest ${reference} is not in ${fc.repo.name}/${name}`, { reference })
    }
    throw err
  }
  noBody(ctx, 202)
}
