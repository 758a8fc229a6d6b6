// A generic virtual repository: GET/HEAD of a path is served by the first member that has it
// (local members from the index, remote members through their cache and upstream), with
// dependency-confusion protection: a path any local member has is never served by a remote
// member (unless allowRemoteOverride names it). PUT goes to defaultLocal.
import { badRequest, methodNotAllowed, notFound } from '../../store/errors.ts'
import { actorOf, type FormatContext, type RepoRoutes } from '../format.ts'
import { firstMember, type VirtualRepository } from '../shared/virtual/virtual-repository.ts'
import { folderEntries, type FolderEntry } from './listing.ts'
import { putFile, sendLocalFile } from './local-file.ts'
import { sendRemoteFile } from './remote.ts'
import { filePath } from './request-path.ts'

export function virtualGenericRoutes (router: RepoRoutes, fc: FormatContext, virtual: VirtualRepository): void {
  router.put('{/*path}', 'write', async (ctx) => {
    const { path, folder } = filePath(ctx, fc)
    if (folder || path === '') throw badRequest('PUT needs a file path, not a folder')
    await putFile(ctx, virtual.writeTarget(ctx, 'PUT'), path, actorOf(ctx))
  })

  router.get('{/*path}', 'read', async (ctx) => {
    const { path, folder } = filePath(ctx, fc)
    if (folder) {
      // What the members hold (for remote members: what is cached), merged.
      const prefix = path === '' ? '' : path + '/'
      // The first member holding a path is the one that serves it.
      const entries = new Map<string, FolderEntry>()
      for (const m of virtual.members) if (m.fc.allows(ctx, 'read')) for (const e of folderEntries(m.fc, m.name, prefix, m.name)) if (!entries.has(e.path)) entries.set(e.path, e)
      const files = [...entries.keys()].sort()
      ctx.body = { repo: fc.repo.name, path, members: virtual.members.map(m => m.name), files, entries: files.map(f => entries.get(f) as FolderEntry) }
      return
    }
    const members = virtual.membersFor(ctx, path, m => m.fc.artifacts.get(m.name, path, '') != null)
    const hit = await firstMember(members, async (m) => {
      if (m.fc.remote != null) { await sendRemoteFile(ctx, m.fc, m.fc.remote, path); return true }
      return await sendLocalFile(ctx, m.fc, path) ? true : undefined
    })
    if (hit == null) throw notFound(`${path} not found in ${fc.repo.name} (members: ${members.map(m => m.name).join(', ')})`)
    ctx.set('X-Akmesh-Member', hit.member.name)
  })

  router.delete('{/*path}', 'write', () => {
    throw methodNotAllowed(`${fc.repo.name} is a virtual repository: delete from the member that holds the file`)
  })
}
