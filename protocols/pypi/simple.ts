// The Simple Repository API: PEP 503 HTML and PEP 691 JSON (chosen by Accept), with hashes,
// Requires-Python (PEP 345/503), yanking (PEP 592), core metadata (PEP 658/714) and file sizes
// and upload times (PEP 700).
import { createHash } from 'node:crypto'
import { compare } from '@renovatebot/pep440'
import type { Context } from 'koa'
import { notFound } from '../../store/errors.ts'
import type { FormatContext } from '../format.ts'
import { canonicalName, isValidProjectName } from './names.ts'
import { effectiveYank, releaseOf, type Yank } from './release.ts'

const JSON_TYPE = 'application/vnd.pypi.simple.v1+json'
const HTML_TYPE = 'application/vnd.pypi.simple.v1+html'
// PEP 691: the order breaks ties between equal q-values; plain HTML first for old clients and
// browsers that send no Accept at all.
const OFFERED = ['text/html', HTML_TYPE, 'application/vnd.pypi.simple.latest+html', JSON_TYPE, 'application/vnd.pypi.simple.latest+json']
const API_VERSION = '1.1'

type Representation = { kind: 'html', type: string } | { kind: 'json', type: string }

/** PEP 691 content negotiation; the `format` query parameter overrides Accept. Nothing acceptable
 *  gets HTML, one of the answers PEP 691 allows (the others are 406 and 300). */
