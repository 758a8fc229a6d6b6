// A generic remote repository: GET/HEAD of a path fetches the upstream's file on a miss, streams
// it to the client while caching it as an ordinary artifact (marked cached, with its upstream),
// and serves it from the cache from then on. PUT is refused: nothing is published to a proxy.
import type { Context } from 'koa'
import { badRequest, methodNotAllowed, notFound } from '../../store/errors.ts'
import type { DigestName } from '../../store/types.ts'
import type { FormatContext, RepoRoutes } from '../format.ts'
import { sendBlob } from '../http/blob-response.ts'
import { encodePath } from '../http/encode.ts'
import type { RemoteFormat } from '../shared/remote/hooks.ts'
import type { RemoteRepository } from '../shared/remote/remote-repository.ts'
import { cachedBlob } from '../shared/remote/cached-blob.ts'
import { respondWithContent, streamsToClient } from '../shared/remote/respond.ts'
import { UpstreamClient, type UpstreamResponse } from '../shared/remote/upstream-client.ts'
import { folderEntries } from './listing.ts'
import { CHECKSUM_HEADERS, filePath } from './request-path.ts'

const VERSION = ''

/** Artifact metadata of a cached file (what listings and the mesh see of its origin). */
export interface CachedFileMetadata {
  contentType: string | null
  cached: true
  upstream: string
  upstreamEtag: string | null
  upstreamLastModified: string | null
  fetchedAt: number
}

export const genericRemote: RemoteFormat = {
  upstreamPath: (path) => encodePath(path),
  kind: () => 'content', // every generic file is content: immutable once cached
  /** Artifactory (and akmesh itself) send the file's checksums as headers: verified if present. */
  expectedDigests (_path, res) {
    const expect: Partial<Record<DigestName, string>> = {}
    for (const [name, header, hexLength] of CHECKSUM_HEADERS) {
      const v = res.headers.get(header)
      if (v != null && new RegExp(`^[0-9a-fA-F]{${hexLength}}$`).test(v)) expect[name] = v.toLowerCase()
    }
    return expect
  }
}

export function remoteGenericRoutes (router: RepoRoutes, fc: FormatContext, remote: RemoteRepository): void {
  const refuse = () => {
    throw methodNotAllowed(`${fc.repo.name} is a remote repository (a cache of ${remote.upstream}); publish to a local repository instead`)
  }
  router.put('{/*path}', 'write', refuse)
  router.post('{/*path}', 'write', refuse)

  router.get('{/*path}', 'read', async (ctx) => {
    const { path, folder } = filePath(ctx, fc)
    if (folder) {
      // What is cached, not the upstream's folder (a plain HTTP upstream has no listing format).
      const entries = folderEntries(fc, fc.repo.name, path === '' ? '' : path + '/')
      ctx.body = { repo: fc.repo.name, path, cached: true, upstream: remote.upstream, files: entries.map(e => e.path), entries }
      return
    }
    await sendRemoteFile(ctx, fc, remote, path)
  })

  router.delete('{/*path}', 'write', async (ctx) => {
    const { path, folder } = filePath(ctx, fc)
    if (folder || path === '') throw badRequest('DELETE needs a file path')
    fc.artifacts.remove(fc.repo.name, path, VERSION) // evicts the cached copy; the next GET fetches again
    ctx.status = 204
  })
}

/** GET/HEAD of `path` from a remote repository: from the cache, or fetched from the upstream
 *  (NotFound if the upstream has no such file). A virtual repository calls this for its remote
 *  members. */
