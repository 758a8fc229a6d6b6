// Blob uploads: monolithic (POST ?digest=, or POST then PUT), chunked (POST, PATCH..., PUT),
// status (GET), cancel (DELETE) and cross-repository mounts (POST ?mount=&from=).
// https://github.com/opencontainers/distribution-spec/blob/main/spec.md#pushing-blobs
import type { Context } from 'koa'
import { RegistryError } from '../../store/errors.ts'
import type { UploadStatus } from '../../store/uploads.ts'
import type { BlobInfo } from '../../store/types.ts'
import type { FormatContext } from '../format.ts'
import { requestAbortSignal } from '../http/blob-response.ts'
import { requestBody } from '../http/request-body.ts'
import { refuseDeclaredOver } from '../http/body-limit.ts'
import { canRead } from './auth.ts'
import { linkedBlob } from './blobs.ts'
import { OciError, ociError } from './errors.ts'
import { sha256Of } from './names.ts'
import { noBody, query } from './respond.ts'

/** Finds the repository and image of a full OCI name ("<repo>/<image>") for a mount's `from`. */
export type RepoLookup = (fullName: string) => { fc: FormatContext, name: string } | undefined

const owner = (fc: FormatContext, name: string) => `${fc.repo.name}/${name}`

/** OCI names blobs by sha256 only: uploads compute no other SHA digest. */
export const OCI_DIGESTS = [] as const

export async function startUpload (ctx: Context, fc: FormatContext, name: string, lookup: RepoLookup): Promise<void> {
  const mount = query(ctx, 'mount')
  if (mount !== '') {
    const blob = tryMount(ctx, fc, name, mount, query(ctx, 'from'), lookup)
    if (blob != null) { created(ctx, fc, name, mount); return }
    // Not mountable (unknown source, no read access, blob absent): the spec says fall back to
    // an ordinary upload session.
  }
  const digest = query(ctx, 'digest')
  if (digest !== '') {
    const sha256 = sha256Of(digest)
    checkDeclaredSize(ctx, fc, 0)
    const blob = await storeErrors(fc.store.put(requestBody(ctx), {
      expect: { sha256 }, maxBytes: fc.limits.uploadBytes, digests: OCI_DIGESTS, signal: requestAbortSignal(ctx)
    }))
    fc.blobLinks.link(fc.repo.name, name, blob.cid)
    created(ctx, fc, name, digest)
    return
  }
  const session = await fc.uploads.begin(owner(fc, name), { digests: OCI_DIGESTS })
  sessionHeaders(ctx, fc, name, session)
  noBody(ctx, 202)
}

function tryMount (ctx: Context, fc: FormatContext, name: string, digest: string, from: string, lookup: RepoLookup): BlobInfo | undefined {
  const source = lookup(from)
  if (source == null || !canRead(ctx, source.fc, source.name)) return undefined
  let blob: BlobInfo | undefined
  try { blob = linkedBlob(source.fc, source.name, digest) } catch { return undefined }
  if (blob == null) return undefined
  fc.blobLinks.link(fc.repo.name, name, blob.cid)
  return blob
}

export function uploadStatus (ctx: Context, fc: FormatContext, name: string, id: string): void {
  sessionHeaders(ctx, fc, name, session(fc, name, id))
  noBody(ctx, 204)
}

export async function patchUpload (ctx: Context, fc: FormatContext, name: string, id: string): Promise<void> {
  const status = await appendChunk(ctx, fc, name, session(fc, name, id))
  sessionHeaders(ctx, fc, name, status)
  noBody(ctx, 202)
}

export async function finishUpload (ctx: Context, fc: FormatContext, name: string, id: string): Promise<void> {
  const current = session(fc, name, id)
  const digest = query(ctx, 'digest')
  if (digest === '') throw ociError('DIGEST_INVALID', 'the closing PUT needs ?digest=<digest of the whole blob>')
  const sha256 = sha256Of(digest)
  await appendChunk(ctx, fc, name, current)
  const blob = await storeErrors(fc.uploads.commit(id, { sha256 }))
  fc.blobLinks.link(fc.repo.name, name, blob.cid)
  created(ctx, fc, name, digest)
}

export async function cancelUpload (ctx: Context, fc: FormatContext, name: string, id: string): Promise<void> {
  session(fc, name, id)
  await storeErrors(fc.uploads.cancel(id))
  noBody(ctx, 204)
}

/** Appends the request body, if any. A Content-Range must start where the upload stands. A chunk
 *  refused for any reason leaves the upload exactly as it was: everything that can be checked
 *  is checked before the body is read, and what only shows after (a Content-Range the body
 *  contradicts) rewinds the upload to where the chunk started. */
