// A remote PyPI repository (type: remote): the upstream's Simple API pages served with file URLs
// pointing here (./remote-project.ts), and each distribution or core metadata file (PEP 658)
// cached on its first request, verified against the sha256 the upstream's index gives for it.
// Cached files are rows like uploaded ones, so the mesh and bundles carry them. Uploads and yanks
// are refused: nothing is published to a cache.
import type { Context } from 'koa'
import { isRegistryError, methodNotAllowed, notFound, upstreamError } from '../../store/errors.ts'
import type { BlobInfo } from '../../store/types.ts'
import type { FormatContext, RepoRoutes } from '../format.ts'
import { sendBlob } from '../http/blob-response.ts'
import type { RemoteFormat } from '../shared/remote/hooks.ts'
import { STALE_WARNING, type RemoteRepository } from '../shared/remote/remote-repository.ts'
import { cachedBlob } from '../shared/remote/cached-blob.ts'
import { respondWithContent, streamsToClient } from '../shared/remote/respond.ts'
import { UpstreamClient, type UpstreamResponse } from '../shared/remote/upstream-client.ts'
import { canonicalName, normalVersion, splitDistFilename, type DistFilename } from './names.ts'
import { METADATA_SUFFIX, type ReleaseMetadata } from './release.ts'
import { remoteProjectFiles, remoteProjectNames, upstreamEntry } from './remote-project.ts'
import { negotiate, renderProject, renderProjectList, sendIndex } from './simple-render.ts'
import { normalisedProject } from './simple.ts'
import { refuseSimplePage, type UpstreamFile } from './upstream-index.ts'

/** Who "uploaded" a cached file, as its row says. */
const UPSTREAM_ACTOR = 'upstream'

/** The upstream is a Simple API base URL (what pip takes as --index-url): pages are below it,
 *  files wherever its pages say. */
