// An image of an image list through the node's OCI repository (remote or virtual): its manifest
// by tag or digest, the platform manifests of an index, and every blob (config and layers), as
// `skopeo copy` / `podman pull` of every platform asks for them. The node caches each, verified
// against its digest; here every manifest's bytes and every blob are checked again against the
// digest that names them, and a pinned digest against the manifest served for the tag.
import { createHash } from 'node:crypto'
import { DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, parseManifest, isForeign } from '../../../protocols/oci/media.ts'
import { hashBody, nodeFailure, nodeGet, type NodeAt } from './node-http.ts'
import type { LockfileProblem, OciEntry, ResolvedArtifact } from './types.ts'

const ACCEPT = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST].join(', ')
/** An index of indexes is legal but rare; a bound keeps a hostile upstream from looping. */
const MAX_MANIFESTS = 256

/** The name a repository keeps an image under (protocols/oci/remote-upstream.ts upstreamName). */
export function ociRowName (repo: { dockerHubLibrary?: boolean }, name: string): string {
  return repo.dockerHubLibrary === true && !name.includes('/') ? `library/${name}` : name
}

export async function resolveImage (node: NodeAt, repo: string, e: OciEntry, signal?: AbortSignal): Promise<ResolvedArtifact[] | LockfileProblem> {
  const base = `/v2/${encodeURIComponent(repo)}/${e.name.split('/').map(encodeURIComponent).join('/')}`
  const get = async (path: string, accept?: string) => await nodeGet(node, `${base}/${path}`, accept != null ? { accept } : {}, signal)
  const out: ResolvedArtifact[] = []
  const seenBlobs = new Set<string>()
  const reference = e.digest ?? (e.tag as string)
  const queue = [{ reference, expect: e.digest }]
  while (queue.length > 0) {
    const { reference, expect } = queue.shift() as { reference: string, expect?: string }
    if (out.length >= MAX_MANIFESTS) throw new Error(`${e.where}: more than ${MAX_MANIFESTS} manifests`)
    const res = await get(`manifests/${reference}`, ACCEPT)
    if (res.status === 404) { await res.body?.cancel(); return { where: e.where, problem: 'missing', message: `${e.where}: ${repo} and its upstream have no manifest ${e.name}${reference.startsWith('sha256:') ? '@' : ':'}${reference}` } }
    if (res.status !== 200) throw await nodeFailure(res, `${e.where}: manifest ${reference}`)
    const bytes = Buffer.from(await res.arrayBuffer())
    const digest = 'sha256:' + createHash('sha256').update(bytes).digest('hex')
    if (expect != null && digest !== expect) return { where: e.where, problem: 'integrity', message: `${e.where}: integrity mismatch: the manifest ${reference} served has digest ${digest}, not ${expect}` }
    out.push({ name: e.name, version: digest })
    // name:tag@digest: the tag is bundled too when it still names the pinned bytes.
    if (e.tag != null && e.digest != null && reference === e.digest) {
      const tagged = await get(`manifests/${e.tag}`, ACCEPT)
      if (tagged.status !== 200) throw await nodeFailure(tagged, `${e.where}: tag ${e.tag}`)
      const tagDigest = 'sha256:' + createHash('sha256').update(Buffer.from(await tagged.arrayBuffer())).digest('hex')
      if (tagDigest !== e.digest) return { where: e.where, problem: 'integrity', message: `${e.where}: integrity mismatch: tag ${e.tag} names ${tagDigest} now, not the pinned ${e.digest}` }
    }
    const manifest = parseManifest(bytes, (res.headers.get('content-type') ?? '').split(';')[0].trim())
    for (const m of manifest.manifests) queue.push({ reference: m.digest, expect: m.digest })
    for (const b of manifest.blobs) {
      if (seenBlobs.has(b.digest) || isForeign(b)) continue
      seenBlobs.add(b.digest)
      const blob = await get(`blobs/${b.digest}`)
      if (blob.status !== 200) throw await nodeFailure(blob, `${e.where}: blob ${b.digest}`)
      const got = 'sha256:' + (await hashBody(blob, ['sha256'])).sha256.toString('hex')
      if (got !== b.digest) return { where: e.where, problem: 'integrity', message: `${e.where}: integrity mismatch: blob ${b.digest} served with digest ${got}` }
    }
  }
  return out
}
