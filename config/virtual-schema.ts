// The keys of a virtual repository: its members in the order they are asked, the local member
// publishes go to, and the package names exempt from dependency-confusion protection.
import { z } from 'zod'

export const virtualFields = {
  /** Repositories asked in order (local and remote ones of the same format; no virtual ones). */
  members: z.array(z.string().min(1)).min(1).optional(),
  /** The local member that npm publish, twine upload, PUT and OCI pushes to the virtual repository go to. */
  defaultLocal: z.string().min(1).optional(),
  /** Package names (npm names, PyPI project names, generic paths) a remote member may serve
   *  even though a local member has them: the opt-out of dependency-confusion protection. */
  allowRemoteOverride: z.array(z.string().min(1)).optional()
}

type RepoShape = { name: string, format: string, type?: string, members?: string[], defaultLocal?: string, allowRemoteOverride?: string[] }

/** Keys only a virtual repository takes, and the members a virtual one needs. */
export function checkVirtualKeys (r: RepoShape, ctx: z.RefinementCtx): void {
  if (r.type === 'virtual') {
    if (r.members == null) ctx.addIssue({ code: 'custom', path: ['members'], message: 'a virtual repository needs members: [<repository name>, ...]' })
    return
  }
  for (const key of ['members', 'defaultLocal', 'allowRemoteOverride'] as const) {
    if (r[key] != null) ctx.addIssue({ code: 'custom', path: [key], message: 'only virtual repositories (type: virtual) have this key' })
  }
}

/** Rules across repositories: every member exists, has the virtual repository's format and is
 *  local or remote (a virtual member is refused, so there are no cycles), and defaultLocal is
 *  one of the local members. */
export function checkVirtualMembers (repos: RepoShape[], ctx: z.RefinementCtx): void {
  const byName = new Map(repos.map(r => [r.name, r]))
  repos.forEach((r, i) => {
    if (r.type !== 'virtual' || r.members == null) return
    const seen = new Set<string>()
    r.members.forEach((m, j) => {
      const path = [i, 'members', j]
      const member = byName.get(m)
      if (seen.has(m)) ctx.addIssue({ code: 'custom', path, message: `"${m}" is listed twice` })
      seen.add(m)
      if (member == null) {
        ctx.addIssue({ code: 'custom', path, message: `no repository named "${m}"` })
      } else if (member.type === 'virtual') {
        ctx.addIssue({ code: 'custom', path, message: `"${m}" is a virtual repository; members are local or remote repositories` })
      } else if (member.format !== r.format) {
        ctx.addIssue({ code: 'custom', path, message: `"${m}" is a ${member.format} repository; a ${r.format} virtual repository takes ${r.format} members` })
      }
    })
    if (r.defaultLocal != null) {
      const d = byName.get(r.defaultLocal)
      if (!r.members.includes(r.defaultLocal)) {
        ctx.addIssue({ code: 'custom', path: [i, 'defaultLocal'], message: `"${r.defaultLocal}" is not one of members` })
      } else if (d != null && (d.type ?? 'local') !== 'local') {
        ctx.addIssue({ code: 'custom', path: [i, 'defaultLocal'], message: `"${r.defaultLocal}" is a ${d.type} repository; publishes need a local member` })
      }
    }
  })
}
