// A PyPI virtual repository: project pages merged across members (files of every version; a
// version several members have is served with the first member's files only), files from the
// first member that lists them, uploads to defaultLocal. Dependency-confusion protection: a
// project any local member has is served from local members only (unless allowRemoteOverride
// names it), so an upstream's higher version of an internal name never reaches pip.
import type { Context } from 'koa'
import { compare } from '@renovatebot/pep440'
import { notFound, RegistryError } from '../../store/errors.ts'
import type { FormatContext, RepoRoutes } from '../format.ts'
import { requestAbortSignal } from '../http/blob-response.ts'
import { firstMember, type VirtualMember, type VirtualRepository } from '../shared/virtual/virtual-repository.ts'
import { canonicalName } from './names.ts'
import { fileUrl, redirectToCanonical, sendProjectList, sendProjectPage, type FileEntry } from './simple.ts'
import { handleUpload } from './upload.ts'
import { pypiMemberSource, type PypiMemberSource } from './virtual-member.ts'

export function virtualPypiRoutes (router: RepoRoutes, fc: FormatContext, virtual: VirtualRepository): void {
  const sources = new Map<string, PypiMemberSource>(virtual.members.map(m => [m.name, pypiMemberSource(m.fc)]))
  const source = (m: VirtualMember) => sources.get(m.name) as PypiMemberSource
  const membersFor = (ctx: Context, project: string) => virtual.membersFor(ctx, project, m => source(m).hasProject(project))

  router.post(['/', '/legacy', '/legacy/'], 'write', async (ctx) => { await handleUpload(ctx, virtual.writeTarget(ctx, 'twine upload')) })

  router.get('/simple', 'read', async (ctx) => {
    if (!ctx.path.endsWith('/')) { ctx.redirect(`${fc.baseUrl(ctx)}/simple/`); ctx.status = 301; return }
    const names = new Set<string>()
    for (const m of virtual.members) {
      if (!m.fc.allows(ctx, 'read')) continue
      try { for (const n of await source(m).projectNames(requestAbortSignal(ctx))) names.add(n) } catch (err) {
        fc.log.warn({ member: m.name, err }, 'a member\'s project list is left out')
      }
    }
    sendProjectList(ctx, [...names].sort())
  })

  router.get('/simple/:project', 'read', async (ctx) => {
    const requested = String(ctx.params.project)
    if (redirectToCanonical(ctx, fc, requested)) return
    const project = canonicalName(requested)
    const members = membersFor(ctx, project)
    const byVersion = new Map<string, string>() // version → the member whose files are served
    const files: FileEntry[] = []
    let title: string | undefined
    let failure: unknown
    for (const m of members) {
      let listed
      try { listed = await source(m).projectFiles(project, requestAbortSignal(ctx)) } catch (err) { failure ??= err; continue }
      if (listed == null) continue
      title ??= listed.name
      for (const f of listed.files) {
        const owner = byVersion.get(f.version) ?? m.name
        byVersion.set(f.version, owner)
        if (owner === m.name) files.push({ ...f, url: fileUrl(fc.baseUrl(ctx), project, f.filename) })
      }
    }
    if (files.length === 0) {
      if (failure !== undefined && !(failure instanceof RegistryError && failure.code === 'NotFound')) throw failure
      throw notFound(`no project "${project}" in ${fc.repo.name} (members: ${members.map(m => m.name).join(', ')})`)
    }
    files.sort((a, b) => compare(a.version, b.version) || (a.filename < b.filename ? -1 : 1))
    sendProjectPage(ctx, project, title ?? project, files)
  })

  router.get('/packages/:project/:filename', 'read', async (ctx) => {
    const project = canonicalName(String(ctx.params.project))
    const filename = String(ctx.params.filename)
    const hit = await firstMember(membersFor(ctx, project), async m => await source(m).sendFile(ctx, project, filename) ? true : undefined)
    if (hit == null) throw notFound(`no file ${filename} in project ${project} in ${fc.repo.name}`)
    ctx.set('X-Akmesh-Member', hit.member.name)
  })
}
