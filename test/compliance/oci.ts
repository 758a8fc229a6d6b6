// OCI as docker, podman and oras shape a push (blob POST ?digest= or POST/PATCH/PUT sessions,
// then a manifest PUT with its media type) and a pull (manifests by tag and digest, blobs).
// https://github.com/opencontainers/distribution-spec/blob/main/spec.md
import { createHash } from 'node:crypto'
import type { FormatFixture } from './fixture.ts'
import { ociError } from './fixture.ts'
import type { App } from './harness.ts'
import { sampleBytes } from './generic.ts'

const digestOf = (b: Uint8Array) => 'sha256:' + createHash('sha256').update(b).digest('hex')
const MANIFEST_TYPE = 'application/vnd.oci.image.manifest.v1+json'
const OCTETS = { 'Content-Type': 'application/octet-stream' }

async function pushBlob (app: App, base: string, bytes: Buffer): Promise<string> {
  const digest = digestOf(bytes)
  const r = await app.send('POST', `${base}/blobs/uploads/?digest=${digest}`, { body: bytes, headers: OCTETS, auth: `Bearer ${app.tokens.admin}` })
  if (r.status !== 201) throw new Error(`blob push: ${r.status} ${r.text}`)
  return digest
}

/** Opens an upload session; returns its id (the last segment of Location). */
async function startSession (app: App, base: string): Promise<string> {
  const r = await app.send('POST', `${base}/blobs/uploads/`, { auth: `Bearer ${app.tokens.admin}` })
  if (r.status !== 202) throw new Error(`upload session: ${r.status} ${r.text}`)
  return String(r.headers.location).split('/').pop() as string
}

function manifestOf (config: { digest: string, size: number }, layer: { digest: string, size: number }): Buffer {
  return Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: MANIFEST_TYPE,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...layer }]
  }, null, 2))
}

export const ociFixture: FormatFixture = {
  format: 'oci',

  async publish (app, repo, id) {
    const image = `compliance/${id}`
    const base = `/v2/${repo}/${image}`
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }))
    const layer = sampleBytes(`${repo}/${image} layer`)
    const configDigest = await pushBlob(app, base, config)
    const layerDigest = await pushBlob(app, base, layer)
    const manifest = manifestOf({ digest: configDigest, size: config.length }, { digest: layerDigest, size: layer.length })
    const digest = digestOf(manifest)
    const r = await app.send('PUT', `${base}/manifests/v1`, { body: manifest, headers: { 'Content-Type': MANIFEST_TYPE }, auth: `Bearer ${app.tokens.admin}` })
    if (r.status !== 201) throw new Error(`manifest push: ${r.status} ${r.text}`)
    return {
      name: image, version: digest, files: ['manifest.json', configDigest, layerDigest],
      downloads: [
        { path: `${base}/blobs/${layerDigest}`, bytes: layer },
        { path: `${base}/blobs/${configDigest}`, bytes: config },
        { path: `${base}/manifests/${digest}`, bytes: manifest },
        { path: `${base}/manifests/v1`, bytes: manifest }
      ],
      documents: [`${base}/tags/list`, `${base}/referrers/${digest}`],
      extra: { base, digest, layerDigest, manifest: manifest.toString('base64') }
    }
  },

  async writeRoutes (app, _repo, p, id) {
    const { base, digest, layerDigest } = p.extra
    const session = await startSession(app, base)
    const bytes = Buffer.from(`new blob ${id}`)
    const manifest = Buffer.from(p.extra.manifest, 'base64')
    return [
      { method: 'POST', path: `${base}/blobs/uploads/` },
      { method: 'POST', path: `${base}/blobs/uploads/?digest=${digestOf(bytes)}`, body: bytes, headers: OCTETS },
      { method: 'POST', path: `${base}/blobs/uploads/?mount=${layerDigest}&from=${p.extra.base.slice('/v2/'.length)}` },
      { method: 'GET', path: `${base}/blobs/uploads/${session}` },
      { method: 'PATCH', path: `${base}/blobs/uploads/${session}`, body: bytes, headers: OCTETS },
      { method: 'PUT', path: `${base}/blobs/uploads/${session}?digest=${digestOf(bytes)}`, body: bytes, headers: OCTETS },
      { method: 'DELETE', path: `${base}/blobs/uploads/${session}` },
      { method: 'PUT', path: `${base}/manifests/v2`, body: manifest, headers: { 'Content-Type': MANIFEST_TYPE } },
      { method: 'DELETE', path: `${base}/manifests/v1` },
      { method: 'DELETE', path: `${base}/manifests/${digest}` },
      { method: 'DELETE', path: `${base}/blobs/${layerDigest}` }
    ]
  },

  traversalTargets: (repo, p) => [
    { method: 'GET', path: `/v2/${repo}/{}/manifests/v1` },
    { method: 'GET', path: `/v2/${repo}/{}/tags/list` },
    { method: 'GET', path: `${p.extra.base}/manifests/{}` },
    { method: 'GET', path: `${p.extra.base}/blobs/{}` },
    { method: 'PUT', path: `${p.extra.base}/manifests/{}`, body: Buffer.from(p.extra.manifest, 'base64').toString(), headers: { 'Content-Type': MANIFEST_TYPE } },
    { method: 'PUT', path: `/v2/${repo}/{}/manifests/v1`, body: Buffer.from(p.extra.manifest, 'base64').toString(), headers: { 'Content-Type': MANIFEST_TYPE } },
    { method: 'POST', path: `/v2/${repo}/{}/blobs/uploads/` },
    { method: 'PATCH', path: `${p.extra.base}/blobs/uploads/{}`, body: 'probe', headers: OCTETS }
  ],

  missing: (repo) => `/v2/${repo}/compliance/none/manifests/v1`,
  errorShape: ociError,

  async oversized (repo, limits) {
    const body = sampleBytes('oversized', limits.uploadBytes + 1)
    return { method: 'POST', path: `/v2/${repo}/compliance/oversized/blobs/uploads/?digest=${digestOf(body)}`, body, headers: OCTETS }
  },

  async truncated (app, _repo, p) {
    const { base } = p.extra
    const blob = sampleBytes('truncated', 256 * 1024)
    const manifest = Buffer.from(p.extra.manifest, 'base64')
    return [
      { method: 'POST', path: `${base}/blobs/uploads/?digest=${digestOf(blob)}`, body: blob, headers: OCTETS },
      { method: 'PATCH', path: `${base}/blobs/uploads/${await startSession(app, base)}`, body: blob, headers: OCTETS },
      { method: 'PUT', path: `${base}/blobs/uploads/${await startSession(app, base)}?digest=${digestOf(blob)}`, body: blob, headers: OCTETS },
      { method: 'PUT', path: `${base}/manifests/truncated`, body: manifest, headers: { 'Content-Type': MANIFEST_TYPE } }
    ]
  }
}
