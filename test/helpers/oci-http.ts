// Plain HTTP calls to a test node's OCI endpoints, for tests that drive the protocol directly.
import { createHash } from 'node:crypto'
import type { TestNode } from './node.ts'

export const digestOf = (b: Uint8Array | string) => 'sha256:' + createHash('sha256').update(b).digest('hex')

export interface OciCall {
  body?: Uint8Array | string
  headers?: Record<string, string>
  /** Authorization header; default the node's admin token; null sends none. */
  auth?: string | null
}

export async function oci (node: TestNode, method: string, path: string, opts: OciCall = {}): Promise<Response> {
  const headers: Record<string, string> = { ...opts.headers }
  const auth = opts.auth === undefined ? `Bearer ${node.adminToken}` : opts.auth
  if (auth != null) headers.Authorization = auth
  const url = /^https?:/.test(path) ? path : node.url + path
  return await fetch(url, { method, headers, body: opts.body as RequestInit['body'], redirect: 'manual' })
}

export const basic = (user: string, secret: string) => 'Basic ' + Buffer.from(`${user}:${secret}`).toString('base64')

/** The first OCI error code of a response body. */
export async function errorCode (res: Response): Promise<string | undefined> {
  const text = await res.text()
  try { return (JSON.parse(text) as { errors: Array<{ code: string }> }).errors[0]?.code } catch { return undefined }
}

/** Uploads a blob in one POST; returns its digest. */
export async function pushBlob (node: TestNode, image: string, bytes: Uint8Array | string, auth?: string | null): Promise<string> {
  const digest = digestOf(bytes)
  const res = await oci(node, 'POST', `/v2/${image}/blobs/uploads/?digest=${digest}`, {
    body: bytes, headers: { 'Content-Type': 'application/octet-stream' }, auth
  })
  if (res.status !== 201) throw new Error(`blob upload: ${res.status} ${await res.text()}`)
  return digest
}

export interface PushedImage { digest: string, bytes: Buffer, config: string, layers: string[] }

/** Pushes config + layers and an OCI image manifest (with extra top-level fields) under `ref`. */
export async function pushImage (node: TestNode, image: string, ref: string, opts: {
  layers?: Array<Uint8Array | string>, config?: string, configMediaType?: string, extra?: Record<string, unknown>, mediaType?: string
} = {}): Promise<PushedImage> {
  const config = opts.config ?? JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } })
  const configDigest = await pushBlob(node, image, config)
  const layers: string[] = []
  for (const l of opts.layers ?? [`layer of ${image}:${ref}`]) layers.push(await pushBlob(node, image, l))
  const mediaType = opts.mediaType ?? 'application/vnd.oci.image.manifest.v1+json'
  const layerType = mediaType.includes('docker') ? 'application/vnd.docker.image.rootfs.diff.tar.gzip' : 'application/vnd.oci.image.layer.v1.tar+gzip'
  const manifest = {
    schemaVersion: 2,
    mediaType,
    config: { mediaType: opts.configMediaType ?? (mediaType.includes('docker') ? 'application/vnd.docker.container.image.v1+json' : 'application/vnd.oci.image.config.v1+json'), digest: configDigest, size: Buffer.byteLength(config) },
    layers: layers.map((d, i) => ({ mediaType: layerType, digest: d, size: Buffer.byteLength((opts.layers ?? [`layer of ${image}:${ref}`])[i]) })),
    ...opts.extra
  }
  // Indented on purpose: the registry must serve these exact bytes, not a re-serialisation.
  const bytes = Buffer.from(JSON.stringify(manifest, null, 3) + '\n')
  const res = await oci(node, 'PUT', `/v2/${image}/manifests/${ref}`, { body: bytes, headers: { 'Content-Type': mediaType } })
  if (res.status !== 201) throw new Error(`manifest push: ${res.status} ${await res.text()}`)
  return { digest: digestOf(bytes), bytes, config: configDigest, layers }
}

/** Three OCI repositories: two anonymous-read (for mounts across repositories), one private. */
export const OCI_TEST_CONFIG = `
repositories:
  - name: docker
    format: oci
  - name: other
    format: oci
  - name: private
    format: oci
    anonymousRead: false
`
