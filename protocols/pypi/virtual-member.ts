// What one member of a PyPI virtual repository offers it: a project's page (the format's model,
// ./simple-render.ts) and the files' bytes. Local members answer from the index; a remote member
// answers through its caching proxy (remote-project.ts, remote.ts).
import type { Context } from 'koa'
import type { FormatContext } from '../format.ts'
import { sendBlob } from '../http/blob-response.ts'
import { METADATA_SUFFIX } from './release.ts'
import { localProject, projectNames } from './simple.ts'
import type { IndexProject } from './simple-render.ts'
import { RegistryError } from '../../store/errors.ts'
import type { RemoteRepository } from '../shared/remote/remote-repository.ts'
import { remoteProjectFiles, remoteProjectNames } from './remote-project.ts'
import { serveRemoteFile } from './remote.ts'

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

export function pypiMemberSource (fc: FormatContext): PypiMemberSource {
  return fc.remote == null ? localPypiMember(fc) : remotePypiMember(fc, fc.remote)
}

/** A remote member: pages through its caching proxy (TTL, stale-if-error), files from its cache
 *  or its upstream. `hasProject` is never asked of it (the confusion rule counts local members). */
export function remotePypiMember (fc: FormatContext, remote: RemoteRepository): PypiMemberSource {
  const missing = (err: unknown): boolean => err instanceof RegistryError && err.code === 'NotFound'
  return {
    hasProject: () => false,
    async projectFiles (project, baseUrl) {
      try { return (await remoteProjectFiles(fc, baseUrl, project)).project } catch (err) { if (missing(err)) return undefined; throw err }
    },
    async sendFile (koa, project, filename) {
      try { await serveRemoteFile(koa, fc, remote, project, filename); return true } catch (err) { if (missing(err)) return false; throw err }
    },
    async projectNames () { return (await remoteProjectNames(fc)).names }
  }
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
