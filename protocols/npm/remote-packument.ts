// The packument of a remote npm repository: the upstream's document, fetched through the shared
// remote core (TTL, one request for concurrent callers, stale-if-error), checked to be a
// packument, with its tarball URLs pointed at this node, and with the versions already cached
// here pinned to the bytes that were cached (a cached tarball is immutable, whatever the upstream
// says later). `remotePackument` is what virtual repositories merge.
import type { Logger } from 'pino'
import { upstreamError, type RegistryError } from '../../store/errors.ts'
import type { Artifact } from '../../store/types.ts'
import type { FormatContext } from '../format.ts'
import type { RemoteRepository } from '../shared/remote/remote-repository.ts'
import type { CachedDocument } from '../shared/remote/ttl-cache.ts'
import { isPlainObject } from './body.ts'
import { tarballFilename } from './names.ts'
import { INSTALL_FIELDS, loadPackage, renderFull, tarballUrl } from './packument.ts'

export type Packument = Record<string, unknown> & {
  name: string
  'dist-tags': Record<string, string>
  versions: Record<string, VersionDocument>
}
export type VersionDocument = Record<string, unknown> & { version: string, dist: Dist }
export interface Dist { tarball?: string, integrity?: string, shasum?: string, [k: string]: unknown }

/** The upstream path of a package's packument: scoped names as npm sends them (`@scope%2fname`). */
export function packumentPath (name: string): string {
  return encodeURIComponent(name).replace(/^%40/, '@')
}

/** The upstream path of a tarball, when the packument names none on the upstream's origin. */
export function tarballPath (name: string, version: string): string {
  return `${name.split('/').map(encodeURIComponent).join('/').replace(/^%40/, '@')}/-/${encodeURIComponent(tarballFilename(name, version))}`
}

/** Why a fetched body is not a packument (an HTML error page, a JSON error), or undefined. */
export function refusePackument (contentType: string, body: Buffer): string | undefined {
  if (!/\bjson\b/i.test(contentType)) return `sent ${contentType === '' ? 'no Content-Type' : contentType} where a JSON packument belongs`
  let doc: unknown
  try { doc = JSON.parse(body.toString('utf8')) } catch (err) { return `sent malformed JSON where a packument belongs (${(err as Error).message})` }
  if (!isPlainObject(doc) || typeof doc.name !== 'string' || !isPlainObject(doc.versions)) return 'sent JSON that is not a packument (no name or versions)'
  return undefined
}

/** The upstream document as fetched (refused bodies never get here), parsed once per fetch. */
const parsed = new WeakMap<CachedDocument, Packument>()
function parse (doc: CachedDocument): Packument {
  let p = parsed.get(doc)
  if (p == null) {
    p = JSON.parse(doc.body.toString('utf8')) as Packument
    if (!isPlainObject(p['dist-tags'])) p['dist-tags'] = {}
    parsed.set(doc, p)
  }
  return p
}

export interface UpstreamPackument {
  /** The upstream's document, unchanged (its tarball URLs point at the upstream). */
  upstream: Packument
  stale: boolean
  /** When the upstream last confirmed it (a rendering of it can be reused until this changes). */
  fetchedAt: number
}

/** The upstream's packument of `name` (NotFound if the upstream has none; UpstreamError if it
 *  fails and nothing is cached). */
export async function upstreamPackument (remote: RemoteRepository, name: string): Promise<UpstreamPackument> {
  const { doc, stale } = await remote.metadata(`packument:${name}`, remote.client.urlOf(packumentPath(name)), { refuse: refusePackument })
  const upstream = parse(doc)
  if (upstream.name !== name) throw upstreamError(`upstream ${remote.upstream} answered for ${name} with the packument of ${upstream.name}; refused`)
  return { upstream, stale, fetchedAt: doc.fetchedAt }
}

/** Metadata keys the remote adds to a cached version's row beside its version document. */
export const CACHE_KEYS = ['cached', 'upstream', 'upstreamEtag', 'upstreamLastModified', 'fetchedAt'] as const

/** The version document of a cached row, as the upstream served it when it was cached. */
export function cachedVersionDocument (a: Artifact): VersionDocument {
  const doc: Record<string, unknown> = { ...a.metadata }
  for (const k of CACHE_KEYS) delete doc[k]
  return doc as VersionDocument
}

