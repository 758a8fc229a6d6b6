// What one member of a PyPI virtual repository offers it: a project's page (the format's model,
// ./simple-render.ts) and the files' bytes. Local members answer from the index; a remote member
// answers through its caching proxy. This is the seam the PyPI remote work plugs into:
// `remotePypiMember` below (remote-project.ts's remoteProjectFiles gives the page).
import type { Context } from 'koa'
import type { FormatContext } from '../format.ts'
import { sendBlob } from '../http/blob-response.ts'
import { METADATA_SUFFIX } from './release.ts'
import { localProject, projectNames } from './simple.ts'
import type { IndexProject } from './simple-render.ts'

export interface PypiMemberSource {
  /** The project's page (canonical name) with URLs below `baseUrl`, or undefined if the member
   *  has no such project. */
  projectFiles (project: string, baseUrl: string, signal?: AbortSignal): Promise<IndexProject | undefined>
  /** Sends a distribution or its `.metadata` file; false if the member has no such file. */
  sendFile (koa: Context, project: string, filename: string): Promise<boolean>
  /** Whether the member holds the project itself (asked of local members only, for the
   *  dependency-confusion rule). */
  hasProject (project: string): boolean
  /** The projects for the /simple/ list (a remote member: its upstream's, or what it cached). */
  projectNames (signal?: AbortSignal): Promise<string[]>
}

/** The PyPI remote hooks set this to give virtual repositories remote members; until then a
 *  remote PyPI member is refused when the node starts. */
export const remotePypiMember: { source?: (fc: FormatContext) => PypiMemberSource } = {}

export function pypiMemberSource (fc: FormatContext): PypiMemberSource {
  if (fc.remote == null) return localPypiMember(fc)
  if (remotePypiMember.source == null) throw new Error(`repository ${fc.repo.name}: PyPI remote repositories cannot be virtual members yet`)
  return remotePypiMember.source(fc)
}

export function localPypiMember (fc: FormatContext): PypiMemberSource {
  return {
    hasProject: (project) => fc.artifacts.versions(fc.repo.name, project).length > 0,
    async projectFiles (project, baseUrl) { return localProject(fc, baseUrl, project) },
    async sendFile (koa, project, filename) {
      const file = fc.artifacts.fileByName(fc.repo.name, project, filename)
      const blob = file == null ? undefined : await fc.store.locate(file.cid)
      if (blob == null) return false
      sendBlob(koa, fc.store, blob, {
        filename,
        contentType: filename.endsWith(METADATA_SUFFIX) ? 'text/plain; charset=utf-8' : 'application/octet-stream'
      })
      return true
    },
    async projectNames () { return projectNames(fc) }
  }
}