export async function sendRemoteFile (ctx: Context, fc: FormatContext, remote: RemoteRepository, path: string): Promise<void> {
  if (await serveCached(ctx, fc, remote, path)) return
  const url = remote.client.urlOf(genericRemote.upstreamPath(path))
  if (ctx.method === 'HEAD') { headFromUpstream(ctx, await remote.head(path, url)); return }
  const streams = streamsToClient(ctx)
  const answer = await remote.content(path, url, {
    expect: (res) => genericRemote.expectedDigests(path, res),
    commit: (blob, res) => { record(fc, path, blob.cid, res) },
    toClient: streams,
    isCached: () => { const f = fc.artifacts.get(fc.repo.name, path, VERSION)?.files[0]; return f != null && fc.store.has(f.cid) },
    isKnown: () => (fc.artifacts.get(fc.repo.name, path, VERSION)?.files.length ?? 0) > 0,
    artifact: { name: path, version: VERSION }
  })
  await respondWithContent(ctx, answer, {
    streams,
    fromCache: async () => {
      if (!await serveCached(ctx, fc, remote, path)) throw notFound(`${path} not found in ${fc.repo.name}`)
    },
    headers: (res) => {
      upstreamValidators(ctx, res.headers.get('etag'), res.headers.get('last-modified'))
      return { 'Content-Type': res.headers.get('content-type') ?? 'application/octet-stream' }
    }
  })
}

/** Serves `path` from the cache if it is there, its bytes here or at a peer (and checks in the
 *  background that the upstream has not changed it). */
async function serveCached (ctx: Context, fc: FormatContext, remote: RemoteRepository, path: string): Promise<boolean> {
  const artifact = fc.artifacts.get(fc.repo.name, path, VERSION)
  if (artifact == null || artifact.files.length === 0) return false
  const [file] = fc.artifacts.filesWithBlobs(artifact)
  const blob = await cachedBlob(fc.store, file.cid)
  if (blob == null) return false // evicted, and no peer has it: fetched from the upstream again
  remote.served(file.cid)
  const md = artifact.metadata as Partial<CachedFileMetadata>
  remote.revalidate(path, remote.client.urlOf(genericRemote.upstreamPath(path)),
    { etag: md.upstreamEtag ?? undefined, lastModified: md.upstreamLastModified ?? undefined, size: file.blob.size }, () => {})
  const lastModified = md.upstreamLastModified != null ? Date.parse(md.upstreamLastModified) : NaN
  sendBlob(ctx, fc.store, blob, {
    contentType: md.contentType ?? undefined,
    filename: file.filename,
    lastModified: Number.isNaN(lastModified) ? artifact.updatedAt : lastModified,
    headers: { 'X-Akmesh-Cache': 'hit', ...(md.upstreamEtag != null ? { 'X-Upstream-ETag': md.upstreamEtag } : {}) }
  })
  return true
}

function record (fc: FormatContext, path: string, cid: string, res: UpstreamResponse): void {
  // Recorded meanwhile (a peer's cached copy replicated here): what was cached first stays.
  const existing = fc.artifacts.get(fc.repo.name, path, VERSION)
  if (existing != null) {
    if (existing.files[0]?.cid !== cid) fc.log.warn({ path, cached: existing.files[0]?.cid, fetched: cid }, 'upstream bytes differ from the copy already cached; the cached copy stays')
    return
  }
  const metadata: CachedFileMetadata = {
    contentType: res.headers.get('content-type'),
    cached: true,
    upstream: UpstreamClient.describe(res.url),
    upstreamEtag: res.headers.get('etag'),
    upstreamLastModified: res.headers.get('last-modified'),
    fetchedAt: Date.now()
  }
  fc.artifacts.publish({
    repo: fc.repo.name, name: path, version: VERSION,
    files: [{ filename: path.split('/').pop() as string, cid }],
    metadata: { ...metadata }
  })
}

function headFromUpstream (ctx: Context, res: UpstreamResponse): void {
  ctx.status = 200
  ctx.set('Content-Type', res.headers.get('content-type') ?? 'application/octet-stream')
  if (res.length != null) ctx.length = res.length
  upstreamValidators(ctx, res.headers.get('etag'), res.headers.get('last-modified'))
  ctx.set('X-Akmesh-Cache', 'miss')
}

/** The upstream's validators on a response not served from the cache. (A cached file's ETag is
 *  its CID, the same on every node; the upstream's goes in X-Upstream-ETag.) */
function upstreamValidators (ctx: Context, etag: string | null, lastModified: string | null): void {
  if (etag != null) ctx.set('X-Upstream-ETag', etag)
  if (lastModified != null) ctx.set('Last-Modified', lastModified)
}
