// What one member of an npm virtual repository offers it: a package's full packument and its
// tarballs. Local members answer from the index; a remote member answers through its caching
// proxy. This is the seam the npm remote work plugs into: `remoteNpmMember` below.
import type { Context } from 'koa'
import type { FormatContext } from '../format.ts'
import { sendBlob } from '../http/blob-response.ts'
import { loadPackage, renderFull } from './packument.ts'
import { notFound } from '../../store/errors.ts'

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

/** The npm remote hooks set this (protocols/npm/remote.ts, when built) to give virtual
 *  repositories remote members; until then a virtual repository with an npm remote member
 *  cannot be configured (type: remote is refused for npm at start). */
export const remoteNpmMember: { source?: (fc: FormatContext) => NpmMemberSource } = {}

export function npmMemberSource (fc: FormatContext): NpmMemberSource {
  if (fc.remote == null) return localNpmMember(fc)
  if (remoteNpmMember.source == null) throw new Error(`repository ${fc.repo.name}: npm remote repositories cannot be virtual members yet`)
  return remoteNpmMember.source(fc)
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
