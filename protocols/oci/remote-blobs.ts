// Blobs of a remote OCI repository. A blob not cached yet is streamed to the first client while
// the store hashes and keeps it; the client's stream ends only once the sha256 matched the digest
// (one piece is held back until then), otherwise it is cut off and nothing is cached. Concurrent
// clients of one missing blob share one upstream request; the others are served from the cache.
// A HEAD of a missing blob asks the upstream with HEAD and caches nothing.
import type { Context } from 'koa'
import type { FormatContext } from '../format.ts'
import type { RemoteRepository } from '../shared/remote/remote-repository.ts'
import { respondWithContent, streamsToClient } from '../shared/remote/respond.ts'
import { cachedBlob } from '../shared/remote/cached-blob.ts'
import { getBlob } from './blobs.ts'
import { sha256Of } from './names.ts'
import { completeCachedManifests } from './remote-manifests.ts'
import { pullOf, upstreamUrl } from './remote-upstream.ts'

export async function getRemoteBlob (ctx: Context, fc: FormatContext, remote: RemoteRepository, name: string, digest: string): Promise<void> {
  const hex = sha256Of(digest)
  // Evicted (store/cache-evict.ts) and no peer has it: fetched from the upstream again.
  const cid = fc.store.cidBySha256(hex)
  const cached = cid != null && fc.blobLinks.has(fc.repo.name, name, cid) ? await cachedBlob(fc.store, cid) : undefined
  if (cached != null) {
    remote.served(cached.cid)
    ctx.set('X-Akmesh-Cache', 'hit')
    return await getBlob(ctx, fc, name, digest)
  }
  const url = upstreamUrl(remote, name, `blobs/${digest}`)
  const key = `blob ${name}@${digest}`
  if (ctx.method === 'HEAD') {
    const res = await remote.head(key, url, { ...pullOf(name), crossOriginRedirects: true })
    ctx.status = 200
    ctx.set('Content-Type', 'application/octet-stream')
    if (res.length != null) ctx.length = res.length
    ctx.set('Docker-Content-Digest', digest)
    ctx.set('X-Akmesh-Cache', 'miss')
    return
  }
  const streams = streamsToClient(ctx)
  const answer = await remote.content(key, url, {
    expect: () => ({ sha256: hex }),
    commit: (blob) => { fc.blobLinks.link(fc.repo.name, name, blob.cid); completeCachedManifests(fc, name) },
    toClient: streams,
    // Registries send blobs from storage or a CDN elsewhere; the sha256 vouches for the bytes.
    upstream: { ...pullOf(name), crossOriginRedirects: true }
  })
  await respondWithContent(ctx, answer, {
    streams,
    fromCache: async () => { await getBlob(ctx, fc, name, digest) },
    headers: () => ({ 'Content-Type': 'application/octet-stream', 'Docker-Content-Digest': digest })
  })
}
