// The Simple Repository API's documents, rendered from one model whatever the files come from
// (rows of a local repository, an upstream's index, the members of a virtual repository):
// PEP 503 HTML or PEP 691 JSON chosen by Accept, with hashes, Requires-Python (PEP 503),
// yanking (PEP 592), core metadata (PEP 658/714), sizes and upload times (PEP 700).
import type { Context } from 'koa'
import { RenderedDocument, sendRendered } from '../http/rendered.ts'
import type { Yank } from './release.ts'

export const JSON_TYPE = 'application/vnd.pypi.simple.v1+json'
export const HTML_TYPE = 'application/vnd.pypi.simple.v1+html'
// PEP 691: the order breaks ties between equal q-values; plain HTML first for old clients and
// browsers that send no Accept at all.
const OFFERED = ['text/html', HTML_TYPE, 'application/vnd.pypi.simple.latest+html', JSON_TYPE, 'application/vnd.pypi.simple.latest+json']
export const API_VERSION = '1.1'

/** One file of a project page, as this node announces it. */
export interface IndexFile {
  filename: string
  /** Absolute URL on this node. */
  url: string
  /** Hex digests by hashlib name; sha256 whenever known. */
  hashes: Record<string, string>
  requiresPython: string | null
  /** PEP 658/714: false if no core metadata file is served; else the hashes of `<url>.metadata`
   *  (empty when it is served but its hash is unknown). */
  coreMetadata: false | Record<string, string>
  yanked: Yank
  size?: number
  /** PEP 700, ISO 8601. */
  uploadTime?: string
}

export interface IndexProject {
  /** PEP 503 normalised. */
  name: string
  /** For the HTML title. */
  displayName: string
  /** PEP 700 `versions`, oldest first. */
  versions: string[]
  files: IndexFile[]
}

export type Representation = { kind: 'html', type: string } | { kind: 'json', type: string }

/** PEP 691 content negotiation; the `format` query parameter overrides Accept. Nothing acceptable
 *  gets HTML, one of the answers PEP 691 allows (the others are 406 and 300). */
export function negotiate (ctx: Context): Representation {
  const format = typeof ctx.query.format === 'string' ? ctx.query.format : undefined
  const chosen = (format != null && OFFERED.includes(format) ? format : ctx.accepts(OFFERED)) || 'text/html'
  if (chosen.endsWith('+json')) return { kind: 'json', type: JSON_TYPE }
  return { kind: 'html', type: chosen === 'text/html' ? 'text/html; charset=utf-8' : HTML_TYPE }
}

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }
export const escapeHtml = (s: string) => s.replace(/[&<>"']/g, c => HTML_ESCAPES[c])

/** Sends a rendered index with a validator: pip revalidates (Cache-Control: no-cache) so a yank
 *  or a new upload is seen at once, and an unchanged page costs a 304. */
export function sendIndex (ctx: Context, rep: Representation, body: string | RenderedDocument): void {
  const cached = typeof body !== 'string'
  sendRendered(ctx, cached ? body : new RenderedDocument(body), { type: rep.type, vary: 'Accept', cacheControl: 'no-cache', reuse: cached })
}

export function renderProjectList (rep: Representation, names: string[]): string {
  if (rep.kind === 'json') return JSON.stringify({ meta: { 'api-version': API_VERSION }, projects: names.map(name => ({ name })) })
  return page('Simple index', names.map(n => `    <a href="${escapeHtml(encodeURIComponent(n))}/">${escapeHtml(n)}</a><br/>`))
}

export function renderProject (rep: Representation, p: IndexProject): string {
  if (rep.kind === 'json') {
    return JSON.stringify({
      meta: { 'api-version': API_VERSION },
      name: p.name,
      versions: p.versions,
      files: p.files.map(f => {
        const coreMetadata = f.coreMetadata === false ? false : Object.keys(f.coreMetadata).length === 0 ? true : f.coreMetadata
        return {
          filename: f.filename,
          url: f.url,
          hashes: f.hashes,
          ...(f.requiresPython == null ? {} : { 'requires-python': f.requiresPython }),
          'core-metadata': coreMetadata,
          'dist-info-metadata': coreMetadata, // PEP 714: the old key, for pip < 23.3
          yanked: f.yanked === false ? false : f.yanked === '' ? true : f.yanked,
          ...(f.size == null ? {} : { size: f.size }),
          ...(f.uploadTime == null ? {} : { 'upload-time': f.uploadTime })
        }
      })
    })
  }
  const links = p.files.map(f => {
    // HTML carries one hash: sha256 if there is one (what pip checks).
    const hashName = f.hashes.sha256 != null ? 'sha256' : Object.keys(f.hashes)[0]
    const fragment = hashName == null ? '' : `#${hashName}=${f.hashes[hashName]}`
    let attrs = `href="${escapeHtml(f.url + fragment)}"`
    if (f.requiresPython != null) attrs += ` data-requires-python="${escapeHtml(f.requiresPython)}"`
    if (f.coreMetadata !== false) {
      const [name, hex] = Object.entries(f.coreMetadata).find(([n]) => n === 'sha256') ?? Object.entries(f.coreMetadata)[0] ?? []
      const value = name == null ? 'true' : `${name}=${hex}`
      attrs += ` data-core-metadata="${escapeHtml(value)}" data-dist-info-metadata="${escapeHtml(value)}"`
    }
    if (f.yanked !== false) attrs += ` data-yanked="${escapeHtml(f.yanked)}"`
    return `    <a ${attrs}>${escapeHtml(f.filename)}</a><br/>`
  })
  return page(`Links for ${p.displayName}`, links)
}

/** PEP 700 timestamps carry microseconds. */
export const uploadTime = (ms: number) => new Date(ms).toISOString().replace(/Z$/, '000Z')

function page (title: string, links: string[]): string {
  return `<!DOCTYPE html>
<html>
  <head>
    <meta name="pypi:repository-version" content="${API_VERSION}">
    <title>${escapeHtml(title)}</title>
  </head>
  <body>
    <h1>${escapeHtml(title)}</h1>
${links.join('\n')}
  </body>
</html>
`
}
