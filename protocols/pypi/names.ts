// Project names, versions and distribution filenames as the Python packaging specs define them.
import { explain } from '@renovatebot/pep440'
import { badRequest } from '../../store/errors.ts'
import type { ArtifactCheck } from '../format.ts'
// Type and constant only: release.ts imports a type from here, no cycle at run time.
import { METADATA_SUFFIX } from './release.ts'

// https://packaging.python.org/en/latest/specifications/name-normalization/
const VALID_NAME = /^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$/i

/** PEP 503: lowercase, every run of "-", "_" and "." becomes one "-". */
export const canonicalName = (name: string): string => name.toLowerCase().replace(/[-_.]+/g, '-')

export function isValidProjectName (name: string): boolean {
  return name.length <= 200 && VALID_NAME.test(name)
}

/** The PEP 440 normal form of a version ("1.0-RC1" → "1.0rc1"), or undefined if it is not one. */
export function normalVersion (version: string): string | undefined {
  if (version.length > 128) return undefined
  const v = explain(version)
  if (v == null) return undefined
  // explain() normalises the local part correctly; the library's clean() joins it with commas.
  return v.local == null ? v.public : `${v.public}+${v.local}`
}

export type PackageType = 'bdist_wheel' | 'sdist'

export interface DistFilename {
  packagetype: PackageType
  /** Name and version exactly as they appear in the filename. */
  name: string
  version: string
}

// The filename ends up in URLs and on disk in clients' caches: nothing but what the specs produce.
const SAFE_FILENAME = /^[A-Za-z0-9][A-Za-z0-9._+!-]*$/
const SDIST_SUFFIXES = ['.tar.gz', '.zip']

/** Splits a wheel (PEP 427: name-version(-build)?-python-abi-platform.whl) or sdist
 *  (name-version.tar.gz; .zip for old sdists) filename, checking it names `project` at `version`
 *  (compared after normalisation: wheels write "my_pkg", legacy sdists "my-pkg" or "My.Pkg"). */
export function parseDistFilename (filename: string, project: string, version: string): DistFilename {
  if (filename.length > 255 || !SAFE_FILENAME.test(filename)) {
    throw badRequest(`invalid distribution filename "${filename}"`)
  }
  const wanted = `${project}-${version}`
  if (filename.endsWith('.whl')) {
    const parts = filename.slice(0, -'.whl'.length).split('-')
    if (parts.length !== 5 && parts.length !== 6) {
      throw badRequest(`invalid wheel filename "${filename}": expected name-version(-build)?-python-abi-platform.whl`)
    }
    if (parts.length === 6 && !/^\d/.test(parts[2])) {
      throw badRequest(`invalid wheel filename "${filename}": the build tag must start with a digit`)
    }
    const [name, ver] = parts
    if (canonicalName(name) !== canonicalName(project) || normalVersion(ver) !== normalVersion(version)) {
      throw badRequest(`wheel filename "${filename}" does not match the project and version ${wanted}`)
    }
    return { packagetype: 'bdist_wheel', name, version: ver }
  }
  const suffix = SDIST_SUFFIXES.find(s => filename.endsWith(s))
  if (suffix == null) {
    throw badRequest(`invalid distribution filename "${filename}": only wheels (.whl) and sdists (.tar.gz, .zip) are accepted`)
  }
  // A legacy sdist name may itself contain "-" (my-pkg-1.0.tar.gz): try every split point.
  const stem = filename.slice(0, -suffix.length)
  for (let i = stem.indexOf('-'); i > 0; i = stem.indexOf('-', i + 1)) {
    const name = stem.slice(0, i)
    const ver = stem.slice(i + 1)
    if (canonicalName(name) === canonicalName(project) && normalVersion(ver) === normalVersion(version)) {
      return { packagetype: 'sdist', name, version: ver }
    }
  }
  throw badRequest(`sdist filename "${filename}" does not match the project and version ${wanted}`)
}

/** The format's check of a replicated change (FormatHandler.validateArtifact): a normalized
 *  project name, a PEP 440 version in normal form and distribution filenames of that release,
 *  as an upload stores them. */
export function validatePypiArtifact (a: ArtifactCheck): void {
  if (!isValidProjectName(a.name) || canonicalName(a.name) !== a.name) {
    throw badRequest(`invalid project name "${a.name}" (expected a normalized PEP 503 name)`)
  }
  if (normalVersion(a.version) !== a.version) throw badRequest(`invalid version "${a.version}" (expected a PEP 440 version in normal form)`)
  for (const f of a.files) {
    const dist = f.filename.endsWith(METADATA_SUFFIX) ? f.filename.slice(0, -METADATA_SUFFIX.length) : f.filename
    parseDistFilename(dist, a.name, a.version)
  }
  if (a.tag != null) throw badRequest('PyPI projects have no tags')
}

/** The name and version a distribution filename of `project` carries (a wheel's second field; for
 *  an sdist, whatever follows the split point where the name matches), or undefined if the
 *  filename is not a distribution of that project. Checked as parseDistFilename does. */
export function splitDistFilename (filename: string, project: string): DistFilename | undefined {
  const stem = filename.endsWith('.whl') ? filename.slice(0, -'.whl'.length) : SDIST_SUFFIXES.reduce((s, x) => s.endsWith(x) ? s.slice(0, -x.length) : s, filename)
  const candidates = filename.endsWith('.whl')
    ? [stem.split('-')[1] ?? '']
    : [...stem.matchAll(/-/g)].map(m => stem.slice((m.index as number) + 1))
  for (const version of candidates) {
    try { return parseDistFilename(filename, project, version) } catch { /* another split point */ }
  }
  return undefined
}
