// An upstream's Simple API documents read into the model: PEP 691 JSON or PEP 503 HTML, as the
// upstream chose from our Accept. What is not a simple page (an HTML error page, JSON of another
// shape, another content type) is refused before anything is cached.
import { canonicalName } from './names.ts'
import { HTML_TYPE, JSON_TYPE, type IndexFile } from './simple-render.ts'

/** What pip sends (pip/_internal/index/collector.py): JSON first, HTML as the fallback. */
export const UPSTREAM_ACCEPT = `${JSON_TYPE}, ${HTML_TYPE};q=0.1, text/html;q=0.01`

/** One file as the upstream lists it, URL still the upstream's. */
export type UpstreamFile = Omit<IndexFile, 'url'> & {
  /** Absolute, without the #hash fragment. */
  url: URL
}

export interface UpstreamProject {
  displayName: string
  /** From PEP 700 JSON; undefined for HTML (derived from the filenames then). */
  versions?: string[]
  files: UpstreamFile[]
}

const isJson = (contentType: string) => contentType.split(';')[0].trim().toLowerCase() === JSON_TYPE
const isHtml = (contentType: string) => ['text/html', HTML_TYPE].includes(contentType.split(';')[0].trim().toLowerCase())

/** Why `body` is not a simple page (project page or project list), or undefined. */
export function refuseSimplePage (contentType: string, body: Buffer, kind: 'project' | 'list'): string | undefined {
  if (isJson(contentType)) {
    let doc: unknown
    try { doc = JSON.parse(body.toString('utf8')) } catch { return `its ${contentType} body is not JSON (${preview(body)})` }
    const d = doc as { meta?: { 'api-version'?: unknown }, files?: unknown, projects?: unknown }
    const version = d?.meta?.['api-version']
    if (typeof version !== 'string' || !version.startsWith('1.')) return `its JSON is not a PEP 691 page (meta.api-version ${JSON.stringify(version ?? null)}, expected 1.x)`
    const list = kind === 'project' ? d.files : d.projects
    if (!Array.isArray(list)) return `its JSON has no "${kind === 'project' ? 'files' : 'projects'}" list`
    return undefined
  }
  if (isHtml(contentType)) {
    const text = body.toString('utf8')
    // A project page of a simple index is a list of links, or at least says it is one.
    if (!/<a\s/i.test(text) && !/pypi:repository-version/i.test(text)) return `its HTML is not a simple index page: no links (${preview(body)})`
    return undefined
  }
  return `content type "${contentType || 'none'}" is not a simple index page (expected ${JSON_TYPE} or text/html)`
}

const preview = (body: Buffer) => JSON.stringify(body.subarray(0, 80).toString('utf8').replace(/\s+/g, ' '))

/** The files of a project page fetched from `pageUrl` (relative URLs resolve against it). */
export function parseProjectPage (contentType: string, body: Buffer, pageUrl: URL, project: string): UpstreamProject {
  return isJson(contentType) ? parseJsonPage(body, pageUrl, project) : parseHtmlPage(body.toString('utf8'), pageUrl, project)
}

/** The normalised project names of an upstream's project list. */
export function parseProjectList (contentType: string, body: Buffer): string[] {
  if (isJson(contentType)) {
    const doc = JSON.parse(body.toString('utf8')) as { projects: Array<{ name?: unknown }> }
    return doc.projects.flatMap(p => typeof p?.name === 'string' ? [canonicalName(p.name)] : [])
  }
  return anchors(body.toString('utf8')).map(a => canonicalName(a.text)).filter(n => n !== '')
}

