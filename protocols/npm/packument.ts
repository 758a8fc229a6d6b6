// Packuments rendered from the index: every version row holds its version document as metadata;
// package-level fields come from the `latest` version, times from the rows.
// Formats: https://github.com/npm/registry/blob/main/docs/responses/package-metadata.md
import { createHash } from 'node:crypto'
import semver from 'semver'
import { notFound } from '../../store/errors.ts'
import type { Artifact } from '../../store/types.ts'
import type { FormatContext } from '../format.ts'
import { tarballFilename } from './names.ts'

export const ABBREVIATED_TYPE = 'application/vnd.npm.install-v1+json'

/** The fields an installer needs; everything else is left out of abbreviated packuments. */
export const INSTALL_FIELDS = [
  'name', 'version', 'deprecated', 'dependencies', 'optionalDependencies', 'devDependencies',
  'bundleDependencies', 'bundledDependencies', 'peerDependencies', 'peerDependenciesMeta',
  'acceptDependencies', 'bin', 'directories', 'dist', 'engines', 'cpu', 'os', 'libc', 'funding',
  'license', '_hasShrinkwrap', 'hasInstallScript'
]

/** Package-level fields npm shows from the latest version. */
const PACKAGE_FIELDS = ['description', 'keywords', 'license', 'homepage', 'repository', 'bugs', 'author', 'contributors']

export interface PackageState {
  name: string
  /** Sorted by semver, oldest first. */
  versions: Artifact[]
  tags: Record<string, string>
  rev: string
}

export interface Person { name: string, email?: string }

/** Loads a package's rows; NotFound if it has no versions. */
export function loadPackage (fc: FormatContext, name: string): PackageState {
  const versions = fc.artifacts.versions(fc.repo.name, name).sort((a, b) => semver.compare(a.version, b.version))
  if (versions.length === 0) throw notFound(`package ${name} not found`)
  const tags = fc.artifacts.tags(fc.repo.name, name)
  return { name, versions, tags, rev: packageRev(versions, tags) }
}

/** A CouchDB-style `_rev`: changes whenever a version, its metadata or a tag changes, so the
 *  read-modify-write flows of npm (deprecate, unpublish) can detect a concurrent change. */
export function packageRev (versions: Artifact[], tags: Record<string, string>): string {
  const h = createHash('sha256')
  for (const a of versions) h.update(`${a.version}\0${a.updatedAt}\0${JSON.stringify(a.metadata)}\0`)
  h.update(JSON.stringify(tags))
  return `${versions.length}-${h.digest('hex').slice(0, 32)}`
}

export function tarballUrl (baseUrl: string, name: string, version: string): string {
  return `${baseUrl}/${name}/-/${tarballFilename(name, version)}`
}

/** A version document as served: the stored document with its absolute tarball URL. */
export function renderVersion (a: Artifact, baseUrl: string): Record<string, unknown> {
  const { readme: _readme, readmeFilename: _readmeFilename, ...doc } = a.metadata
  return { ...doc, dist: { ...(doc.dist as object), tarball: tarballUrl(baseUrl, a.name, a.version) } }
}

const iso = (ms: number) => new Date(ms).toISOString()

function latestOf (p: PackageState): Artifact {
  return p.versions.find(a => a.version === p.tags.latest) ?? p.versions[p.versions.length - 1]
}

/** Everyone who published a version, in order of first publish. */
export function packageMaintainers (p: PackageState): Person[] {
  const seen = new Map<string, Person>()
  for (const a of [...p.versions].sort((x, y) => x.createdAt - y.createdAt)) {
    const user = a.metadata._npmUser as Person | undefined
    if (user?.name != null && !seen.has(user.name)) seen.set(user.name, user)
  }
  return [...seen.values()]
}

export function modifiedAt (p: PackageState): number {
  return Math.max(...p.versions.map(a => a.updatedAt))
}

export function renderFull (p: PackageState, baseUrl: string): Record<string, unknown> {
  const latest = latestOf(p).metadata
  const time: Record<string, string> = {
    created: iso(Math.min(...p.versions.map(a => a.createdAt))),
    modified: iso(modifiedAt(p))
  }
  for (const a of p.versions) time[a.version] = iso(a.createdAt)
  const doc: Record<string, unknown> = {
    _id: p.name,
    _rev: p.rev,
    name: p.name,
    'dist-tags': p.tags,
    versions: Object.fromEntries(p.versions.map(a => [a.version, renderVersion(a, baseUrl)])),
    time,
    maintainers: packageMaintainers(p)
  }
  for (const field of PACKAGE_FIELDS) if (latest[field] !== undefined) doc[field] = latest[field]
  doc.readme = typeof latest.readme === 'string' ? latest.readme : ''
  if (typeof latest.readmeFilename === 'string') doc.readmeFilename = latest.readmeFilename
  return doc
}

export function renderAbbreviated (p: PackageState, baseUrl: string): Record<string, unknown> {
  const versions: Record<string, unknown> = {}
  for (const a of p.versions) {
    const full = renderVersion(a, baseUrl)
    versions[a.version] = Object.fromEntries(INSTALL_FIELDS.filter(f => full[f] !== undefined).map(f => [f, full[f]]))
  }
  return { name: p.name, modified: iso(modifiedAt(p)), 'dist-tags': p.tags, versions }
}

/** The version a tag, exact version or range names (highest match), or undefined. */
export function resolveSpec (p: PackageState, spec: string): Artifact | undefined {
  const version = p.tags[spec] ?? (semver.valid(spec) != null
    ? semver.clean(spec)
    : semver.maxSatisfying(p.versions.map(a => a.version), spec))
  return version == null ? undefined : p.versions.find(a => a.version === version)
}
