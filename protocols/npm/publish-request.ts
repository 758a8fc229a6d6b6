// Validation of an npm publish body (PUT /<name>): one version document and its tarball, base64
// in `_attachments`, as libnpmpublish builds it. Everything is checked before a byte is stored.
// https://github.com/npm/cli/blob/latest/workspaces/libnpmpublish/lib/publish.js (buildMetadata)
import semver from 'semver'
import { badRequest } from '../../store/errors.ts'
import type { DigestName } from '../../store/types.ts'
import { isPlainObject } from './body.ts'
import { assertPackageName, tarballFilename } from './names.ts'
import { assertTagName } from './tags.ts'

export interface PublishRequest {
  name: string
  version: string
  /** The version document as the client sent it. */
  manifest: Record<string, unknown>
  tarball: Buffer
  /** Digests (hex) the client declared for the tarball; the store verifies them. */
  expect: Partial<Record<DigestName, string>>
  /** dist-tags to point at this version. */
  tags: string[]
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/
const SRI_ALGORITHMS: Record<string, { digest: DigestName, bytes: number }> = {
  sha512: { digest: 'sha512', bytes: 64 },
  sha256: { digest: 'sha256', bytes: 32 },
  sha1: { digest: 'sha1', bytes: 20 }
}

/** `dist.integrity` is Subresource Integrity (`sha512-<base64>`, possibly several, space-separated). */
export function integrityDigests (integrity: unknown): Partial<Record<DigestName, string>> {
  if (integrity === undefined) return {}
  if (typeof integrity !== 'string') throw badRequest('dist.integrity must be a string')
  const out: Partial<Record<DigestName, string>> = {}
  for (const token of integrity.trim().split(/\s+/)) {
    const m = /^(sha\d+)-([A-Za-z0-9+/]+={0,2})(\?.*)?$/.exec(token)
    const algo = m == null ? undefined : SRI_ALGORITHMS[m[1]]
    if (m == null || algo == null) continue // unknown algorithms are skipped, as ssri does
    const raw = Buffer.from(m[2], 'base64')
    if (raw.length !== algo.bytes) throw badRequest(`dist.integrity ${m[1]} digest has ${raw.length} bytes, expected ${algo.bytes}`)
    out[algo.digest] = raw.toString('hex')
  }
  if (Object.keys(out).length === 0) throw badRequest(`dist.integrity "${integrity.slice(0, 100)}" has no sha512, sha256 or sha1 digest`)
  return out
}

function declaredDigests (dist: Record<string, unknown>): Partial<Record<DigestName, string>> {
  const expect = integrityDigests(dist.integrity)
  if (dist.shasum !== undefined) {
    if (typeof dist.shasum !== 'string' || !/^[0-9a-fA-F]{40}$/.test(dist.shasum)) throw badRequest('dist.shasum must be 40 hex characters')
    const sha1 = dist.shasum.toLowerCase()
    if (expect.sha1 != null && expect.sha1 !== sha1) throw badRequest('dist.shasum and the sha1 in dist.integrity disagree')
    expect.sha1 = sha1
  }
  if (expect.sha1 == null && expect.sha512 == null && expect.sha256 == null) {
    throw badRequest('the version document needs dist.integrity or dist.shasum')
  }
  return expect
}

function attachedTarball (body: Record<string, unknown>, name: string, version: string): Buffer {
  const attachments = body._attachments
  if (!isPlainObject(attachments)) throw badRequest('_attachments must be an object holding the tarball')
  // libnpmpublish names the attachment after the full (scoped) name.
  const expected = `${name}-${version}.tgz`
  const keys = Object.keys(attachments)
  if (keys.length !== 1 || (keys[0] !== expected && keys[0] !== tarballFilename(name, version))) {
    throw badRequest(`_attachments must hold exactly one file, "${expected}"; got ${JSON.stringify(keys.slice(0, 5))}`)
  }
  const att = attachments[keys[0]]
  if (!isPlainObject(att) || typeof att.data !== 'string') throw badRequest(`attachment ${keys[0]} needs base64 "data"`)
  if (att.data.length % 4 !== 0 || !BASE64.test(att.data)) throw badRequest(`attachment ${keys[0]} data is not valid base64`)
  const bytes = Buffer.from(att.data, 'base64')
  if (bytes.length === 0) throw badRequest(`attachment ${keys[0]} is empty`)
  if (att.length !== undefined && att.length !== bytes.length) {
    throw badRequest(`attachment ${keys[0]} declares length ${String(att.length)} but holds ${bytes.length} bytes`)
  }
  return bytes
}

function publishedTags (body: Record<string, unknown>, version: string): string[] {
  const distTags = body['dist-tags']
  if (distTags === undefined) return ['latest']
  if (!isPlainObject(distTags)) throw badRequest('dist-tags must be an object')
  const tags = Object.entries(distTags)
  for (const [tag, v] of tags) {
    assertTagName(tag)
    if (v !== version) throw badRequest(`dist-tag ${tag} must point at the published version ${version}, not ${JSON.stringify(v)}`)
  }
  return tags.length === 0 ? ['latest'] : tags.map(([tag]) => tag)
}

/** Checks the body of PUT /<urlName> and extracts what a publish needs. */
export function parsePublishRequest (urlName: string, body: Record<string, unknown>): PublishRequest {
  if (body.name !== urlName) throw badRequest(`package name in the body (${JSON.stringify(body.name)}) does not match the URL (${urlName})`)
  assertPackageName(urlName)
  if (!isPlainObject(body.versions)) throw badRequest('versions must be an object holding the published version')
  const versions = Object.keys(body.versions)
  if (versions.length !== 1) throw badRequest(`a publish carries exactly one version; got ${versions.length}`)
  const [version] = versions
  if (semver.valid(version) !== version) throw badRequest(`invalid version "${version}": must be a valid semver version such as 1.2.3`)
  const manifest = body.versions[version]
  if (!isPlainObject(manifest)) throw badRequest(`versions["${version}"] must be an object`)
  if (manifest.name !== urlName) throw badRequest(`versions["${version}"].name (${JSON.stringify(manifest.name)}) does not match ${urlName}`)
  if (manifest.version !== version) throw badRequest(`versions["${version}"].version (${JSON.stringify(manifest.version)}) does not match ${version}`)
  if (!isPlainObject(manifest.dist)) throw badRequest(`versions["${version}"].dist must be an object`)
  const expect = declaredDigests(manifest.dist)
  const tarball = attachedTarball(body, urlName, version)
  return { name: urlName, version, manifest, tarball, expect, tags: publishedTags(body, version) }
}
