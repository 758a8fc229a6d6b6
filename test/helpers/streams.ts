// Deterministic test bytes produced as streams (gigabytes never sit in memory), and plain
// node:http requests for what fetch hides: byte counts while uploading, raw headers, encodings.
import { createCipheriv, createHash, type Hash } from 'node:crypto'
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import { Readable } from 'node:stream'

export const MiB = 1024 * 1024

/** `size` bytes of the AES-256-CTR keystream keyed by `seed`: the same seed gives the same bytes,
 *  at several GiB/s, in pieces of `pieceSize` (the last one shorter). */
export function * deterministicPieces (size: number, seed: string, pieceSize = MiB): Generator<Buffer> {
  const cipher = createCipheriv('aes-256-ctr', createHash('sha256').update(seed).digest(), Buffer.alloc(16))
  const zeros = Buffer.alloc(pieceSize)
  for (let left = size; left > 0; left -= pieceSize) {
    yield cipher.update(left >= pieceSize ? zeros : zeros.subarray(0, left))
  }
}

/** The same bytes in one buffer, for small sizes. */
export function deterministicBytes (size: number, seed: string): Buffer {
  return Buffer.concat([...deterministicPieces(size, seed)])
}

/** A stream of deterministic bytes that feeds every piece to `hash` (if given) as it goes out and
 *  reports the running total to `onProgress`. Pulled on demand, so it follows backpressure. */
export function deterministicStream (size: number, seed: string, opts: { hash?: Hash, onProgress?: (sent: number) => void } = {}): Readable {
  let sent = 0
  return Readable.from((function * () {
    for (const piece of deterministicPieces(size, seed)) {
      opts.hash?.update(piece)
      sent += piece.byteLength
      opts.onProgress?.(sent)
      yield piece
    }
  })(), { objectMode: false, highWaterMark: MiB })
}

export const sha256Hex = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

export interface RawResponse { status: number, headers: IncomingHttpHeaders, body: Buffer }

/** One HTTP request. A Readable body is streamed (chunked unless a content-length header is
 *  given). Resolves with the response once it has fully arrived; `onBody` instead of buffering
 *  sees each piece of the response body (then `body` is empty). `rawPath` is sent exactly as
 *  given (fetch and URL would resolve "..", "%2e%2e" and backslashes before sending). */
export async function rawRequest (method: string, url: string, opts: {
  headers?: Record<string, string>
  body?: Buffer | string | Readable
  onBody?: (piece: Buffer) => void
  rawPath?: string
} = {}): Promise<RawResponse> {
  return await new Promise((resolve, reject) => {
    let responded = false
    const options = { method, headers: opts.headers, ...(opts.rawPath != null ? { path: opts.rawPath } : {}) }
    const req = httpRequest(url, options, (res) => {
      responded = true
      const pieces: Buffer[] = []
      res.on('data', (piece: Buffer) => { if (opts.onBody != null) opts.onBody(piece); else pieces.push(piece) })
      res.once('end', () => { resolve({ status: res.statusCode as number, headers: res.headers, body: Buffer.concat(pieces) }) })
      res.once('error', reject)
    })
    // A server that answers early (413, 401) may close while the body is still going out:
    // the response is what counts, not the broken pipe.
    req.on('error', (err) => { if (!responded) reject(err) })
    const body = opts.body
    if (body instanceof Readable) {
      body.once('error', (err) => { req.destroy(err) })
      body.pipe(req)
    } else {
      req.end(body)
    }
  })
}

/** Downloads `url`, hashing the body as it streams; never holds it in memory. */
export async function downloadSha256 (url: string, headers: Record<string, string> = {}): Promise<{ status: number, size: number, sha256: string, headers: IncomingHttpHeaders }> {
  const hash = createHash('sha256')
  let size = 0
  const res = await rawRequest('GET', url, { headers, onBody: (piece) => { hash.update(piece); size += piece.byteLength } })
  return { status: res.status, size, sha256: hash.digest('hex'), headers: res.headers }
}
