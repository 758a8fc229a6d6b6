// What arrives in OCI URLs: image names, tags, digests, and which endpoint a path addresses.
import type { ArtifactCheck } from '../format.ts'
import { ociError } from './errors.ts'

/** The file of an OCI artifact that holds the manifest's bytes (the others are named by digest). */
export const MANIFEST_FILE = 'manifest.json'

// https://github.com/opencontainers/distribution-spec/blob/main/spec.md#pulling-manifests
const NAME_RE = /^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$/
const TAG_RE = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/
const SHA256_RE = /^sha256:[a-f0-9]{64}$/
// The general digest grammar of the image spec: algorithm ":" encoded.
const DIGEST_RE = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/
/** Clients cap "host:port/name" at 255 characters; leave room for a host. */
const MAX_NAME = 200

export type Route =
  | { kind: 'uploads', name: string }
  | { kind: 'upload', name: string, id: string }
  | { kind: 'blob', name: string, digest: string }
  | { kind: 'manifest', name: string, reference: string }
  | { kind: 'tags', name: string }
  | { kind: 'referrers', name: string, digest: string }

const ROUTES: Array<[RegExp, (m: RegExpExecArray) => Route]> = [
  [/^\/(?:(.*)\/)?blobs\/uploads\/?$/, m => ({ kind: 'uploads', name: m[1] ?? '' })],
  [/^\/(?:(.*)\/)?blobs\/uploads\/([^/]+)$/, m => ({ kind: 'upload', name: m[1] ?? '', id: m[2] })],
  [/^\/(?:(.*)\/)?blobs\/([^/]+)$/, m => ({ kind: 'blob', name: m[1] ?? '', digest: m[2] })],
  [/^\/(?:(.*)\/)?manifests\/([^/]+)$/, m => ({ kind: 'manifest', name: m[1] ?? '', reference: m[2] })],
  [/^\/(?:(.*)\/)?tags\/list$/, m => ({ kind: 'tags', name: m[1] ?? '' })],
  [/^\/(?:(.*)\/)?referrers\/([^/]+)$/, m => ({ kind: 'referrers', name: m[1] ?? '', digest: m[2] })]
]

/** Parses the part of a path after `/v2/<repository>`; undefined if no endpoint matches. The image
 *  name within the repository is checked against the spec's grammar (as `<repository>/<name>`). */
export function parseRoute (repo: string, rest: string): Route | undefined {
  // Clients send the slashes of a name as slashes; an encoded one would let a decoded segment
  // change which endpoint (or which name) the path addresses.
  if (/%2f/i.test(rest)) throw ociError('NAME_INVALID', 'encoded slashes (%2F) are not allowed in OCI paths')
  let decoded: string
  try { decoded = decodeURIComponent(rest) } catch { throw ociError('NAME_INVALID', 'malformed percent-encoding in the path') }
  for (const [re, make] of ROUTES) {
    const m = re.exec(decoded)
    if (m == null) continue
    const route = make(m)
    checkName(repo, route.name)
    return route
  }
  return undefined
}

export function checkName (repo: string, name: string): void {
  if (name === '') {
    throw ociError('NAME_INVALID', `images live under the repository: ${repo}/<image>, e.g. ${repo}/library/alpine`, { name: repo })
  }
  const full = `${repo}/${name}`
  if (!NAME_RE.test(full) || full.length > MAX_NAME) {
    throw ociError('NAME_INVALID', `invalid image name "${full}"`, { name: full })
  }
}

export function isTag (reference: string): boolean { return TAG_RE.test(reference) }

export function checkTag (tag: string): void {
  if (!TAG_RE.test(tag)) throw ociError('MANIFEST_INVALID', `invalid tag "${tag}"`, { tag })
}

/** Checks a digest and returns its sha256 hex. Other algorithms are valid OCI digests, but this
 *  registry indexes blobs by sha256 only and says so. */
export function sha256Of (digest: string): string {
  if (SHA256_RE.test(digest)) return digest.slice('sha256:'.length)
  const valid = DIGEST_RE.test(digest)
  throw ociError('DIGEST_INVALID', valid ? `unsupported digest algorithm in "${digest}": only sha256 is supported` : `invalid digest "${digest}"`, { digest })
}

export function isDigest (reference: string): boolean { return DIGEST_RE.test(reference) }

/** The format's check of a replicated change (FormatHandler.validateArtifact): an image name of
 *  the spec's grammar, a sha256 manifest digest as the version, files that are the manifest or
 *  digests of what it pins, and tags of the spec's grammar, as a push stores them. */
export function validateOciArtifact (a: ArtifactCheck): void {
  checkName(a.repo, a.name)
  // An untag names no version (store/artifacts.ts removeTag).
  if (!(a.kind === 'untag' && a.version === '')) sha256Of(a.version)
  for (const f of a.files) {
    if (f.filename !== MANIFEST_FILE) sha256Of(f.filename)
  }
  if (a.tag != null) checkTag(a.tag)
}
