// OCI Distribution Spec v1.1 (docker, podman, skopeo, buildah, oras, helm). Each `oci`
// repository is served at /v2/<repository>/, so an image's full name is "<repository>/<image>":
//   docker pull HOST:7070/docker/library/alpine:3.20
// Shared by all OCI repositories: /v2/ (ping), /v2/_catalog, /v2/token (the bearer-token realm).
// A remote repository (type: remote) is a pull-through cache (./remote.ts); a virtual one (type:
// virtual) serves its members' images and pushes to its defaultLocal (./virtual.ts).
// https://github.com/opencontainers/distribution-spec/blob/main/spec.md
import type { Context, Middleware } from 'koa'
import type { BlobLinks } from '../../store/blob-links.ts'
import type { Access, FormatContext, FormatHandler } from '../format.ts'
import {
  API_VERSION, authenticateSharedToken, authenticateToken, challenge, neededAction, registryRoot, routeOf, scopeOf,
  tokenChallenge, tokenResponse
} from './auth.ts'
import { deleteBlob, getBlob } from './blobs.ts'
import { listCatalog, listReferrers, listTags } from './discovery.ts'
import { OciError, ociError, ociErrorBody } from './errors.ts'
import { deleteManifest, getManifest, putManifest } from './manifests.ts'
import { type Route, validateOciArtifact } from './names.ts'
import { ociRemote, remoteDispatch } from './remote.ts'
import { virtualDispatch } from './virtual.ts'
import { cancelUpload, finishUpload, patchUpload, startUpload, uploadStatus, type RepoLookup, OCI_DIGESTS } from './uploads.ts'

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

const apiVersion = (handler: Middleware): Middleware => async (ctx, next) => {
  ctx.set(API_VERSION)
  return await handler(ctx, next)
}

/** Every endpoint of an image; a path that is none is public (the handler answers NAME_UNKNOWN,
 *  or passes "/v2/<repo>" on to the shared routes). */
function accessOf (ctx: Context, fc: FormatContext): Access {
  const route = routeOf(ctx, fc)
  return route == null ? 'public' : scopeOf(neededAction(route, ctx.method))
}

export const ociFormat: FormatHandler = {
  name: 'oci',
  digests: OCI_DIGESTS,
  validateArtifact: validateOciArtifact,

  prefix: (repo) => `/v2/${repo.name}`,

  routes (router, fc) {
    const repos = reposOf.get(fc.blobLinks) ?? new Map<string, FormatContext>()
    reposOf.set(fc.blobLinks, repos)
    repos.set(fc.repo.name, fc)
    const lookup = lookupIn(repos)

    router.all('{/*path}', (ctx) => accessOf(ctx, fc), apiVersion(async (ctx, next) => {
      // "/v2/<repo>" alone is no endpoint; let the shared routes answer (e.g. a repository
      // named "token" must not hide the token endpoint).
      const rest = ctx.path.slice(`/v2/${fc.repo.name}`.length)
      if (rest === '' || rest === '/') return await next()
      const route = routeOf(ctx, fc)
      if (route == null) throw ociError('NAME_UNKNOWN', `no OCI endpoint at ${ctx.path}`)
      if (fc.remote != null) await remoteDispatch(ctx, fc, fc.remote, route)
      else if (fc.virtual != null) await virtualDispatch(ctx, fc, fc.virtual, route, lookup)
      else await dispatch(ctx, fc, route, lookup)
    }))
  },

  authenticate: authenticateToken,
  challenge: tokenChallenge,

  // All public: they belong to no repository. The ping and the catalog check credentials
  // themselves; the token endpoint is where credentials are exchanged.
  sharedRoutes (router, fcs) {
    const root = (ctx: Context) => registryRoot(ctx, fcs[0])

    // Ping. Clients send credentials only after a challenge, so a request without valid ones
    // gets one (as the reference registry does when auth is on), even if reads are anonymous.
    router.get(['/v2', '/v2/'], 'public', apiVersion((ctx) => {
      if (!authenticateSharedToken(ctx, fcs) && ctx.state.principal == null) {
        throw new OciError('UNAUTHORIZED', 'authentication required', { headers: challenge(root(ctx)) })
      }
      ctx.body = {}
    }))

    router.get('/v2/token', 'public', apiVersion((ctx) => {
      ctx.set('Cache-Control', 'no-store')
      ctx.body = tokenResponse(ctx, fcs, root(ctx))
    }))

    router.get('/v2/_catalog', 'public', apiVersion((ctx) => {
      authenticateSharedToken(ctx, fcs)
      listCatalog(ctx, fcs)
    }))

    router.all('/v2/{*rest}', 'public', apiVersion((ctx) => {
      throw ociError('NAME_UNKNOWN', `no OCI repository at ${ctx.path}; repositories: ${fcs.map(f => f.repo.name).join(', ')}`)
    }))
  },

  errorBody: ociErrorBody,
  remote: ociRemote,
  virtual: true
}
