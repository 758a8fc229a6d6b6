// A PyPI virtual repository: project pages merged across members (files of every version; a
// version several members have is served with the first member's files only), files from the
// first member that lists them, uploads to defaultLocal. Dependency-confusion protection: a
// project any local member has is served from local members only (unless allowRemoteOverride
// names it), so an upstream's higher version of an internal name never reaches pip.
import { compare } from '@renovatebot/pep440'
import type { Context } from 'koa'
import { notFound, RegistryError } from '../../store/errors.ts'
import type { FormatContext, RepoRoutes } from '../format.ts'
import { requestAbortSignal } from '../http/blob-response.ts'
import { firstMember, type VirtualMember, type VirtualRepository } from '../shared/virtual/virtual-repository.ts'
import { canonicalName, normalVersion, splitDistFilename } from './names.ts'
import { normalisedProject } from './simple.ts'
import { negotiate, renderProject, renderProjectList, sendIndex, type IndexFile, type IndexProject } from './simple-render.ts'
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
    const rep = negotiate(ctx)
    sendIndex(ctx, rep, renderProjectList(rep, [...names].sort()))
  })

  router.get('/simple/:project', 'read', async (ctx) => {
    const project = normalisedProject(ctx, fc, String(ctx.params.project))
    if (project == null) return
    const members = membersFor(ctx, project)
    const pages: IndexProject[] = []
    let failure: unknown
    for (const m of members) {
      try {
        const page = await source(m).projectFiles(project, fc.baseUrl(ctx), requestAbortSignal(ctx))
        if (page != null) pages.push(page)
      } catch (err) { failure ??= err } // a member that is down leaves its files out
    }
    if (pages.length === 0) {
      if (failure !== undefined && !(failure instanceof RegistryError && failure.code === 'NotFound')) throw failure
      throw notFound(`no project "${project}" in ${fc.repo.name} (members: ${members.map(m => m.name).join(', ')})`)
    }
    const rep = negotiate(ctx)
    sendIndex(ctx, rep, renderProject(rep, mergeProjects(project, pages)))
  })

  router.get('/packages/:project/:filename', 'read', async (ctx) => {
    const project = canonicalName(String(ctx.params.project))
    const filename = String(ctx.params.filename)
    const hit = await firstMember(membersFor(ctx, project), async m => await source(m).sendFile(ctx, project, filename) ? true : undefined)
    if (hit == null) throw notFound(`no file ${filename} in project ${project} in ${fc.repo.name}`)
    ctx.set('X-Akmesh-Member', hit.member.name)
  })
}

/** Pages of several members as one: a version's files come from the first page that has the
 *  version (so pip never sees two different files for one version), every version otherwise. */
export function mergeProjects (project: string, pages: IndexProject[]): IndexProject {
  const owner = new Map<string, IndexProject>()
  for (const page of pages) for (const v of page.versions) if (!owner.has(normalVersion(v) ?? v)) owner.set(normalVersion(v) ?? v, page)
  const files: IndexFile[] = []
  const seen = new Set<string>()
  for (const page of pages) {
    for (const f of page.files) {
      const raw = splitDistFilename(f.filename, project)?.version
      const version = raw == null ? undefined : normalVersion(raw) ?? raw
      // A file whose version cannot be read is kept unless an earlier page listed its name.
      if (seen.has(f.filename) || (version != null && owner.get(version) !== page)) continue
      seen.add(f.filename)
      files.push(f)
    }
  }
  const versions = [...owner.keys()].sort(compare)
  return { name: project, displayName: pages[0].displayName, versions, files }
}
