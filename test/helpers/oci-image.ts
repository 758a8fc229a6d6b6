// Builds OCI image layouts on disk (https://github.com/opencontainers/image-spec/blob/main/image-layout.md)
// for tests and the OCI benchmark: real tar layers (the `tar` package), optionally gzipped, a config
// with matching diff_ids, manifests, indexes, index.json and oci-layout. skopeo and podman read them
// with the `oci:<dir>:<ref>` transport.
import { createHash, randomFillSync } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdir, mkdtemp, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { createGzip } from 'node:zlib'
import { create as createTar } from 'tar'

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json'
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json'
export const LAYER_TAR = 'application/vnd.oci.image.layer.v1.tar'
export const LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip'

export interface Descriptor {
  mediaType: string
  digest: string
  size: number
  artifactType?: string
  annotations?: Record<string, string>
  platform?: { os: string, architecture: string }
}

export interface Layer extends Descriptor { diffId: string }

/** File contents: bytes, text, or `{ random: n }` for n random bytes (written in 1 MiB pieces). */
export type FileContent = Uint8Array | string | { random: number }

export interface Image {
  manifest: Descriptor
  manifestBytes: Buffer
  config: Descriptor
  layers: Layer[]
}

export const sha256 = (b: Uint8Array | string) => 'sha256:' + createHash('sha256').update(b).digest('hex')

/** Stores bytes as a blob of the layout; returns the descriptor. */
export async function addBlob (layout: string, bytes: Uint8Array | string, mediaType: string): Promise<Descriptor> {
  const digest = sha256(bytes)
  const path = blobPath(layout, digest)
  await mkdir(dirname(path), { recursive: true })
  await writeFile(path, bytes)
  return { mediaType, digest, size: Buffer.byteLength(bytes) }
}

export const blobPath = (layout: string, digest: string) => join(layout, 'blobs', ...digest.split(':'))

/** A layer holding `files` (paths relative to the image root). */
export async function addLayer (layout: string, files: Record<string, FileContent>, opts: { gzip?: boolean } = {}): Promise<Layer> {
  const gzip = opts.gzip ?? true
  await mkdir(join(layout, 'blobs', 'sha256'), { recursive: true })
  const work = await mkdtemp(join(layout, '.layer-'))
  try {
    const root = join(work, 'root')
    for (const [path, content] of Object.entries(files)) {
      const file = join(root, path)
      await mkdir(dirname(file), { recursive: true })
      if (typeof content === 'object' && 'random' in content) await writeRandom(file, content.random)
      else await writeFile(file, content)
    }
    const tarFile = join(work, 'layer.tar')
    await createTar({ cwd: root, file: tarFile, portable: true, mtime: new Date(0) }, Object.keys(files))
    const diffId = await hashFile(tarFile)
    if (!gzip) {
      const size = (await stat(tarFile)).size
      await rename(tarFile, blobPath(layout, diffId))
      return { mediaType: LAYER_TAR, digest: diffId, size, diffId }
    }
    const gz = join(work, 'layer.tar.gz')
    const hash = createHash('sha256')
    let size = 0
    await pipeline(createReadStream(tarFile), createGzip({ level: 1 }), new Transform({
      transform (chunk, _enc, done) { hash.update(chunk); size += chunk.length; done(null, chunk) }
    }), createWriteStream(gz))
    const digest = 'sha256:' + hash.digest('hex')
    await rename(gz, blobPath(layout, digest))
    return { mediaType: LAYER_GZIP, digest, size, diffId }
  } finally {
    await rm(work, { recursive: true, force: true })
  }
}

/** Config + image manifest for `layers`; the manifest is stored as a blob too. */
export async function addImage (layout: string, layers: Layer[], opts: {
  os?: string, architecture?: string, annotations?: Record<string, string>, created?: string
} = {}): Promise<Image> {
  const os = opts.os ?? 'linux'
  const architecture = opts.architecture ?? 'amd64'
  const config = await addBlob(layout, JSON.stringify({
    created: opts.created ?? '2026-01-01T00:00:00Z',
    architecture,
    os,
    config: { Cmd: ['/bin/sh'] },
    rootfs: { type: 'layers', diff_ids: layers.map(l => l.diffId) },
    history: layers.map(() => ({ created_by: 'akmesh test' }))
  }), OCI_CONFIG)
  const manifestBytes = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config,
    layers: layers.map(({ mediaType, digest, size }) => ({ mediaType, digest, size })),
    ...(opts.annotations != null ? { annotations: opts.annotations } : {})
  }))
  const manifest = await addBlob(layout, manifestBytes, OCI_MANIFEST)
  return { manifest: { ...manifest, platform: { os, architecture } }, manifestBytes, config, layers }
}

/** An image index over `manifests` (their `platform` is kept). */
export async function addIndex (layout: string, manifests: Descriptor[]): Promise<{ descriptor: Descriptor, bytes: Buffer }> {
  const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests }))
  return { descriptor: await addBlob(layout, bytes, OCI_INDEX), bytes }
}

/** Writes oci-layout and index.json naming each descriptor by `org.opencontainers.image.ref.name`. */
export async function writeLayout (layout: string, refs: Record<string, Descriptor>): Promise<void> {
  await mkdir(layout, { recursive: true })
  await writeFile(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }))
  await writeFile(join(layout, 'index.json'), JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: Object.entries(refs).map(([ref, d]) => ({
      mediaType: d.mediaType, digest: d.digest, size: d.size,
      annotations: { 'org.opencontainers.image.ref.name': ref }
    }))
  }))
}

/** The descriptor index.json gives for `ref` (after a copy into a layout). */
export async function layoutRef (layout: string, ref: string): Promise<Descriptor> {
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: Descriptor[] }
  const d = index.manifests.find(m => m.annotations?.['org.opencontainers.image.ref.name'] === ref)
  if (d == null) throw new Error(`no ref ${ref} in ${layout}/index.json`)
  return d
}

async function writeRandom (file: string, size: number): Promise<void> {
  const fh = await open(file, 'w')
  try {
    const buf = Buffer.allocUnsafe(1024 * 1024)
    for (let left = size; left > 0; left -= buf.length) {
      const n = Math.min(left, buf.length)
      randomFillSync(buf, 0, n)
      await fh.write(buf, 0, n)
    }
  } finally { await fh.close() }
}

async function hashFile (file: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(file, { highWaterMark: 1024 * 1024 })) hash.update(chunk as Buffer)
  return 'sha256:' + hash.digest('hex')
}
