// Index documents (packuments, simple pages, later every format's index) rendered once per
// generation of what they describe, with a content-derived ETag, and gzip-compressed once per
// rendering instead of once per request: for an index most GETs are of an unchanged document, and
// compressing it was most of their cost (koa-compress gzips every response anew).
import { createHash } from 'node:crypto'
import { gzip } from 'node:zlib'
import type { Context } from 'koa'

/** Smaller bodies are not worth compressing (koa-compress's threshold in node/http.ts). */
const GZIP_THRESHOLD = 1024
/** Computed once per document, so a better ratio than the per-response default is affordable. */
const GZIP_LEVEL = 6

export class RenderedDocument {
  readonly body: string
  readonly etag: string
  readonly lastModified?: number
  #gzip: Buffer | undefined
  #compressing = false

  constructor (body: string, lastModified?: number) {
    this.body = body
    this.lastModified = lastModified
    this.etag = `W/"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`
  }

  /** The gzip bytes, once compressed. Compression starts (once, off the event loop) at the first
   *  call; until it is done, responses are compressed per request as before. */
  gzipped (): Buffer | undefined {
    if (this.#gzip == null && !this.#compressing && this.body.length >= GZIP_THRESHOLD) {
      this.#compressing = true
      gzip(this.body, { level: GZIP_LEVEL }, (err, out) => { if (err == null) this.#gzip = out })
    }
    return this.#gzip
  }
}

export function renderJson (doc: unknown, lastModified?: number): RenderedDocument {
  return new RenderedDocument(JSON.stringify(doc), lastModified)
}

const MAX_BYTES = 64 * 1024 * 1024

/** Rendered documents by key, reused while the generation of what they describe is unchanged
 *  (ArtifactIndex.generation); least recently used go first past MAX_BYTES. */
export class RenderCache {
  readonly #entries = new Map<string, { doc: RenderedDocument, generation: number }>()
  #bytes = 0

  /** The cached document for `key` at `generation`, or renders, caches and returns it. */
  get (key: string, generation: number, render: () => RenderedDocument): RenderedDocument {
    const hit = this.#entries.get(key)
    if (hit != null && hit.generation === generation) {
      this.#entries.delete(key) // re-insert: Map order is our LRU order
      this.#entries.set(key, hit)
      return hit.doc
    }
    if (hit != null) this.#drop(key, hit.doc)
    const doc = render()
    this.#entries.set(key, { doc, generation })
    this.#bytes += doc.body.length
    for (const [k, e] of this.#entries) {
      if (this.#bytes <= MAX_BYTES) break
      this.#drop(k, e.doc)
    }
    return doc
  }

  #drop (key: string, doc: RenderedDocument): void {
    this.#entries.delete(key)
    this.#bytes -= doc.body.length
  }
}

export interface SendOptions {
  type: string
  cacheControl: string
  /** Request headers the document depends on besides Accept-Encoding (npm: Accept). */
  vary?: string
  /** Whether to keep (and use) the compressed bytes: for cached documents, not one-offs. */
  reuse?: boolean
}

/** Sends a rendered document: a 304 when the client's ETag or date matches, the kept gzip bytes
 *  when the client takes gzip, else the body (compressed by the node's middleware). */
export function sendRendered (ctx: Context, doc: RenderedDocument, opts: SendOptions): void {
  ctx.type = opts.type
  if (opts.vary != null) ctx.vary(opts.vary)
  ctx.set('Cache-Control', opts.cacheControl)
  ctx.set('ETag', doc.etag)
  if (doc.lastModified != null) ctx.lastModified = new Date(doc.lastModified)
  ctx.status = 200
  if (ctx.fresh) { ctx.status = 304; return }
  const packed = opts.reuse === true && ctx.acceptsEncodings('gzip', 'identity') === 'gzip' ? doc.gzipped() : undefined
  if (packed == null) { ctx.body = doc.body; return }
  ctx.compress = false
  ctx.vary('Accept-Encoding')
  ctx.set('Content-Encoding', 'gzip')
  ctx.body = packed
}
