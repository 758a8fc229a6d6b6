// The routes of a remote npm repository (type: remote): packuments (full and abbreviated),
// version documents and dist-tags from the upstream, tarball URLs pointed at this node, tarballs
// cached on first request. Everything that writes is refused with 405: nothing is published to a
// cache. Shapes: https://github.com/npm/registry/blob/main/docs/responses/package-metadata.md
import type { Context } from 'koa'
import semver from 'semver'
import { methodNotAllowed, notFound, type RegistryError } from '../../store/errors.ts'
import type { FormatContext, RepoRoutes } from '../format.ts'
import { RenderCache, renderJson, type RenderedDocument } from '../http/rendered.ts'
import type { RemoteFormat } from '../shared/remote/hooks.ts'
import { STALE_WARNING, type RemoteRepository } from '../shared/remote/remote-repository.ts'
import { parsePackagePath, splitPackageName } from './names.ts'
import { sendJson } from './package-routes.ts'
import { ABBREVIATED_TYPE } from './packument.ts'
import { abbreviate, cachedRowsPackument, refusePackument, rewritePackument, upstreamPackument, type Packument } from './remote-packument.ts'
import { fetchTarball, serveCachedTarball } from './remote-tarball.ts'

/** The shared core's hooks. The digests of a tarball come from its packument (dist.integrity and
 *  dist.shasum), which the routes pass with each fetch, not from the tarball's response. */
export const npmRemote: RemoteFormat = {
  upstreamPath: (path) => path,
  kind: (path) => path.includes('/-/') ? 'content' : 'metadata',
  expectedDigests: () => ({}),
  refuseMetadata: refusePackument
}

interface Served { doc: RenderedDocument, stale: boolean }

/** Every write to a remote repository: npm shows the message (`npm error 405 ... - <message>`). */
function refuser (fc: FormatContext, remote: RemoteRepository): () => never {
  return () => {
    throw methodNotAllowed(`${fc.repo.name} is a remote repository (a cache of ${remote.upstream}); publish to a local npm repository instead`)
  }
}

/** GET /-/package/<name>/dist-tags[/<tag>] from the upstream packument; writes refused. */
export function remoteDistTagRoutes (router: RepoRoutes, fc: FormatContext, remote: RemoteRepository): void {
  const refuse = refuser(fc, remote)
  router.get('/-/package/*rest', 'read', async (ctx) => {
    const { name, rest } = splitPackageName(ctx.path.slice(`/${fc.repo.name}/-/package/`.length))
    if (rest[0] !== 'dist-tags' || rest.length > 2) throw notFound(`no such resource: ${ctx.path}`)
    const { upstream, stale } = await upstreamPackument(remote, name)
    const tags = upstream['dist-tags']
    if (stale) ctx.set('Warning', STALE_WARNING)
    ctx.type = 'application/json'
    ctx.set('Cache-Control', 'no-cache')
    if (rest[1] == null) ctx.body = tags
    else if (tags[rest[1]] != null) ctx.body = JSON.stringify(tags[rest[1]])
    else throw notFound(`dist-tag ${rest[1]} not found on ${name}`)
  })
  router.put('/-/package/*rest', 'write', refuse)
  router.delete('/-/package/*rest', 'write', refuse)
}

/** Everything under /<repo>/<package name>. */
export function remotePackageRoutes (router: RepoRoutes, fc: FormatContext, remote: RemoteRepository): void {
  const cache = new RenderCache()
  const refuse = refuser(fc, remote)

  /** The packument as served, rendered once per upstream fetch and per change of what is cached. */
  async function packument (ctx: Context, name: string, abbreviated: boolean): Promise<Served> {
    const baseUrl = fc.baseUrl(ctx)
    const generation = fc.artifacts.generation(fc.repo.name, name)
    let fetched
    try {
      fetched = await upstreamPackument(remote, name)
    } catch (err) {
      const rows = cachedRowsPackument(fc, name, baseUrl, err as RegistryError)
      return { doc: renderJson(abbreviated ? abbreviate(rows) : rows), stale: true }
    }
    const key = `${abbreviated ? 'a' : 'f'}\0${baseUrl}\0${name}\0${fetched.fetchedAt}`
    const doc = cache.get(key, generation, () => {
      const full = rewritePackument(fetched.upstream, baseUrl, fc.artifacts.versions(fc.repo.name, name), fc.log)
      return renderJson(abbreviated ? abbreviate(full) : full, modified(full))
    })
    return { doc, stale: fetched.stale }
  }

  function send (ctx: Context, served: Served, type: string, reuse = false): void {
    if (served.stale) ctx.set('Warning', STALE_WARNING)
    sendJson(ctx, served.doc, type, reuse && !served.stale)
  }

  router.get('{/*rest}', 'read', async (ctx) => {
    const raw = ctx.path.slice(fc.repo.name.length + 2)
    if (raw === '') { ctx.body = { db_name: fc.repo.name, upstream: remote.upstream }; return }
    const path = parsePackagePath(raw)
    switch (path.kind) {
      case 'packument': {
        const abbreviated = ctx.accepts('application/json', ABBREVIATED_TYPE) === ABBREVIATED_TYPE
        return send(ctx, await packument(ctx, path.name, abbreviated), abbreviated ? ABBREVIATED_TYPE : 'application/json', true)
      }
      case 'version': {
        const served = await packument(ctx, path.name, false)
        const doc = JSON.parse(served.doc.body) as Packument
        const version = doc['dist-tags'][path.spec] ?? (semver.valid(path.spec) != null
          ? semver.clean(path.spec)
          : semver.maxSatisfying(Object.keys(doc.versions), path.spec))
        const found = version == null ? undefined : doc.versions[version]
        if (found == null) throw notFound(`version not found: ${path.name}@${path.spec}`)
        return send(ctx, { doc: renderJson(found), stale: served.stale }, 'application/json')
      }
      case 'tarball':
        if (await serveCachedTarball(ctx, fc, path.name, path.filename)) return
        return await fetchTarball(ctx, fc, remote, path.name, path.filename)
      default: throw notFound(`no such resource: ${ctx.path}`)
    }
  })
  router.put('{/*rest}', 'write', refuse)
  router.post('{/*rest}', 'write', refuse)
  router.delete('{/*rest}', 'write', refuse)
}

function modified (p: Packument): number | undefined {
  const t = (p.time as Record<string, unknown> | undefined)?.modified
  const ms = typeof t === 'string' ? Date.parse(t) : NaN
  return Number.isNaN(ms) ? undefined : ms
}

