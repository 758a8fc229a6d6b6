// Package names and the URL grammar of the npm registry API.
// Scoped names arrive encoded (`@scope%2fname`, what npm sends) or plain (`@scope/name`, what
// tarball URLs and some clients use); both resolve to the same name.
import semver from 'semver'
import validateName from 'validate-npm-package-name'
import { badRequest, notFound } from '../../store/errors.ts'
import type { ArtifactCheck } from '../format.ts'
import { safePathSegments } from '../http/paths.ts'
// A cycle (tags.ts uses splitPackageName): both only call each other's functions at run time.
import { assertTagName } from './tags.ts'

/** The longest name npm ever accepted (validate-npm-package-name warns above 214). */
const MAX_NAME = 214

export type PackagePath =
  | { kind: 'packument', name: string }
  | { kind: 'packument-rev', name: string, rev: string }
  | { kind: 'version', name: string, spec: string }
  | { kind: 'tarball', name: string, filename: string }
  | { kind: 'tarball-rev', name: string, filename: string, rev: string }

function decodeSegment (raw: string): string {
  try { return decodeURIComponent(raw) } catch { throw badRequest(`malformed percent-encoding in "${raw}"`) }
}

/** Throws BadRequest unless `name` is a package name the npm registry hosts. Only npm's hard
 *  errors count: its warnings are for *new* names on the public registry (uppercase, core module
 *  names), and a private registry must accept real packages such as `punycode` or `JSONStream`. */
export function assertPackageName (name: unknown): asserts name is string {
  if (typeof name !== 'string') throw badRequest('package name must be a string')
  const result = validateName(name)
  const problems = [...(result.errors ?? [])]
  // Beyond npm's rules: every part of the name must be usable as a path segment.
  if (name.length > MAX_NAME) problems.push(`name cannot be longer than ${MAX_NAME} characters`)
  const parts = name.startsWith('@') ? name.slice(1).split('/') : [name]
  if (parts.some(p => p === '' || p.startsWith('.'))) problems.push('name parts cannot be empty or start with a period')
  // eslint-disable-next-line no-control-regex
  if (/[\\\u0000-\u001f\u007f]/.test(name)) problems.push('name cannot contain backslashes or control characters')
  if (problems.length > 0) throw badRequest(`invalid package name "${name}": ${[...new Set(problems)].join('; ')}`)
}

/** `@scope/name` → `name`; unscoped names are returned unchanged. */
export function unscopedName (name: string): string {
  return name.startsWith('@') ? name.slice(name.indexOf('/') + 1) : name
}

/** The tarball's file name as it appears in URLs and in the index: `name-1.2.3.tgz`. */
export function tarballFilename (name: string, version: string): string {
  return `${unscopedName(name)}-${version}.tgz`
}

/** The version a tarball file name stands for, or undefined if it is not this package's. */
export function versionFromFilename (name: string, filename: string): string | undefined {
  const prefix = unscopedName(name) + '-'
  if (!filename.startsWith(prefix) || !filename.endsWith('.tgz')) return undefined
  return filename.slice(prefix.length, -'.tgz'.length)
}

/** Splits a raw (percent-encoded) path that starts with a package name into the name and the
 *  remaining decoded segments. */
export function splitPackageName (rawPath: string): { name: string, rest: string[] } {
  const parts = rawPath.split('/')
  const first = decodeSegment(parts[0])
  let name = first
  let used = 1
  if (first.startsWith('@') && !first.includes('/')) {
    if (parts.length < 2 || parts[1] === '') throw badRequest(`scoped package name "${first}" has no package part`)
    name = `${first}/${decodeSegment(parts[1])}`
    used = 2
  }
  assertPackageName(name)
  const rest = parts.length > used ? safePathSegments(parts.slice(used).join('/')) : []
  return { name, rest }
}

/** Parses the part of a URL after `/<repo>/` that addresses a package. */
export function parsePackagePath (rawPath: string): PackagePath {
  const { name, rest } = splitPackageName(rawPath)
  const [a, b, c, d] = rest
  switch (rest.length) {
    case 0: return { kind: 'packument', name }
    case 1:
      if (a !== '-' && a !== '-rev') return { kind: 'version', name, spec: a }
      break
    case 2:
      if (a === '-rev') return { kind: 'packument-rev', name, rev: b }
      if (a === '-') return { kind: 'tarball', name, filename: b }
      break
    case 4:
      if (a === '-' && c === '-rev') return { kind: 'tarball-rev', name, filename: b, rev: d }
      break
  }
  throw notFound(`no such resource: /${rawPath}`)
}

/** The format's check of a replicated change (FormatHandler.validateArtifact): the name, version,
 *  tarball filename and dist-tag rules a local publish goes through. */
export function validateNpmArtifact (a: ArtifactCheck): void {
  assertPackageName(a.name)
  // An untag names no version (store/artifacts.ts removeTag).
  if (!(a.kind === 'untag' && a.version === '') && semver.valid(a.version) !== a.version) throw badRequest(`invalid version "${a.version}": must be a valid semver version such as 1.2.3`)
  const tarball = tarballFilename(a.name, a.version)
  for (const f of a.files) {
    if (f.filename !== tarball) throw badRequest(`file "${f.filename}" of ${a.name}@${a.version} must be named ${tarball}`)
  }
  if (a.tag != null) assertTagName(a.tag)
}
