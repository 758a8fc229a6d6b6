// What one member of a PyPI virtual repository offers it: a project's files and the files'
// bytes. Local members answer from the index; a remote member answers through its caching proxy.
// This is the seam the PyPI remote work plugs into: `remotePypiMember` below.
import type { Context } from 'koa'
import type { FormatContext } from '../format.ts'
import { sendBlob } from '../http/blob-response.ts'
import { METADATA_SUFFIX } from './release.ts'
import { displayName, localFileEntries, projectNames, type FileEntry } from './simple.ts'

/** A project's files as a member lists them (url: where the member serves it; the virtual
 *  repository points it at itself). */
export interface MemberProject {
  /** The project name as the member spells it. */
  name: string
  files: FileEntry[]
}

export interface PypiMemberSource {
  /** The project's files (canonical name), or undefined if the member has no such project. */
  projectFiles (project: string, signal?: AbortSignal): Promise<MemberProject | undefined>
  /** Sends a distribution or its `.metadata` file; false if the member has no such file. */
  sendFile (koa: Context, project: string, filename: string): Promise<boolean>
  /** Whether the member holds the project itself (asked of local members only, for the
   *  dependency-confusion rule). */
  hasProject (project: string): boolean
  /** The projects for the /simple/ list (a remote member: what it has cached, or its upstream's). */
  projectNames (signal?: AbortSignal): Promise<string[]>
}

/** The PyPI remote hooks set this (protocols/pypi/remote.ts, when built) to give virtual
 *  repositories remote members; until then type: remote is refused for pypi at start. */
export const remotePypiMember: { source?: (fc: FormatContext) => PypiMemberSource } = {}

export function pypiMemberSource (fc: FormatContext): PypiMemberSource {
  if (fc.remote == null) return localPypiMember(fc)
  if (remotePypiMember.source == null) throw new Error(`repository ${fc.repo.name}: PyPI remote repositories cannot be virtual members yet`)
  return remotePypiMember.source(fc)
}

export function localPypiMember (fc: FormatContext): PypiMemberSource {
  const hasProject = (project: string) => fc.artifacts.versions(fc.repo.name, project).length > 0
  return {
    hasProject,
    async projectFiles (project) {
      const files = localFileEntries(fc, project, '')
      return files.length === 0 ? undefined : { name: displayName(fc, project) ?? project, files }
    },
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
