// Serving a stored blob over HTTP: conditional requests, single byte ranges, checksum headers.
// Formats call this so every download behaves the same way.
import type { Context } from 'koa'
import parseRange from 'range-parser'
import { RegistryError } from '../../store/errors.ts'
import type { BlobInfo, BlobStore } from '../../store/types.ts'
import { contentDisposition } from './encode.ts'
import { sendFileRange } from './file-body.ts'

export interface BlobResponseOptions {
  contentType?: string
  lastModified?: number
  /** The name a client saving the download should give it (Content-Disposition). */
  filename?: string
  /** Extra headers (a format's own checksum header names). */
  headers?: Record<string, string>
}

export function checksumHeaders (blob: BlobInfo): Record<string, string> {
  const h: Record<string, string> = {
    'X-Checksum-Sha256': blob.sha256,
    'X-Akmesh-Cid': blob.cid,
    // RFC 9530 representation digest, base64 of the raw digest.
    'Repr-Digest': `sha-256=:${Buffer.from(blob.sha256, 'hex').toString('base64')}:`
  }
  // A digest the blob was stored without ('') is not computed for a download.
  if (blob.sha1 !== '') h['X-Checksum-Sha1'] = blob.sha1
  if (blob.sha512 !== '') h['X-Checksum-Sha512'] = blob.sha512
  if (blob.md5 != null) h['X-Checksum-Md5'] = blob.md5
  return h
}

export function sendBlob (ctx: Context, store: BlobStore, blob: BlobInfo, opts: BlobResponseOptions = {}): void {
  ctx.set('ETag', `"${blob.cid}"`)
  if (opts.lastModified != null) ctx.lastModified = new Date(opts.lastModified)
  ctx.set('Accept-Ranges', 'bytes')
  ctx.set(checksumHeaders(blob))
  if (opts.filename != null) ctx.set('Content-Disposition', contentDisposition(opts.filename))
  if (opts.headers != null) ctx.set(opts.headers)
  // Exactly the type the uploader gave (ctx.type would add a charset nobody declared).
  ctx.set('Content-Type', opts.contentType ?? 'application/octet-stream')
  // Stored bytes go out as stored: Content-Length, ETag and the checksums describe them, and a
  // JSON or text artifact must not be re-encoded (or cost CPU) because its type looks compressible.
  ctx.compress = false

  ctx.status = 200
  if (ctx.fresh) { ctx.status = 304; return }

  let range: { start: number, end: number } | undefined
  const rangeHeader = ctx.get('range')
  const ifRange = ctx.get('if-range')
  if (rangeHeader !== '' && (ifRange === '' || ifRange === `"${blob.cid}"`)) {
    const parsed = parseRange(blob.size, rangeHeader, { combine: true })
    if (parsed === -1) {
      // RFC 9110 §15.5.17: a 416 names the current length.
      throw new RegistryError('RangeNotSatisfiable', `range ${rangeHeader} is outside the ${blob.size} bytes of the blob`,
        { 'Content-Range': `bytes */${blob.size}` })
    }
    // Malformed (-2) or multi-range requests get the whole body, which RFC 9110 permits.
    if (parsed !== -2 && parsed.type === 'bytes' && parsed.length === 1) {
      range = parsed[0]
      ctx.status = 206
      ctx.set('Content-Range', `bytes ${range.start}-${range.end}/${blob.size}`)
    }
  }
  ctx.length = range == null ? blob.size : range.end - range.start + 1
  if (ctx.method === 'HEAD') return // headers only; never open the file
  const fd = store.openFd?.(blob.cid)
  if (fd == null) { ctx.body = store.open(blob.cid, range); return } // absent here: streams from the mesh
  // A local file goes straight to the socket in big blocks; Koa adds nothing to a blob body.
  ctx.respond = false
  ctx.res.statusCode = ctx.status
  void sendFileRange(ctx.res, fd, range?.start ?? 0, range?.end ?? blob.size - 1)
}

/** An AbortSignal that fires when the client goes away before its request body is complete. */
export function requestAbortSignal (ctx: Context): AbortSignal {
  const ac = new AbortController()
  ctx.req.once('close', () => { if (!ctx.req.complete) ac.abort(new Error('client closed the connection')) })
  return ac.signal
}