function parseJsonPage (body: Buffer, pageUrl: URL, project: string): UpstreamProject {
  const doc = JSON.parse(body.toString('utf8')) as { name?: unknown, versions?: unknown, files: unknown[] }
  const files: UpstreamFile[] = []
  for (const raw of doc.files) {
    const f = raw as Record<string, unknown>
    if (typeof f?.filename !== 'string' || typeof f.url !== 'string') continue
    const url = resolve(f.url, pageUrl)
    if (url == null) continue
    const metadata = f['core-metadata'] ?? f['dist-info-metadata'] ?? false
    files.push({
      filename: f.filename,
      url,
      hashes: hexHashes(f.hashes),
      requiresPython: typeof f['requires-python'] === 'string' && f['requires-python'] !== '' ? f['requires-python'] : null,
      coreMetadata: metadata === false ? false : metadata === true ? {} : hexHashes(metadata),
      yanked: f.yanked === true ? '' : typeof f.yanked === 'string' ? f.yanked : false,
      size: typeof f.size === 'number' ? f.size : undefined,
      uploadTime: typeof f['upload-time'] === 'string' ? f['upload-time'] : undefined
    })
  }
  const versions = Array.isArray(doc.versions) ? doc.versions.filter((v): v is string => typeof v === 'string') : undefined
  return { displayName: typeof doc.name === 'string' ? doc.name : project, versions, files }
}

function parseHtmlPage (html: string, pageUrl: URL, project: string): UpstreamProject {
  const title = /<title>\s*Links for ([^<]+?)\s*<\/title>/i.exec(html)?.[1]
  const files: UpstreamFile[] = []
  for (const a of anchors(html)) {
    const href = a.attrs.get('href')
    if (href == null) continue
    const url = resolve(href, pageUrl)
    if (url == null) continue
    // PEP 503: the fragment is <hashname>=<hex> of the file.
    const fragment = /^#([a-z0-9_]+)=([0-9a-fA-F]+)$/.exec(url.hash)
    url.hash = ''
    const filename = a.text !== '' ? a.text : decodeURIComponent(url.pathname.split('/').pop() ?? '')
    const metadata = a.attrs.get('data-core-metadata') ?? a.attrs.get('data-dist-info-metadata')
    const yanked = a.attrs.get('data-yanked')
    const requiresPython = a.attrs.get('data-requires-python')
    files.push({
      filename,
      url,
      hashes: fragment == null ? {} : { [fragment[1]]: fragment[2].toLowerCase() },
      requiresPython: requiresPython == null || requiresPython === '' ? null : requiresPython,
      coreMetadata: metadata == null ? false : metadataHashes(metadata),
      yanked: yanked ?? false
    })
  }
  return { displayName: title != null ? decodeEntities(title) : project, files }
}

/** PEP 658: "true", or "<hashname>=<hex>". */
function metadataHashes (value: string): Record<string, string> {
  const m = /^([a-z0-9_]+)=([0-9a-fA-F]+)$/.exec(value)
  return m == null ? {} : { [m[1]]: m[2].toLowerCase() }
}

function hexHashes (v: unknown): Record<string, string> {
  const out: Record<string, string> = {}
  if (v == null || typeof v !== 'object') return out
  for (const [name, hex] of Object.entries(v as Record<string, unknown>)) {
    if (/^[a-z0-9_]+$/.test(name) && typeof hex === 'string' && /^[0-9a-fA-F]+$/.test(hex)) out[name] = hex.toLowerCase()
  }
  return out
}

function resolve (href: string, base: URL): URL | undefined {
  try {
    const url = new URL(href, base)
    return url.protocol === 'http:' || url.protocol === 'https:' ? url : undefined
  } catch { return undefined }
}

interface Anchor { attrs: Map<string, string>, text: string }

/** The <a> elements of a page: attributes (names lowercased, entities decoded) and text. Simple
 *  pages are flat lists of links, so a tag scan is enough (no nesting, no scripts). */
function anchors (html: string): Anchor[] {
  const out: Anchor[] = []
  for (const m of html.matchAll(/<a\b([^>]*)>([\s\S]*?)<\/a\s*>/gi)) {
    const attrs = new Map<string, string>()
    for (const a of m[1].matchAll(/([^\s=/>]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?/g)) {
      attrs.set(a[1].toLowerCase(), decodeEntities(a[2] ?? a[3] ?? a[4] ?? ''))
    }
    out.push({ attrs, text: decodeEntities(m[2].replace(/<[^>]*>/g, '')).trim() })
  }
  return out
}

const NAMED: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0' }

function decodeEntities (s: string): string {
  return s.replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (whole, e: string) => {
    if (e[0] === '#') {
      const code = e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10)
      return Number.isFinite(code) && code <= 0x10ffff ? String.fromCodePoint(code) : whole
    }
    return NAMED[e.toLowerCase()] ?? whole
  })
}
