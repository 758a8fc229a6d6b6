// An npm lockfile entry through the node's npm repository (remote or virtual): the packument, then
// the tarball its dist names, as `npm install` asks for them. The node fetches and caches what it
// lacks (verified against the upstream's integrity); the tarball's bytes are then checked against
// the lockfile's own integrity, which is what `npm ci` will check on the far side.
import { packumentPath } from '../../../protocols/npm/remote-packument.ts'
import { hashBody, nodeFailure, nodeGet, type NodeAt } from './node-http.ts'
import type { LockfileProblem, NpmEntry, ResolvedArtifact } from './types.ts'

/** The algorithms of an SRI string this checks, with their expected digests. */
function sriHashes (integrity: string): Array<{ algorithm: string, digest: Buffer }> {
  return integrity.split(/\s+/).flatMap(part => {
    const m = /^(sha512|sha384|sha256|sha1)-([A-Za-z0-9+/=]+)(\?.*)?$/.exec(part)
    return m == null ? [] : [{ algorithm: m[1], digest: Buffer.from(m[2], 'base64') }]
  })
}

export async function resolveNpm (node: NodeAt, repo: string, e: NpmEntry, signal?: AbortSignal): Promise<ResolvedArtifact | LockfileProblem> {
  const what = `${e.where} (${e.name}@${e.version})`
  const res = await nodeGet(node, `/${encodeURIComponent(repo)}/${packumentPath(e.name)}`, { accept: 'application/json' }, signal)
  if (res.status === 404) { await res.body?.cancel(); return { where: e.where, problem: 'missing', message: `${what}: ${repo} and its upstream have no package ${e.name}` } }
  if (res.status !== 200) throw await nodeFailure(res, `${what}: the packument of ${e.name}`)
  const doc = await res.json() as { versions?: Record<string, { version?: string, dist?: { tarball?: string, integrity?: string } }> }
  const version = doc.versions?.[e.version]
  if (version?.dist?.tarball == null) return { where: e.where, problem: 'missing', message: `${what}: ${repo} and its upstream have no version ${e.version} of ${e.name}` }
  const pinned = e.integrity != null ? sriHashes(e.integrity) : []
  if (e.integrity != null && pinned.length === 0) return { where: e.where, problem: 'integrity', message: `${what}: the lockfile's integrity "${e.integrity}" names no sha512, sha384, sha256 or sha1 hash` }
  const tgz = await nodeGet(node, version.dist.tarball, {}, signal)
  if (tgz.status === 404) { await tgz.body?.cancel(); return { where: e.where, problem: 'missing', message: `${what}: the tarball is not in ${repo} or its upstream` } }
  if (tgz.status !== 200) throw await nodeFailure(tgz, `${what}: the tarball`)
  const got = await hashBody(tgz, [...new Set(pinned.map(p => p.algorithm))])
  // npm checks the strongest hash an SRI string lists; here every listed hash must hold.
  const wrong = pinned.find(p => !got[p.algorithm].equals(p.digest))
  if (wrong != null) {
    return {
      where: e.where,
      problem: 'integrity',
      message: `${what}: integrity mismatch: the lockfile pins ${wrong.algorithm}-${wrong.digest.toString('base64')}, the tarball served is ${wrong.algorithm}-${got[wrong.algorithm].toString('base64')}`
    }
  }
  return { name: e.name, version: version.version ?? e.version }
}
