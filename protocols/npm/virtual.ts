// An npm virtual repository: packuments merged across members (./virtual-merge.ts), tarballs
// from the first member that has them, publishes to defaultLocal. Dependency-confusion
// protection: a package any local member has is served from local members only, so a remote
// member's higher version of the same name is never seen (unless allowRemoteOverride names it).
import type { Context } from 'koa'
import semver from 'semver'
import { badRequest, methodNotAllowed, notFound, RegistryError } from '../../store/errors.ts'
import { actorOf, type FormatContext, type RepoRoutes } from '../format.ts'
import { requestAbortSignal } from '../http/blob-response.ts'
import { renderJson } from '../http/rendered.ts'
import { firstMember, type VirtualMember, type VirtualRepository } from '../shared/virtual/virtual-repository.ts'
import { isPlainObject, readJsonBody } from './body.ts'
import { ABBREVIATED_TYPE } from './packument.ts'
import { packagePath, sendJson } from './package-routes.ts'
import { publishVersion } from './publish.ts'
import { userRoutes } from './user-routes.ts'
import { npmMemberSource, tarballNotFound, type MemberPackument, type NpmMemberSource } from './virtual-member.ts'
import { abbreviate, mergePackuments } from './virtual-merge.ts'

export function virtualNpmRoutes (router: RepoRoutes, fc: FormatContext, virtual: VirtualRepository): void {
  const sources = new Map<string, NpmMemberSource>(virtual.members.map(m => [m.name, npmMemberSource(m.fc)]))
  const source = (m: VirtualMember) => sources.get(m.name) as NpmMemberSource
  const membersFor = (ctx: Context, name: string) => virtual.membersFor(ctx, name, m => source(m).hasPackage(name))

  async function merged (ctx: Context, name: string) {
    const members = membersFor(ctx, name)
    const docs: Array<{ member: VirtualMember, doc: MemberPackument }> = []
    let failure: unknown
    for (const member of members) {
      try {
        const doc = await source(member).packument(name, requestAbortSignal(ctx))
        if (doc != null) docs.push({ member, doc })
      } catch (err) {
        // A remote member that is down leaves its versions out; if no member has the package, its error is the answer.
        failure ??= err
      }
    }
    if (docs.length === 0) {
      if (failure !== undefined && !(failure instanceof RegistryError && failure.code === 'NotFound')) throw failure
      throw notFound(`package ${name} not found in ${fc.repo.name} (members: ${members.map(m => m.name).join(', ')})`)
    }
    return mergePackuments(name, docs, fc.baseUrl(ctx))
  }

  userRoutes(router, fc)
  router.all('/-/*rest', 'public', (ctx) => { throw notFound(`${fc.repo.name} is a virtual repository; it does not serve ${ctx.path}`) })

  router.get('{/*rest}', (ctx) => ctx.query.write === 'true' ? 'write' : 'read', async (ctx) => {
    const path = packagePath(ctx, fc)
    if (path == null) { ctx.body = { db_name: fc.repo.name, members: virtual.members.map(m => m.name) }; return }
    if (ctx.query.write === 'true') throw refuseWrite(fc, virtual)
    switch (path.kind) {
      case 'packument': {
        const { full } = await merged(ctx, path.name)
        const abbreviated = ctx.accepts('application/json', ABBREVIATED_TYPE) === ABBREVIATED_TYPE
        return sendJson(ctx, renderJson(abbreviated ? abbreviate(full) : full), abbreviated ? ABBREVIATED_TYPE : 'application/json')
      }
      case 'version': {
        const { full } = await merged(ctx, path.name)
        const versions = full.versions as Record<string, Record<string, unknown>>
        const tags = full['dist-tags'] as Record<string, string>
        const v = tags[path.spec] ?? (semver.valid(path.spec) != null ? semver.clean(path.spec) : semver.maxSatisfying(Object.keys(versions), path.spec))
        if (v == null || versions[v] == null) throw notFound(`version not found: ${path.name}@${path.spec}`)
        return sendJson(ctx, renderJson(versions[v]), 'application/json')
      }
      case 'tarball': {
        // The first member with the file is the one whose version document won the merge.
        const hit = await firstMember(membersFor(ctx, path.name), async m => await source(m).sendTarball(ctx, path.name, path.filename) ? true : undefined)
        if (hit == null) throw tarballNotFound(fc.repo.name, path.name, path.filename)
        ctx.set('X-Akmesh-Member', hit.member.name)
        return
      }
      default: throw notFound(`no such resource: ${ctx.path}`)
    }
  })

  router.put('{/*rest}', 'write', async (ctx) => {
    const path = packagePath(ctx, fc)
    if (path?.kind !== 'packument') throw refuseWrite(fc, virtual)
    const body = await readJsonBody(ctx, fc.limits.metadataBytes)
    if (!isPlainObject(body)) throw badRequest('the body must be a JSON object (a package document)')
    if (body._attachments === undefined) throw refuseWrite(fc, virtual)
    const target = virtual.writeTarget(ctx, 'npm publish')
    const { version } = await publishVersion(ctx, target, path.name, body, actorOf(ctx))
    ctx.status = 201
    ctx.body = { ok: true, id: path.name, version, repository: target.repo.name }
  })

  router.delete('{/*rest}', 'write', () => { throw refuseWrite(fc, virtual) })
}

/** Only publishes go through a virtual repository; deprecate, unpublish and tags are done on the
 *  member that holds the package. */
function refuseWrite (fc: FormatContext, virtual: VirtualRepository) {
  return methodNotAllowed(`${fc.repo.name} is a virtual repository: only npm publish goes through it${virtual.defaultLocal != null ? ` (to ${virtual.defaultLocal})` : ''}; change a published package on the member that holds it`)
}


