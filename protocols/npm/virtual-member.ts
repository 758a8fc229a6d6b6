// What one member of an npm virtual repository offers it: a package's full packument and its
// tarballs. Local members answer from the index; a remote member answers through its caching
// proxy (remote-packument.ts, remote-tarball.ts).
import type { Context } from 'koa'
import type { FormatContext } from '../format.ts'
import { sendBlob } from '../http/blob-response.ts'
import { loadPackage, renderFull } from './packument.ts'
import { notFound, RegistryError } from '../../store/errors.ts'
import type { RemoteRepository } from '../shared/remote/remote-repository.ts'
import { remotePackument } from './remote-packument.ts'
import { fetchTarball, serveCachedTarball } from './remote-tarball.ts'

/** A full packument as the member would serve it (`versions`, `dist-tags`, `time`, package
 *  fields). Tarball URLs in it may point anywhere: the virtual repository rewrites them. */
export type MemberPackument = Record<string, unknown> & {
  versions: Record<string, Record<string, unknown>>
  'dist-tags'?: Record<string, string>
  time?: Record<string, string>
}

export interface NpmMemberSource {
  /** The package's packument, or undefined if the member has no such package. */
  packument (name: string, signal?: AbortSignal): Promise<MemberPackument | undefined>
  /** Sends the tarball to the client; false if the member has no such file. */
  sendTarball (koa: Context, name: string, filename: string): Promise<boolean>
  /** Whether the member holds the package itself (a local member's published rows): the
   *  dependency-confusion rule asks this of local members only. */
  hasPackage (name: string): boolean
}

export function npmMemberSource (fc: FormatContext): NpmMemberSource {
  return fc.remote == null ? localNpmMember(fc) : remoteNpmMember(fc, fc.remote)
}

/** A remote member: its packument through the caching proxy (TTL, stale-if-error, cached
 *  versions pinned), tarballs from its cache or its upstream. `hasPackage` is never asked of it
 *  (the confusion rule counts local members). */
export function remoteNpmMember (fc: FormatContext, remote: RemoteRepository): NpmMemberSource {
  const missing = (err: unknown): boolean => err instanceof RegistryError && err.code === 'NotFound'
  return {
    hasPackage: () => false,
    async packument (name) {
      try { return (await remotePackument(fc, remote, name, '')).doc as MemberPackument } catch (err) { if (missing(err)) return undefined; throw err }
    },
    async sendTarball (koa, name, filename) {
      if (await serveCachedTarball(koa, fc, name, filename)) return true
      try { await fetchTarball(koa, fc, remote, name, filename); return true } catch (err) { if (missing(err)) return false; throw err }
    }
  }
}

export function localNpmMember (fc: FormatContext): NpmMemberSource {
  const hasPackage = (name: string) => fc.artifacts.versions(fc.repo.name, name).length > 0
  return {
    hasPackage,
    async packument (name) {
      if (!hasPackage(name)) return undefined
      // The base URL is irrelevant: the virtual repository points tarballs at itself.
      return renderFull(loadPackage(fc, name), '') as MemberPackument
    },
    async sendTarball (koa, name, filename) {
      const file = fc.artifacts.fileByName(fc.repo.name, name, filename)
      const blob = file == null ? undefined : await fc.store.locate(file.cid)
      if (blob == null) return false
      sendBlob(koa, fc.store, blob, { contentType: 'application/octet-stream' })
      return true
    }
  }
}

export const tarballNotFound = (repo: string, name: string, filename: string) => notFound(`${name}/-/${filename} not found in ${repo}`)
