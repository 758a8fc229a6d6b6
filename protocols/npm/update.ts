// npm's read-modify-write flows on a packument (CouchDB heritage):
//   deprecate:          GET /<name>?write=true, PUT /<name> with changed `deprecated` fields
//   unpublish version:  PUT /<name>/-rev/<rev> without it, then DELETE /<name>/-/<file>/-rev/<rev>
//   unpublish package:  DELETE /<name>/-rev/<rev>
// https://github.com/npm/cli/blob/latest/workspaces/libnpmpublish/lib/unpublish.js
// Versions themselves are immutable: only `deprecated`, dist-tags and removal can change.
import semver from 'semver'
import { badRequest, conflict, notFound } from '../../store/errors.ts'
import type { FormatContext } from '../format.ts'
import { isPlainObject } from './body.ts'
import { versionFromFilename } from './names.ts'
import { loadPackage, type PackageState } from './packument.ts'
import { assertTagName } from './tags.ts'

function checkRev (p: PackageState, rev: string | undefined): void {
  if (rev != null && rev !== p.rev) {
    throw conflict(`document update conflict: ${p.name} is at revision ${p.rev}, not ${rev}; fetch it again and retry`)
  }
}

/** `deprecated: ""` is how npm undeprecates; absent and "" both mean not deprecated. */
function deprecationOf (doc: unknown, version: string): string | undefined {
  const value = isPlainObject(doc) ? doc.deprecated : undefined
  if (value === undefined || value === null || value === '') return undefined
  if (typeof value !== 'string') throw badRequest(`versions["${version}"].deprecated must be a string`)
  return value
}

function desiredTags (body: Record<string, unknown>, remaining: Set<string>): Record<string, string> {
  const tags = body['dist-tags']
  if (!isPlainObject(tags)) throw badRequest('dist-tags must be an object')
  for (const [tag, version] of Object.entries(tags)) {
    assertTagName(tag)
    if (typeof version !== 'string' || !remaining.has(version)) throw badRequest(`dist-tag ${tag} points at ${JSON.stringify(version)}, which is not a version of the package`)
  }
  return tags as Record<string, string>
}

/** PUT /<name> or /<name>/-rev/<rev> without attachments. Without a rev (npm deprecate) only
 *  deprecations apply: a stale document must never unpublish versions or move tags. */
export function updatePackument (fc: FormatContext, name: string, body: Record<string, unknown>, rev: string | undefined): void {
  const repo = fc.repo.name
  if (fc.artifacts.versions(repo, name).length === 0) throw badRequest(`${name} has no versions yet: publish one with its tarball in _attachments`)
  const p = loadPackage(fc, name)
  checkRev(p, rev)
  if (body.name !== undefined && body.name !== name) throw badRequest(`name in the body (${JSON.stringify(body.name)}) does not match the URL (${name})`)
  const sent = body.versions
  if (!isPlainObject(sent)) throw badRequest('versions must be an object')
  const added = Object.keys(sent).filter(v => !p.versions.some(a => a.version === v))
  if (added.length > 0) throw badRequest(`new versions (${added.slice(0, 5).join(', ')}) must be published with their tarball in _attachments`)

  const removed = rev == null ? [] : p.versions.filter(a => !(a.version in sent))
  const remaining = new Set(p.versions.filter(a => !removed.includes(a)).map(a => a.version))
  const deprecations = p.versions
    .filter(a => a.version in sent)
    .map(a => ({ a, want: deprecationOf(sent[a.version], a.version) }))
    .filter(({ a, want }) => want !== deprecationOf(a.metadata, a.version))
  const tags = rev != null && body['dist-tags'] !== undefined ? desiredTags(body, remaining) : undefined

  fc.artifacts.atomically(() => {
    for (const a of removed) fc.artifacts.remove(repo, name, a.version)
    for (const { a, want } of deprecations) {
      const { deprecated: _old, ...rest } = a.metadata
      fc.artifacts.updateMetadata(repo, name, a.version, want == null ? rest : { ...rest, deprecated: want })
    }
    if (tags != null) {
      const current = fc.artifacts.tags(repo, name)
      for (const tag of Object.keys(current)) if (!(tag in tags)) fc.artifacts.removeTag(repo, name, tag)
      for (const [tag, version] of Object.entries(tags)) if (current[tag] !== version) fc.artifacts.setTag(repo, name, tag, version)
    }
    if (remaining.size > 0 && fc.artifacts.tags(repo, name).latest == null) {
      fc.artifacts.setTag(repo, name, 'latest', [...remaining].sort(semver.compare).pop() as string)
    }
  })
  if (removed.length > 0) fc.log.info({ name, versions: removed.map(a => a.version) }, 'unpublished')
  if (deprecations.length > 0) fc.log.info({ name, versions: deprecations.map(d => d.a.version) }, 'deprecation changed')
}

/** DELETE /<name>/-rev/<rev>: the whole package. Its versions stay tombstoned. */
export function removePackage (fc: FormatContext, name: string, rev: string): void {
  checkRev(loadPackage(fc, name), rev)
  const count = fc.artifacts.removePackage(fc.repo.name, name)
  fc.log.info({ name, versions: count }, 'unpublished package')
}

/** DELETE /<name>/-/<file>/-rev/<rev>: npm's last step of unpublishing one version. By then the
 *  PUT before it has normally removed the version already, which is success. */
export function removeTarball (fc: FormatContext, name: string, filename: string, rev: string): void {
  const version = versionFromFilename(name, filename)
  if (version == null) throw notFound(`${filename} is not a tarball of ${name}`)
  if (fc.artifacts.get(fc.repo.name, name, version) != null) {
    checkRev(loadPackage(fc, name), rev)
    fc.artifacts.remove(fc.repo.name, name, version)
    fc.log.info({ name, version }, 'unpublished')
    return
  }
  if (!fc.artifacts.isTombstoned(fc.repo.name, name, version)) throw notFound(`${filename} not found`)
}
