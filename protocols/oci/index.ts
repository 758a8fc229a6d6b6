// OCI Distribution Spec v1.1 (docker, podman, skopeo, buildah, oras, helm). Each `oci`
// repository is served at /v2/<repository>/, so an image's full name is "<repository>/<image>":
//   docker pull HOST:7070/docker/library/alpine:3.20
// Shared by all OCI repositories: /v2/ (ping), /v2/_catalog, /v2/token (the bearer-token realm).
// https://github.com/opencontainers/distribution-spec/blob/main/spec.md
import type { Context, Next } from 'koa'
import type { BlobLinks } from '../../store/blob-links.ts'
import type { FormatContext, FormatHandler } from '../format.ts'
import { acceptAnonymousToken, challenge, registryRoot, TokenIssuer, tokenResponse } from './auth.ts'
import { deleteBlob, getBlob } from './blobs.ts'
import { listCatalog, listReferrers, listTags } from './discovery.ts'
import { OciError, ociError, ociErrorBody } from './errors.ts'
import { deleteManifest, getManifest, putManifest } from './manifests.ts'
import { parseRoute, type Route, validateOciArtifact } from './names.ts'
import { cancelUpload, finishUpload, patchUpload, startUpload, uploadStatus, type RepoLookup } from './uploads.ts'

const ALLOWED: Record<Route['kind'], string> = {
  uploads: 'POST',
  upload: 'GET, PATCH, PUT, DELETE',
  blob: 'GET, HEAD, DELETE',
  manifest: 'GET, HEAD, PUT, DELETE',
  tags: 'GET',
  referrers: 'GET'
}

async function dispatch (ctx: Context, fc: FormatContext, r: Route, lookup: RepoLookup): Promise<void> {
  const method = ctx.method === 'HEAD' ? 'GET' : ctx.method
  switch (r.kind) {
    case 'uploads':
      if (method === 'POST') return await startUpload(ctx, fc, r.name, lookup)
      break
    case 'upload':
      if (method === 'GET') return uploadStatus(ctx, fc, r.name, r.id)
      if (method === 'PATCH') return await patchUpload(ctx, fc, r.name, r.id)
      if (method === 'PUT') return await finishUpload(ctx, fc, r.name, r.id)
      if (method === 'DELETE') return await cancelUpload(ctx, fc, r.name, r.id)
      break
    case 'blob':
      if (method === 'GET') return await getBlob(ctx, fc, r.name, r.digest)
      if (method === 'DELETE') return deleteBlob(ctx, fc, r.name, r.digest)
      break
    case 'manifest':
      if (method === 'GET') return getManifest(ctx, fc, r.name, r.reference)
      if (method === 'PUT') return await putManifest(ctx, fc, r.name, r.reference)
      if (method === 'DELETE') return deleteManifest(ctx, fc, r.name, r.reference)
      break
    case 'tags':
      if (method === 'GET') return listTags(ctx, fc, r.name)
      break
    case 'referrers':
      if (method === 'GET') return listReferrers(ctx, fc, r.name, r.digest)
      break
  }
  throw new OciError('UNSUPPORTED', `${ctx.method} is not supported here`, { headers: { Allow: ALLOWED[r.kind] } })
}

// The OCI repositories of one node, found by name for cross-repository mounts. Keyed by the
// node's BlobLinks so two nodes in one process (tests) never see each other's repositories.
const reposOf = new WeakMap<BlobLinks, Map<string, FormatContext>>()

function lookupIn (repos: Map<string, FormatContext>): RepoLookup {
  return (fullName) => {
    const slash = fullName.indexOf('/')
    const fc = slash > 0 ? repos.get(fullName.slice(0, slash)) : undefined
    return fc == null ? undefined : { fc, name: fullName.slice(slash + 1) }
  }
}

const apiVersion = async (ctx: Context, next: Next) => {
  ctx.set('Docker-Distribution-API-Version', 'registry/2.0')
  await next()
}

export const ociFormat: FormatHandler = {
  name: 'oci',
  validateArtifact: validateOciArtifact,

  prefix: (repo) => `/v2/${repo.name}`,

  routes (router, fc) {
    const repos = reposOf.get(fc.blobLinks) ?? new Map<string, FormatContext>()
    reposOf.set(fc.blobLinks, repos)
    repos.set(fc.repo.name, fc)
    const lookup = lookupIn(repos)
    const prefix = `/v2/${fc.repo.name}`

    router.all('{/*path}', apiVersion, async (ctx, next) => {
      const rest = ctx.path.slice(prefix.length)
      // "/v2/<repo>" alone is no endpoint; let the shared routes answer (e.g. a repository
      // named "token" must not hide the token endpoint).
      if (rest === '' || rest === '/') return await next()
      const route = parseRoute(fc.repo.name, rest)
      if (route == null) throw ociError('NAME_UNKNOWN', `no OCI endpoint at ${ctx.path}`)
      await dispatch(ctx, fc, route, lookup)
    })
  },

  sharedRoutes (router, fcs) {
    const issuer = new TokenIssuer(fcs[0].accounts)
    const root = (ctx: Context) => registryRoot(ctx, fcs[0])

    // Ping. Clients send credentials only after a challenge, so a request without valid ones
    // gets one (as the reference registry does when auth is on), even if reads are anonymous.
    router.get(['/v2', '/v2/'], apiVersion, (ctx) => {
      const anonymous = acceptAnonymousToken(ctx)
      if (!anonymous && ctx.state.principal == null) {
        throw new OciError('UNAUTHORIZED', 'authentication required', { headers: challenge(root(ctx)) })
      }
      ctx.body = {}
    })

    router.get('/v2/token', apiVersion, (ctx) => {
      ctx.set('Cache-Control', 'no-store')
      ctx.body = tokenResponse(ctx, issuer, root(ctx))
    })

    router.get('/v2/_catalog', apiVersion, (ctx) => { listCatalog(ctx, fcs) })

    router.all('/v2/{*rest}', apiVersion, (ctx) => {
      throw ociError('NAME_UNKNOWN', `no OCI repository at ${ctx.path}; repositories: ${fcs.map(f => f.repo.name).join(', ')}`)
    })
  },

  errorBody: ociErrorBody
}