/** The packument as this node serves it: tarball URLs below `baseUrl`, and the versions cached
 *  here as they were cached (an upstream that changed one is logged and not believed). */
export function rewritePackument (upstream: Packument, baseUrl: string, cached: Artifact[], log: Logger): Packument {
  const pinned = new Map(cached.map(a => [a.version, a]))
  const versions: Record<string, VersionDocument> = {}
  for (const [version, doc] of Object.entries(upstream.versions)) {
    if (!isPlainObject(doc)) continue
    const row = pinned.get(version)
    let served = doc
    if (row != null) {
      const kept = cachedVersionDocument(row)
      if (kept.dist?.integrity !== doc.dist?.integrity || kept.dist?.shasum !== doc.dist?.shasum) {
        warnChanged(log, upstream.name, version, kept.dist, doc.dist)
        served = { ...doc, dist: { ...doc.dist, integrity: kept.dist.integrity, shasum: kept.dist.shasum } }
      }
    }
    versions[version] = { ...served, dist: { ...(isPlainObject(served.dist) ? served.dist : {}), tarball: tarballUrl(baseUrl, upstream.name, version) } }
  }
  return { ...upstream, versions }
}

const warned = new Set<string>()
function warnChanged (log: Logger, name: string, version: string, kept: Dist, now: Dist | undefined): void {
  const key = `${name}@${version}\0${now?.integrity ?? ''}\0${now?.shasum ?? ''}`
  if (warned.has(key)) return
  warned.add(key)
  log.warn({ name, version, cached: { integrity: kept.integrity, shasum: kept.shasum }, upstream: { integrity: now?.integrity, shasum: now?.shasum } },
    'upstream changed the tarball of a version that is already cached; refused, the cached tarball and its integrity are still served')
}

/** An abbreviated (`application/vnd.npm.install-v1+json`) document from a full one. */
export function abbreviate (p: Packument): Record<string, unknown> {
  const versions: Record<string, unknown> = {}
  for (const [v, doc] of Object.entries(p.versions)) {
    versions[v] = Object.fromEntries(INSTALL_FIELDS.filter(f => doc[f] !== undefined).map(f => [f, doc[f]]))
  }
  const time = isPlainObject(p.time) ? p.time : {}
  return { name: p.name, ...(typeof time.modified === 'string' ? { modified: time.modified } : {}), 'dist-tags': p['dist-tags'], versions }
}

/** The packument of `name` in the remote npm repository `fc`, as its clients get it (full, tarball
 *  URLs below `baseUrl`, cached versions pinned); `stale` when the upstream failed and the
 *  document is older than metadataTtl, or when only the cached versions could be served.
 *  Virtual repositories merge these. */
export async function remotePackument (fc: FormatContext, remote: RemoteRepository, name: string, baseUrl: string): Promise<{ doc: Packument, stale: boolean }> {
  let fetched: UpstreamPackument
  try {
    fetched = await upstreamPackument(remote, name)
  } catch (err) {
    return { doc: cachedRowsPackument(fc, name, baseUrl, err as RegistryError), stale: true }
  }
  return { doc: rewritePackument(fetched.upstream, baseUrl, fc.artifacts.versions(fc.repo.name, name), fc.log), stale: fetched.stale }
}

/** The upstream failed (`err`), or the repository is offline, and no packument of `name` is in
 *  memory (the node restarted, or the rows came from a bundle or a peer): the versions whose
 *  tarballs are cached are still installable, so a packument of those is served. Rethrows `err`
 *  for any other failure, or when nothing of `name` is cached. */
export function cachedRowsPackument (fc: FormatContext, name: string, baseUrl: string, err: RegistryError): Packument {
  const failed = err.code === 'UpstreamError' || err.code === 'UpstreamTimeout' || (err.code === 'NotFound' && fc.remote?.settings.offline === true)
  if (!failed || fc.artifacts.versions(fc.repo.name, name).length === 0) throw err
  const p = loadPackage(fc, name)
  p.versions = p.versions.map(a => ({ ...a, metadata: cachedVersionDocument(a) }))
  if (p.tags.latest == null) p.tags = { ...p.tags, latest: p.versions[p.versions.length - 1].version }
  fc.log.warn({ name, err: err.message }, 'upstream failed and no packument of this package is in memory; serving its cached versions only')
  return renderFull(p, baseUrl) as Packument
}
