// A remote PyPI repository's view of its upstream's index: project pages fetched through the
// shared remote core (TTL, one request per page however many ask, stale-if-error), read into the
// model with file URLs pointed at this node. When the upstream fails and no copy of the page is
// in memory (after a restart), the page is built from what is cached here.
import { compare } from '@renovatebot/pep440'
import { isRegistryError, notFound, upstreamError } from '../../store/errors.ts'
import type { FormatContext } from '../format.ts'
import type { RemoteRepository } from '../shared/remote/remote-repository.ts'
import type { CachedDocument } from '../shared/remote/ttl-cache.ts'
import { normalVersion, splitDistFilename } from './names.ts'
import { localProject, projectNames } from './simple.ts'
import type { IndexFile, IndexProject } from './simple-render.ts'
import { parseProjectList, parseProjectPage, refuseSimplePage, UPSTREAM_ACCEPT, type UpstreamFile, type UpstreamProject } from './upstream-index.ts'

export interface RemoteProjectPage {
  /** The page as this node serves it: URLs below `baseUrl`, hashes as the upstream gave them
   *  (or, for a file cached here, of the cached bytes). */
  project: IndexProject
  /** The upstream's entry of each distribution by filename; empty when the page was built from
   *  the cache because the upstream failed (`failure` says how). */
  upstream: Map<string, UpstreamFile>
  /** Served from a copy past its TTL, or from the cache: send `Warning: STALE_WARNING`. */
  stale: boolean
  failure?: Error
}

const parsedPages = new WeakMap<CachedDocument, UpstreamProject>()

export function remoteOf (fc: FormatContext): RemoteRepository {
  if (fc.remote == null) throw new Error(`${fc.repo.name} is not a remote repository`)
  return fc.remote
}

/** Whether a failure is the upstream's (down, slow, broken, offline): what cached copies cover. */
function upstreamFailed (err: unknown, remote: RemoteRepository): boolean {
  return isRegistryError(err) && (err.code === 'UpstreamError' || err.code === 'UpstreamTimeout' || (err.code === 'NotFound' && remote.settings.offline))
}

/**
 * The files of `project` (PEP 503 normalised) in a remote PyPI repository, as the format's model
 * with URLs rewritten to `baseUrl` (the repository's base URL on this node): the function a
 * virtual repository merges its remote members' pages with. Throws NotFound if the upstream has
 * no such project, UpstreamError/UpstreamTimeout if it failed and nothing of the project is cached.
 */
export async function remoteProjectFiles (fc: FormatContext, baseUrl: string, project: string): Promise<RemoteProjectPage> {
  const remote = remoteOf(fc)
  const pageUrl = remote.client.urlOf(`${encodeURIComponent(project)}/`)
  let answer: Awaited<ReturnType<RemoteRepository['metadata']>>
  try {
    answer = await remote.metadata(`simple/${project}/`, pageUrl, {
      upstream: { headers: { accept: UPSTREAM_ACCEPT } },
      refuse: (contentType, body) => refuseSimplePage(contentType, body, 'project')
    })
  } catch (err) {
    if (!upstreamFailed(err, remote)) throw err
    const cached = localProject(fc, baseUrl, project)
    if (cached == null) throw err
    fc.log.warn({ project, err: (err as Error).message }, 'upstream failed and no copy of the page is in memory; serving the files cached here')
    return { project: cached, upstream: new Map(), stale: true, failure: err as Error }
  }
  let parsed = parsedPages.get(answer.doc)
  if (parsed == null) {
    parsed = parseProjectPage(answer.doc.contentType, answer.doc.body, pageUrl, project)
    parsedPages.set(answer.doc, parsed)
  }
  const upstream = new Map<string, UpstreamFile>()
  const files: IndexFile[] = []
  const versions = new Set<string>()
  for (const f of parsed.files) {
    // Only distributions of this project: a filename that is not one could not be cached or served.
    const dist = splitDistFilename(f.filename, project)
    const version = dist == null ? undefined : normalVersion(dist.version)
    if (version == null || upstream.has(f.filename)) continue
    upstream.set(f.filename, f)
    versions.add(version)
    files.push({
      filename: f.filename,
      url: `${baseUrl}/packages/${encodeURIComponent(project)}/${encodeURIComponent(f.filename)}`,
      hashes: await announcedHashes(fc, project, f),
      requiresPython: f.requiresPython,
      coreMetadata: f.coreMetadata,
      yanked: f.yanked,
      size: f.size,
      uploadTime: f.uploadTime
    })
  }
  return {
    project: { name: project, displayName: parsed.displayName, versions: parsed.versions ?? [...versions].sort(compare), files },
    upstream,
    stale: answer.stale
  }
}

/** The upstream's hashes, unless this node cached other bytes under that filename: a cached file
 *  is immutable, so the page announces what is served (and the change is logged). */
async function announcedHashes (fc: FormatContext, project: string, f: UpstreamFile): Promise<Record<string, string>> {
  const cached = fc.artifacts.fileByName(fc.repo.name, project, f.filename)
  if (cached == null) return f.hashes
  // The row's description, not the bytes: they may be evicted (store/cache-evict.ts).
  const blob = fc.store.describe(cached.cid)
  if (blob == null || f.hashes.sha256 === blob.sha256) return f.hashes
  if (f.hashes.sha256 != null) {
    fc.log.warn({ project, filename: f.filename, cached: blob.sha256, upstream: f.hashes.sha256 },
      'upstream index names another sha256 for a file already cached; the cached file stays and is announced')
  }
  return { sha256: blob.sha256 }
}

/** The upstream's project list (normalised names), or the projects cached here when it fails. */
export async function remoteProjectNames (fc: FormatContext): Promise<{ names: string[], stale: boolean }> {
  const remote = remoteOf(fc)
  try {
    const { doc, stale } = await remote.metadata('simple/', remote.client.urlOf(''), {
      upstream: { headers: { accept: UPSTREAM_ACCEPT } },
      refuse: (contentType, body) => refuseSimplePage(contentType, body, 'list')
    })
    return { names: [...new Set(parseProjectList(doc.contentType, doc.body))].sort(), stale }
  } catch (err) {
    if (!upstreamFailed(err, remote)) throw err
    return { names: projectNames(fc), stale: true }
  }
}

/** The upstream entry of `filename` on `page`; NotFound if the index has none, the upstream's
 *  failure if the page came from the cache. */
export function upstreamEntry (fc: FormatContext, page: RemoteProjectPage, project: string, filename: string): UpstreamFile {
  const entry = page.upstream.get(filename)
  if (entry != null) return entry
  if (page.failure != null) throw upstreamError(`${filename} is not cached in ${fc.repo.name}, and the upstream failed: ${page.failure.message}`)
  throw notFound(`no file ${filename} in the upstream index of ${project}`)
}
