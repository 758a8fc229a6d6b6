// A remote OCI repository: a pull-through cache of an upstream registry. Manifests by tag are
// metadata (re-asked after metadataTtl, served stale when the upstream fails); manifests and
// blobs by digest are content (verified against the digest, cached for good); tag lists and
// referrers are passed through. Pushes are refused: nothing is published to a cache.
// The upstream URL is the registry's root (its /v2/ API below it).
import type { Context } from 'koa'
import { isRegistryError, type RegistryError } from '../../store/errors.ts'
import type { FormatContext } from '../format.ts'
import type { RemoteFormat } from '../shared/remote/hooks.ts'
import type { RemoteRepository } from '../shared/remote/remote-repository.ts'
import { OciError, ociError, type OciCode } from './errors.ts'
import type { Route } from './names.ts'
import { getRemoteBlob } from './remote-blobs.ts'
import { getRemoteManifest, manifestRefusal } from './remote-manifests.ts'
import { listRemoteReferrers, listRemoteTags } from './remote-discovery.ts'
import { upstreamName, upstreamPath } from './remote-upstream.ts'

const BY_DIGEST = /\/(?:blobs|manifests)\/sha256:([a-f0-9]{64})$/

export const ociRemote: RemoteFormat = {
  upstreamPath,
  kind: (path) => BY_DIGEST.test(path) ? 'content' : 'metadata',
  expectedDigests (path) {
    const m = BY_DIGEST.exec(path)
    return m == null ? {} : { sha256: m[1] }
  },
  refuseMetadata: (contentType, body) => manifestRefusal()(contentType, body, new Headers())
}

/** Every endpoint of a remote OCI repository (after the route's access check). */
export async function remoteDispatch (ctx: Context, fc: FormatContext, remote: RemoteRepository, r: Route): Promise<void> {
  const reads = ctx.method === 'GET' || ctx.method === 'HEAD'
  if (r.kind === 'uploads' || r.kind === 'upload' || !reads) {
    throw new OciError('UNSUPPORTED', `${fc.repo.name} is a remote repository (a cache of ${remote.upstream}); push to a local OCI repository instead`,
      { headers: { Allow: 'GET, HEAD' } })
  }
  const name = upstreamName(fc, r.name)
  switch (r.kind) {
    case 'blob': return await answering('BLOB_UNKNOWN', async () => await getRemoteBlob(ctx, fc, remote, name, r.digest))
    case 'manifest': return await answering('MANIFEST_UNKNOWN', async () => await getRemoteManifest(ctx, fc, remote, name, r.reference))
    case 'tags': return await answering('NAME_UNKNOWN', async () => await listRemoteTags(ctx, fc, remote, r.name, name))
    case 'referrers': return await listRemoteReferrers(ctx, fc, remote, name, r.digest)
  }
}

/** The core's "not found" (upstream 404, offline miss) in the OCI code a client expects. */
async function answering (code: OciCode, work: () => Promise<void>): Promise<void> {
  try {
    await work()
  } catch (err) {
    if (isRegistryError(err) && !(err instanceof OciError) && (err as RegistryError).code === 'NotFound') throw ociError(code, err.message)
    throw err
  }
}