async function appendChunk (ctx: Context, fc: FormatContext, name: string, current: UploadStatus): Promise<UploadStatus> {
  const range = ctx.get('content-range')
  let declared: number | undefined
  if (range !== '') {
    // The spec's form is "<start>-<end>"; some clients send RFC 9110's "bytes <start>-<end>/<total>".
    const m = /^(?:bytes[ =])?(\d+)-(\d+)(?:\/(?:\d+|\*))?$/.exec(range)
    if (m == null || Number(m[1]) !== current.size || Number(m[2]) < Number(m[1])) {
      throw new OciError('BLOB_UPLOAD_INVALID', m == null
        ? `malformed Content-Range "${range}"`
        : `chunk ${range} does not start at the next byte (${current.size}) of the upload`, {
        status: 'RangeNotSatisfiable',
        headers: statusHeaders(ctx, fc, name, current)
      })
    }
    declared = Number(m[2]) - Number(m[1]) + 1
    const length = ctx.get('content-length')
    if (length !== '' && Number(length) !== declared) {
      throw ociError('SIZE_INVALID', `Content-Range ${range} announces ${declared} bytes but Content-Length is ${length}`)
    }
  }
  checkDeclaredSize(ctx, fc, current.size)
  if (ctx.get('content-length') === '0' || (ctx.get('content-length') === '' && ctx.get('transfer-encoding') === '')) {
    if (declared != null) throw ociError('SIZE_INVALID', `Content-Range ${range} announces ${declared} bytes but the body is empty`)
    return current
  }
  const after = await storeErrors(fc.uploads.append(current.id, requestBody(ctx), { maxBytes: fc.limits.uploadBytes, signal: requestAbortSignal(ctx) }))
  if (declared != null && after.size - current.size !== declared) {
    const back = await storeErrors(fc.uploads.rewind(current.id, current.size))
    throw new OciError('SIZE_INVALID', `Content-Range ${range} announced ${declared} bytes, received ${after.size - current.size}; the chunk was not kept`, {
      headers: statusHeaders(ctx, fc, name, back)
    })
  }
  return after
}

function session (fc: FormatContext, name: string, id: string): UploadStatus {
  const s = fc.uploads.status(id)
  if (s == null || s.owner !== owner(fc, name)) {
    throw ociError('BLOB_UPLOAD_UNKNOWN', `upload ${id} is unknown to ${owner(fc, name)} (finished, cancelled or expired)`, { id })
  }
  return s
}

function statusHeaders (ctx: Context, fc: FormatContext, name: string, s: UploadStatus): Record<string, string> {
  return {
    Location: `${fc.baseUrl(ctx)}/${name}/blobs/uploads/${s.id}`,
    // Inclusive end of what has arrived; "0-0" for an empty upload, as the reference registry says.
    Range: `0-${Math.max(s.size - 1, 0)}`,
    'Docker-Upload-UUID': s.id,
    'Blob-Upload-Session-ID': s.id
  }
}

function sessionHeaders (ctx: Context, fc: FormatContext, name: string, s: UploadStatus): void {
  ctx.set(statusHeaders(ctx, fc, name, s))
}

function created (ctx: Context, fc: FormatContext, name: string, digest: string): void {
  ctx.set('Location', `${fc.baseUrl(ctx)}/${name}/blobs/${digest}`)
  ctx.set('Docker-Content-Digest', digest)
  noBody(ctx, 201)
}

/** A body whose declared size would take the upload over the limit, refused before it is read. */
function checkDeclaredSize (ctx: Context, fc: FormatContext, already: number): void {
  try { refuseDeclaredOver(ctx, fc.limits.uploadBytes, { already }) } catch (err) { throw inOciTerms(err) }
}

/** The store's generic errors in OCI's words. */
async function storeErrors<T> (p: Promise<T>): Promise<T> {
  try {
    return await p
  } catch (err) {
    throw inOciTerms(err)
  }
}

function inOciTerms (err: unknown): unknown {
  if (!(err instanceof RegistryError) || err instanceof OciError) return err
  switch (err.code) {
    case 'IntegrityError': return new OciError('DIGEST_INVALID', err.message)
    case 'TooLarge': return new OciError('SIZE_INVALID', err.message, { status: 'TooLarge', headers: err.headers })
    case 'NotFound': return new OciError('BLOB_UPLOAD_UNKNOWN', err.message)
    case 'Conflict': return new OciError('BLOB_UPLOAD_INVALID', err.message, { status: 'Conflict' })
    case 'TooManyRequests': return new OciError('TOOMANYREQUESTS', err.message, { headers: err.headers })
    default: return err
  }
}