function negotiate (ctx: Context): Representation {
  const format = typeof ctx.query.format === 'string' ? ctx.query.format : undefined
  const chosen = (format != null && OFFERED.includes(format) ? format : ctx.accepts(OFFERED)) || 'text/html'
  if (chosen.endsWith('+json')) return { kind: 'json', type: JSON_TYPE }
  return { kind: 'html', type: chosen === 'text/html' ? 'text/html; charset=utf-8' : HTML_TYPE }
}

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }
const escapeHtml = (s: string) => s.replace(/[&<>"']/g, c => HTML_ESCAPES[c])

/** Sends a rendered index with a validator: pip revalidates (Cache-Control: no-cache) so a yank
 *  or a new upload is seen at once, and an unchanged page costs a 304. */
function sendIndex (ctx: Context, rep: Representation, body: string): void {
  ctx.vary('Accept')
  ctx.set('Cache-Control', 'no-cache')
  ctx.set('ETag', `"${createHash('sha256').update(rep.type).update(body).digest('hex').slice(0, 32)}"`)
  ctx.status = 200
  if (ctx.fresh) { ctx.status = 304; return }
  ctx.set('Content-Type', rep.type)
  ctx.body = body
}

export function projectList (ctx: Context, fc: FormatContext): void {
  sendProjectList(ctx, projectNames(fc))
}

export const projectNames = (fc: FormatContext): string[] => fc.artifacts.searchNames(fc.repo.name, '', Number.MAX_SAFE_INTEGER, 0).names

export function sendProjectList (ctx: Context, names: string[]): void {
  const rep = negotiate(ctx)
  if (rep.kind === 'json') {
    sendIndex(ctx, rep, JSON.stringify({ meta: { 'api-version': API_VERSION }, projects: names.map(name => ({ name })) }))
    return
  }
  const links = names.map(n => `    <a href="${escapeHtml(encodeURIComponent(n))}/">${escapeHtml(n)}</a><br/>`)
  sendIndex(ctx, rep, page('Simple index', links))
}

/** One file of a project page, wherever it comes from (this repository's rows, or a virtual
 *  repository's members). */
export interface FileEntry {
  filename: string
  /** The version it belongs to (normal form). */
  version: string
  url: string
  sha256: string
  size: number
  requiresPython: string | null
  /** sha256 of its PEP 658 core metadata file, if there is one. */
  metadataSha256?: string
  yanked: Yank
  uploadedAt: number
}

/** The files of a project in this repository, oldest version first (empty if it has none). */
export function localFileEntries (fc: FormatContext, project: string, baseUrl: string): FileEntry[] {
  const releases = fc.artifacts.versions(fc.repo.name, project).sort((a, b) => compare(a.version, b.version))
  const entries: FileEntry[] = []
  for (const artifact of releases) {
    const release = releaseOf(artifact)
    const blobs = new Map(fc.artifacts.filesWithBlobs(artifact).map(f => [f.filename, f.blob]))
    for (const [filename, dist] of Object.entries(release.files).sort(([a], [b]) => a < b ? -1 : 1)) {
      const blob = blobs.get(filename)
      if (blob == null) continue
      entries.push({
        filename,
        version: artifact.version,
        url: fileUrl(baseUrl, project, filename),
        sha256: blob.sha256,
        size: blob.size,
        requiresPython: dist.requiresPython,
        metadataSha256: dist.metadataFile == null ? undefined : blobs.get(dist.metadataFile)?.sha256,
        yanked: effectiveYank(release, dist),
        uploadedAt: dist.uploadedAt
      })
    }
  }
  return entries
}

export const fileUrl = (baseUrl: string, project: string, filename: string) =>
  `${baseUrl}/packages/${encodeURIComponent(project)}/${encodeURIComponent(filename)}`

/** The project's display name as first uploaded (its latest release's spelling). */
export function displayName (fc: FormatContext, project: string): string | undefined {
  const releases = fc.artifacts.versions(fc.repo.name, project).sort((a, b) => compare(a.version, b.version))
  return releases.length === 0 ? undefined : releaseOf(releases[releases.length - 1]).name
}

/** Redirects a non-normalised project name (or a missing slash) as PEP 503 asks; true if it did. */
export function redirectToCanonical (ctx: Context, fc: FormatContext, requested: string): boolean {
  // Never redirect an invalid name (e.g. "..") to some normal form of it.
  if (!isValidProjectName(requested)) throw notFound(`no project "${requested.slice(0, 200)}" in ${fc.repo.name} (not a valid project name)`)
  const project = canonicalName(requested)
  if (project === requested && ctx.path.endsWith('/')) return false
  ctx.redirect(`${fc.baseUrl(ctx)}/simple/${encodeURIComponent(project)}/`)
  ctx.status = 301
  return true
}

/** GET /simple/<project>/: non-normalised names (and a missing slash) redirect, as PEP 503 asks. */
export function projectPage (ctx: Context, fc: FormatContext, requested: string): void {
  if (redirectToCanonical(ctx, fc, requested)) return
  const project = canonicalName(requested)
  const files = localFileEntries(fc, project, fc.baseUrl(ctx))
  if (files.length === 0) throw notFound(`no project "${project}" in ${fc.repo.name}`)
  const versions = fc.artifacts.versions(fc.repo.name, project).sort((a, b) => compare(a.version, b.version)).map(r => r.version)
  sendProjectPage(ctx, project, displayName(fc, project) ?? project, files, versions)
}

/** A project page (PEP 503 HTML or PEP 691 JSON) listing `files`, oldest version first;
 *  `versions` (PEP 700) defaults to the files' versions. */
export function sendProjectPage (ctx: Context, project: string, title: string, files: FileEntry[], versions = [...new Set(files.map(f => f.version))]): void {
  const rep = negotiate(ctx)
  if (rep.kind === 'json') {
    sendIndex(ctx, rep, JSON.stringify({
      meta: { 'api-version': API_VERSION },
      name: project,
      versions,
      files: files.map(f => {
        const coreMetadata = f.metadataSha256 == null ? false : { sha256: f.metadataSha256 }
        return {
          filename: f.filename,
          url: f.url,
          hashes: { sha256: f.sha256 },
          ...(f.requiresPython == null ? {} : { 'requires-python': f.requiresPython }),
          'core-metadata': coreMetadata,
          'dist-info-metadata': coreMetadata, // PEP 714: the old key, for pip < 23.3
          yanked: f.yanked === false ? false : f.yanked === '' ? true : f.yanked,
          size: f.size,
          'upload-time': new Date(f.uploadedAt).toISOString().replace(/Z$/, '000Z') // PEP 700: microseconds
        }
      })
    }))
    return
  }
  const links = files.map(f => {
    let attrs = `href="${escapeHtml(`${f.url}#sha256=${f.sha256}`)}"`
    if (f.requiresPython != null) attrs += ` data-requires-python="${escapeHtml(f.requiresPython)}"`
    if (f.metadataSha256 != null) {
      const hash = `sha256=${f.metadataSha256}`
      attrs += ` data-core-metadata="${hash}" data-dist-info-metadata="${hash}"`
    }
    if (f.yanked !== false) attrs += ` data-yanked="${escapeHtml(f.yanked)}"`
    return `    <a ${attrs}>${escapeHtml(f.filename)}</a><br/>`
  })
  sendIndex(ctx, rep, page(`Links for ${title}`, links))
}

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
