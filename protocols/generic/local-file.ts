// A local generic repository's file: stored from a PUT body, served to a GET. A virtual
// repository's PUT and its local members' GETs go through the same two functions.
import type { Context } from 'koa'
import type { FormatContext } from '../format.ts'
import { requestAbortSignal, sendBlob } from '../http/blob-response.ts'
import { refuseDeclaredOver } from '../http/body-limit.ts'
import { encodePath } from '../http/encode.ts'
import { requestBody } from '../http/request-body.ts'
import { expectedChecksums } from './request-path.ts'

/** Generic uploads store sha256 only (+ any checksum the client declares, to check it). */
export const GENERIC_DIGESTS = [] as const

const VERSION = '' // generic files have a path, not versions

/** Stores the request body as `path` in the local repository `fc` (a virtual repository's PUT
 *  lands here too, in its defaultLocal member). */
export async function putFile (ctx: Context, fc: FormatContext, path: string, user: string): Promise<void> {
  refuseDeclaredOver(ctx, fc.limits.uploadBytes)
  // Everything the answer is built from is ready before anything is stored or published: a
  // response that fails after the publish would tell the client "failed" about a file that
  // every peer already has.
  const url = `${fc.baseUrl(ctx)}/${encodePath(path)}`
  const blob = await fc.store.put(requestBody(ctx), {
    expect: expectedChecksums(ctx),
    maxBytes: fc.limits.uploadBytes,
    digests: GENERIC_DIGESTS,
    signal: requestAbortSignal(ctx)
  })
  const contentType = ctx.get('content-type')
  const existed = fc.artifacts.get(fc.repo.name, path, VERSION) != null
  fc.artifacts.publish({
    repo: fc.repo.name,
    name: path,
    version: VERSION,
    files: [{ filename: path.split('/').pop() as string, cid: blob.cid }],
    metadata: {
      contentType: contentType === '' || contentType.startsWith('application/x-www-form-urlencoded') ? null : contentType,
      uploadedBy: user
    }
  }, { replace: true })
  ctx.status = existed ? 200 : 201
  ctx.set('Location', url)
  ctx.body = {
    repo: fc.repo.name,
    path,
    size: blob.size,
    cid: blob.cid,
    // Only what was computed: a digest left out is computed when something needs it, not here.
    checksums: { sha256: blob.sha256, ...(blob.sha1 !== '' ? { sha1: blob.sha1 } : {}), ...(blob.sha512 !== '' ? { sha512: blob.sha512 } : {}), md5: blob.md5 },
    downloadUri: url
  }
}

/** Serves `path` from the local repository `fc`; false if it has no such file. */
export async function sendLocalFile (ctx: Context, fc: FormatContext, path: string): Promise<boolean> {
  const artifact = fc.artifacts.get(fc.repo.name, path, VERSION)
  if (artifact == null || artifact.files.length === 0) return false
  const [file] = fc.artifacts.filesWithBlobs(artifact)
  sendBlob(ctx, fc.store, (await fc.store.locate(file.cid)) ?? file.blob, {
    contentType: (artifact.metadata.contentType as string | null) ?? undefined,
    filename: file.filename,
    lastModified: artifact.updatedAt
  })
  return true
}
