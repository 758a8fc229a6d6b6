// Blob reads and deletes, scoped to the image names a blob was pushed or mounted into.
//   GET|HEAD /v2/<repo>/<name>/blobs/<digest>   (Range, ETag, Docker-Content-Digest)
//   DELETE   /v2/<repo>/<name>/blobs/<digest>   unlinks it from this name; the bytes stay while
//                                               anything else refers to them
import type { Context } from 'koa'
import type { BlobInfo } from '../../store/types.ts'
import type { FormatContext } from '../format.ts'
import { sendBlob } from '../http/blob-response.ts'
import { ociError } from './errors.ts'
import { sha256Of } from './names.ts'
import { noBody } from './respond.ts'

/** The stored blob behind `digest` if it belongs to `name` in this repository. */
export function linkedBlob (fc: FormatContext, name: string, digest: string): BlobInfo | undefined {
  const blob = fc.store.statBySha256(sha256Of(digest))
  if (blob == null || !fc.blobLinks.has(fc.repo.name, name, blob.cid)) return undefined
  return blob
}

/** Like linkedBlob, but also a blob known only from a mesh manifest, fetched as it streams. */
export async function servableBlob (fc: FormatContext, name: string, digest: string): Promise<BlobInfo | undefined> {
  const cid = fc.store.cidBySha256(sha256Of(digest))
  if (cid == null || !fc.blobLinks.has(fc.repo.name, name, cid)) return undefined
  return await fc.store.locate(cid)
}

export async function getBlob (ctx: Context, fc: FormatContext, name: string, digest: string): Promise<void> {
  const blob = await servableBlob(fc, name, digest)
  if (blob == null) throw ociError('BLOB_UNKNOWN', `blob ${digest} is not in ${fc.repo.name}/${name}`, { digest })
  sendBlob(ctx, fc.store, blob, { headers: { 'Docker-Content-Digest': digest } })
}

export function deleteBlob (ctx: Context, fc: FormatContext, name: string, digest: string): void {
  const blob = linkedBlob(fc, name, digest)
  if (blob == null || !fc.blobLinks.unlink(fc.repo.name, name, blob.cid)) {
    throw ociError('BLOB_UNKNOWN', `blob ${digest} is not in ${fc.repo.name}/${name}`, { digest })
  }
  noBody(ctx, 202)
}
