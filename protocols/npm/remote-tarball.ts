// Tarballs of a remote npm repository: served from the cache, or fetched from the upstream on the
// first request (streamed to that client while stored), verified against the dist.integrity
// (sha512) and dist.shasum of the upstream packument, and recorded as an ordinary version row
// (its version document, marked cached) that replicates and exports like a published one.
import type { Context } from 'koa'
import { notFound, upstreamError } from '../../store/errors.ts'
import type { DigestName } from '../../store/types.ts'
import type { FormatContext } from '../format.ts'
import { sendBlob } from '../http/blob-response.ts'
import type { RemoteRepository } from '../shared/remote/remote-repository.ts'
import { cachedBlob } from '../shared/remote/cached-blob.ts'
import { respondWithContent, streamsToClient } from '../shared/remote/respond.ts'
import { UpstreamClient, type UpstreamResponse } from '../shared/remote/upstream-client.ts'
import { tarballFilename, versionFromFilename } from './names.ts'
import { tarballPath, upstreamPackument, type VersionDocument } from './remote-packument.ts'

/** Serves a cached tarball; false if it is not cached, or evicted and no peer has it. */
export async function serveCachedTarball (ctx: Context, fc: FormatContext, name: string, filename: string): Promise<boolean> {
  const file = fc.artifacts.fileByName(fc.repo.name, name, filename)
  const blob = file == null ? undefined : await cachedBlob(fc.store, file.cid)
  if (blob == null) return false
  fc.remote?.served(blob.cid)
  sendBlob(ctx, fc.store, blob, { contentType: 'application/octet-stream', headers: { 'X-Akmesh-Cache': 'hit' } })
  return true
}

/** The digests (hex) a version's dist declares: sha512 from an `sha512-` integrity, sha1 from the
 *  shasum. A version declaring neither cannot be verified and is refused. */
export function declaredDigests (doc: VersionDocument, what: string): Partial<Record<DigestName, string>> {
  const expect: Partial<Record<DigestName, string>> = {}
  const integrity = typeof doc.dist?.integrity === 'string' ? doc.dist.integrity : ''
  // An SRI string may list several hashes; sha512 is the one npm publishes.
  const sha512 = integrity.split(/\s+/).find(h => h.startsWith('sha512-'))
  if (sha512 != null) {
    const hex = Buffer.from(sha512.slice('sha512-'.length), 'base64').toString('hex')
    if (hex.length !== 128) throw upstreamError(`${what}: dist.integrity is not a valid sha512 (${sha512.slice(0, 40)}); refused`)
    expect.sha512 = hex
  }
  const shasum = doc.dist?.shasum
  if (typeof shasum === 'string' && /^[0-9a-fA-F]{40}$/.test(shasum)) expect.sha1 = shasum.toLowerCase()
  if (expect.sha512 == null && expect.sha1 == null) throw upstreamError(`${what}: the upstream packument declares no dist.integrity (sha512) or dist.shasum to verify it by; refused`)
  return expect
}

/** The upstream URL of a version's tarball: the packument's, when it is on the upstream's own
 *  origin (credentials go with every request, so no other host is asked), else the usual path. */
function upstreamTarballUrl (remote: RemoteRepository, name: string, doc: VersionDocument): URL {
  const declared = doc.dist?.tarball
  if (typeof declared === 'string') {
    try {
      const u = new URL(declared)
      if (u.origin === remote.settings.upstream.origin) return u
    } catch {}
  }
  return remote.client.urlOf(tarballPath(name, doc.version))
}

/** GET of a tarball not cached yet: one upstream fetch however many clients ask at once. */
export async function fetchTarball (ctx: Context, fc: FormatContext, remote: RemoteRepository, name: string, filename: string): Promise<void> {
  const version = versionFromFilename(name, filename)
  if (version == null) throw notFound(`${filename} is not a tarball of ${name}`)
  const { upstream } = await upstreamPackument(remote, name)
  const doc = upstream.versions[version]
  if (doc == null || filename !== tarballFilename(name, version)) throw notFound(`${name}@${version} not found upstream (${remote.upstream})`)
  // Cached while this request waited for the packument.
  if (await serveCachedTarball(ctx, fc, name, filename)) return
  const expect = declaredDigests(doc, `${name}@${version}`)
  const url = upstreamTarballUrl(remote, name, doc)
  if (ctx.method === 'HEAD') {
    const res = await remote.head(`tarball:${name}@${version}`, url)
    ctx.status = 200
    ctx.type = 'application/octet-stream'
    if (res.length != null) ctx.length = res.length
    ctx.set('X-Akmesh-Cache', 'miss')
    return
  }
  const streams = streamsToClient(ctx)
  const answer = await remote.content(`tarball:${name}@${version}`, url, {
    expect: () => expect,
    commit: (blob, res) => { record(fc, name, doc, blob.cid, res) },
    toClient: streams,
    isCached: () => { const f = fc.artifacts.fileByName(fc.repo.name, name, filename); return f != null && fc.store.has(f.cid) },
    isKnown: () => fc.artifacts.fileByName(fc.repo.name, name, filename) != null,
    artifact: { name, version }
  })
  await respondWithContent(ctx, answer, {
    streams,
    fromCache: async () => {
      if (!await serveCachedTarball(ctx, fc, name, filename)) throw notFound(`${name}/-/${filename} not found in ${fc.repo.name}`)
    },
    headers: () => ({ 'Content-Type': 'application/octet-stream' })
  })
}

/** Records a fetched tarball as its version row: the upstream's version document (without its
 *  upstream tarball URL), marked cached. What was cached first stays (a peer's replicated copy). */
function record (fc: FormatContext, name: string, doc: VersionDocument, cid: string, res: UpstreamResponse): void {
  const existing = fc.artifacts.get(fc.repo.name, name, doc.version)
  if (existing != null) {
    if (existing.files[0]?.cid !== cid) fc.log.warn({ name, version: doc.version, cached: existing.files[0]?.cid, fetched: cid }, 'upstream tarball differs from the copy already cached; the cached copy stays')
    return
  }
  const { tarball: _upstreamUrl, ...dist } = doc.dist
  fc.artifacts.publish({
    repo: fc.repo.name,
    name,
    version: doc.version,
    files: [{ filename: tarballFilename(name, doc.version), cid }],
    metadata: {
      ...doc,
      dist,
      cached: true,
      upstream: UpstreamClient.describe(res.url),
      upstreamEtag: res.headers.get('etag'),
      upstreamLastModified: res.headers.get('last-modified'),
      fetchedAt: Date.now()
    }
  })
}