export const pypiRemote: RemoteFormat = {
  upstreamPath: (path) => path.replace(/^\/?simple\//, ''),
  kind: (path) => path.replace(/^\//, '').startsWith('packages/') ? 'content' : 'metadata',
  // Files are verified against the index's hashes (see serveDistribution), not upstream headers.
  expectedDigests: () => ({}),
  refuseMetadata: (contentType, body) => refuseSimplePage(contentType, body, 'project')
}

export function remotePypiRoutes (router: RepoRoutes, fc: FormatContext, remote: RemoteRepository): void {
  // 'read': whoever tries is told why, rather than asked for credentials first.
  const refuse = () => {
    throw methodNotAllowed(`${fc.repo.name} is a remote repository (a cache of ${remote.upstream}): uploads and yanks are refused; upload to a local PyPI repository instead`)
  }
  router.post(['/', '/legacy', '/legacy/', '/-/yank/:project/:version', '/-/unyank/:project/:version'], 'read', refuse)

  router.get('/simple', 'read', async (ctx) => {
    if (!ctx.path.endsWith('/')) { ctx.redirect(`${fc.baseUrl(ctx)}/simple/`); ctx.status = 301; return }
    const { names, stale } = await remoteProjectNames(fc)
    if (stale) ctx.set('Warning', STALE_WARNING)
    const rep = negotiate(ctx)
    sendIndex(ctx, rep, renderProjectList(rep, names))
  })

  router.get('/simple/:project', 'read', async (ctx) => {
    const project = normalisedProject(ctx, fc, String(ctx.params.project))
    if (project == null) return
    const page = await remoteProjectFiles(fc, fc.baseUrl(ctx), project)
    if (page.stale) ctx.set('Warning', STALE_WARNING)
    const rep = negotiate(ctx)
    sendIndex(ctx, rep, renderProject(rep, page.project))
  })

  router.get('/packages/:project/:filename', 'read', async (ctx) => { await serveDistribution(ctx, fc, remote) })
}

async function serveDistribution (ctx: Context, fc: FormatContext, remote: RemoteRepository): Promise<void> {
  await serveRemoteFile(ctx, fc, remote, canonicalName(String(ctx.params.project)), String(ctx.params.filename))
}

/** A distribution or its `.metadata` file: from the cache, or fetched (and cached) from the
 *  upstream; also how a virtual repository reads a remote member. */
export async function serveRemoteFile (ctx: Context, fc: FormatContext, remote: RemoteRepository, project: string, filename: string): Promise<void> {
  if (await serveCached(ctx, fc, project, filename)) return
  const isMetadata = filename.endsWith(METADATA_SUFFIX)
  const distName = isMetadata ? filename.slice(0, -METADATA_SUFFIX.length) : filename
  const dist = splitDistFilename(distName, project)
  if (dist == null || normalVersion(dist.version) == null) throw notFound(`${filename} is not a distribution of ${project}`)
  const page = await remoteProjectFiles(fc, fc.baseUrl(ctx), project)
  const entry = upstreamEntry(fc, page, project, distName)
  const hashes = isMetadata ? entry.coreMetadata : entry.hashes
  if (hashes === false) throw notFound(`the upstream index announces no core metadata file for ${distName} (PEP 658)`)
  const sha256 = hashes.sha256
  if (sha256 == null) {
    throw upstreamError(`the upstream index gives no sha256 for ${filename}; refused, nothing cached (cached files are verified against the index's sha256)`)
  }
  const url = new URL(entry.url)
  if (isMetadata) url.pathname += METADATA_SUFFIX
  const key = `packages/${project}/${filename}`
  const contentType = isMetadata ? 'text/plain; charset=utf-8' : 'application/octet-stream'
  if (ctx.method === 'HEAD') {
    const res = await remote.head(key, url)
    ctx.status = 200
    ctx.set('Content-Type', contentType)
    if (res.length != null) ctx.length = res.length
    ctx.set('X-Akmesh-Cache', 'miss')
    return
  }
  const streams = streamsToClient(ctx)
  const answer = await remote.content(key, url, {
    expect: () => ({ sha256 }),
    commit: (blob, res) => { record(fc, { project, displayName: page.project.displayName, filename, dist, entry }, blob, res) },
    toClient: streams,
    isCached: () => { const f = fc.artifacts.fileByName(fc.repo.name, project, filename); return f != null && fc.store.has(f.cid) },
    isKnown: () => fc.artifacts.fileByName(fc.repo.name, project, filename) != null,
    artifact: { name: project, version: normalVersion(dist.version) as string }
  })
  await respondWithContent(ctx, answer, {
    streams,
    fromCache: async () => {
      if (!await serveCached(ctx, fc, project, filename)) throw notFound(`${filename} not found in ${fc.repo.name}`)
    },
    headers: () => ({ 'Content-Type': contentType, 'X-Checksum-Sha256': sha256 })
  })
}

async function serveCached (ctx: Context, fc: FormatContext, project: string, filename: string): Promise<boolean> {
  const file = fc.artifacts.fileByName(fc.repo.name, project, filename)
  // Evicted and no peer has it: fetched from the upstream again.
  const blob = file == null ? undefined : await cachedBlob(fc.store, file.cid)
  if (blob == null) return false
  fc.remote?.served(blob.cid)
  sendBlob(ctx, fc.store, blob, {
    filename,
    contentType: filename.endsWith(METADATA_SUFFIX) ? 'text/plain; charset=utf-8' : 'application/octet-stream',
    headers: { 'X-Akmesh-Cache': 'hit' }
  })
  return true
}

interface Fetched { project: string, displayName: string, filename: string, dist: DistFilename, entry: UpstreamFile }

/** Records a verified file in the release row of its version, as an upload would (the .metadata
 *  file beside its distribution, whichever came first). */
function record (fc: FormatContext, f: Fetched, blob: BlobInfo, res: UpstreamResponse): void {
  const repo = fc.repo.name
  const existing = fc.artifacts.fileByName(repo, f.project, f.filename)
  if (existing != null) {
    // Recorded meanwhile (a peer's cached copy replicated here): what was cached first stays.
    if (existing.cid !== blob.cid) fc.log.warn({ filename: f.filename, cached: existing.cid, fetched: blob.cid }, 'upstream bytes differ from the copy already cached; the cached copy stays')
    return
  }
  const isMetadata = f.filename.endsWith(METADATA_SUFFIX)
  const distName = isMetadata ? f.filename.slice(0, -METADATA_SUFFIX.length) : f.filename
  const metadataFile = distName + METADATA_SUFFIX
  try {
    fc.artifacts.addFiles(repo, f.project, normalVersion(f.dist.version) as string, [{ filename: f.filename, cid: blob.cid }], (current) => {
      const release = (current as unknown as ReleaseMetadata | undefined) ??
        { name: f.displayName, version: f.dist.version, summary: null, yanked: false, files: {} }
      if (isMetadata) {
        const dist = release.files[distName]
        if (dist != null) dist.metadataFile = metadataFile
      } else {
        const uploaded = f.entry.uploadTime == null ? NaN : Date.parse(f.entry.uploadTime)
        release.files[distName] = {
          packagetype: f.dist.packagetype,
          pythonVersion: f.dist.packagetype === 'sdist' ? 'source' : (distName.split('-').at(-3) ?? 'unknown'),
          requiresPython: f.entry.requiresPython,
          metadataFile: fc.artifacts.fileByName(repo, f.project, metadataFile) != null ? metadataFile : null,
          uploadedBy: UPSTREAM_ACTOR,
          uploadedAt: Number.isNaN(uploaded) ? Date.now() : uploaded,
          yanked: f.entry.yanked,
          cached: { upstream: UpstreamClient.describe(res.url), fetchedAt: Date.now() }
        }
      }
      return release as unknown as Record<string, unknown>
    })
  } catch (err) {
    if (isRegistryError(err) && err.code === 'Conflict') return // the same file, recorded by a peer since
    throw err
  }
  fc.log.info({ project: f.project, filename: f.filename, cid: blob.cid, upstream: UpstreamClient.describe(res.url) }, 'pypi file cached from upstream')
}
