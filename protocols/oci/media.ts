// Manifest media types and the structure this registry checks before accepting a manifest.
// https://github.com/opencontainers/image-spec/blob/main/manifest.md, image-index.md, and
// Docker's image manifest v2 schema 2 (manifest and manifest list).
import { ociError } from './errors.ts'
import { sha256Of } from './names.ts'

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json'
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json'
export const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json'

const IMAGE_TYPES = [OCI_MANIFEST, DOCKER_MANIFEST]
const INDEX_TYPES = [OCI_INDEX, DOCKER_LIST]

export interface Descriptor {
  mediaType: string
  digest: string
  size: number
  artifactType?: string
  annotations?: Record<string, string>
  urls?: string[]
}

export interface Manifest {
  mediaType: string
  kind: 'image' | 'index'
  /** Blobs an image manifest needs: config then layers (empty for an index). */
  blobs: Descriptor[]
  /** Manifests an index lists (empty for an image manifest). */
  manifests: Descriptor[]
  subject?: Descriptor
  /** As the referrers API reports it: the manifest's own, else (image) the config's media type. */
  artifactType?: string
  annotations?: Record<string, string>
}

/** Parses and checks a pushed manifest. The media type comes from the body's `mediaType`, else
 *  the request's Content-Type; when both are given they must agree. */
export function parseManifest (bytes: Buffer, contentType: string): Manifest {
  let doc: any
  try { doc = JSON.parse(bytes.toString('utf8')) } catch (e) { throw invalid(`manifest is not JSON: ${(e as Error).message}`) }
  if (doc == null || typeof doc !== 'object' || Array.isArray(doc)) throw invalid('manifest must be a JSON object')
  if (doc.schemaVersion !== 2) throw invalid(`unsupported schemaVersion ${JSON.stringify(doc.schemaVersion)} (only 2; Docker schema 1 is not accepted)`)
  const header = contentType.split(';')[0].trim().toLowerCase()
  // The spec: a manifest is pushed with its media type as Content-Type; anything else given there
  // (text/plain, application/json) is not a manifest this registry may serve back under it.
  if (header !== '' && !isManifestType(header)) {
    throw invalid(`Content-Type ${header} is not a manifest media type (expected one of ${[...IMAGE_TYPES, ...INDEX_TYPES].join(', ')})`)
  }
  const declared = typeof doc.mediaType === 'string' ? doc.mediaType : undefined
  if (declared != null && header !== '' && header !== declared) {
    throw invalid(`Content-Type ${header} does not match the manifest's mediaType ${declared}`)
  }
  const mediaType = declared ?? (isManifestType(header) ? header : Array.isArray(doc.manifests) ? OCI_INDEX : OCI_MANIFEST)
  if (!isManifestType(mediaType)) throw invalid(`unsupported manifest media type ${mediaType}`)

  const subject = doc.subject == null ? undefined : descriptor(doc.subject, 'subject')
  const annotations = stringMap(doc.annotations, 'annotations')
  const ownType = typeof doc.artifactType === 'string' && doc.artifactType !== '' ? doc.artifactType : undefined
  if (IMAGE_TYPES.includes(mediaType)) {
    const config = descriptor(doc.config, 'config')
    if (!Array.isArray(doc.layers)) throw invalid('layers must be an array')
    const layers = doc.layers.map((l: unknown, i: number) => descriptor(l, `layers[${i}]`))
    return { mediaType, kind: 'image', blobs: [config, ...layers], manifests: [], subject, artifactType: ownType ?? config.mediaType, annotations }
  }
  if (!Array.isArray(doc.manifests)) throw invalid('manifests must be an array')
  const manifests = doc.manifests.map((m: unknown, i: number) => descriptor(m, `manifests[${i}]`))
  return { mediaType, kind: 'index', blobs: [], manifests, subject, artifactType: ownType, annotations }
}

export function isManifestType (t: string): boolean {
  return IMAGE_TYPES.includes(t) || INDEX_TYPES.includes(t)
}

/** Layers that live elsewhere by design (Windows base layers): they may be absent here. */
export function isForeign (d: Descriptor): boolean {
  return (d.urls?.length ?? 0) > 0 && /nondistributable|foreign/.test(d.mediaType)
}

function descriptor (v: any, where: string): Descriptor {
  if (v == null || typeof v !== 'object') throw invalid(`${where} must be a descriptor object`)
  if (typeof v.mediaType !== 'string' || v.mediaType === '') throw invalid(`${where}.mediaType is missing`)
  if (typeof v.digest !== 'string') throw invalid(`${where}.digest is missing`)
  sha256Of(v.digest)
  if (!Number.isSafeInteger(v.size) || v.size < 0) throw invalid(`${where}.size must be a non-negative integer`)
  const d: Descriptor = { mediaType: v.mediaType, digest: v.digest, size: v.size }
  if (typeof v.artifactType === 'string') d.artifactType = v.artifactType
  const annotations = stringMap(v.annotations, `${where}.annotations`)
  if (annotations != null) d.annotations = annotations
  if (Array.isArray(v.urls)) d.urls = v.urls.filter((u: unknown) => typeof u === 'string')
  return d
}

function stringMap (v: unknown, where: string): Record<string, string> | undefined {
  if (v == null) return undefined
  if (typeof v !== 'object' || Array.isArray(v) || Object.values(v).some(x => typeof x !== 'string')) {
    throw invalid(`${where} must map strings to strings`)
  }
  return v as Record<string, string>
}

const invalid = (message: string) => ociError('MANIFEST_INVALID', message)
