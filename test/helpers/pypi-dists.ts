// Wheels and sdists built in memory (yazl, tar) and uploaded the way twine does, for HTTP-level
// tests of the PyPI format that need no Python.
import { createHash } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import type { ExecutionContext } from 'ava'
import { blake2b } from 'hash-wasm'
import { create as createTar } from 'tar'
import yazl from 'yazl'
import { makeTempDir, type TestNode } from './node.ts'

export interface Dist { filename: string, bytes: Buffer, metadata: string }

export const coreMetadata = (name: string, version: string, requiresPython?: string) =>
  `Metadata-Version: 2.1\nName: ${name}\nVersion: ${version}\nSummary: a test package\n` +
  (requiresPython == null ? '' : `Requires-Python: ${requiresPython}\n`) + '\nLong description.\n'

async function zipBytes (files: Record<string, string>): Promise<Buffer> {
  const zip = new yazl.ZipFile()
  for (const [path, text] of Object.entries(files)) zip.addBuffer(Buffer.from(text), path)
  zip.end()
  const pieces: Buffer[] = []
  for await (const piece of zip.outputStream) pieces.push(piece as Buffer)
  return Buffer.concat(pieces)
}

/** A py3-none-any wheel; `metadata: null` leaves METADATA out. */
export async function makeWheel (name: string, version: string, opts: { metadata?: string | null, requiresPython?: string } = {}): Promise<Dist> {
  const dist = name.replace(/[-_.]+/g, '_').toLowerCase()
  const metadata = opts.metadata === undefined ? coreMetadata(name, version, opts.requiresPython) : opts.metadata
  const distInfo = `${dist}-${version}.dist-info`
  const files: Record<string, string> = {
    [`${dist}/__init__.py`]: `VERSION = ${JSON.stringify(version)}\n`,
    [`${distInfo}/WHEEL`]: 'Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n',
    [`${distInfo}/RECORD`]: ''
  }
  if (metadata != null) files[`${distInfo}/METADATA`] = metadata
  return { filename: `${dist}-${version}-py3-none-any.whl`, bytes: await zipBytes(files), metadata: metadata ?? '' }
}

export async function makeSdist (t: ExecutionContext, name: string, version: string, opts: { requiresPython?: string } = {}): Promise<Dist> {
  const base = `${name.replace(/[-_.]+/g, '_').toLowerCase()}-${version}`
  const dir = await makeTempDir(t, 'akmesh-sdist-')
  const metadata = coreMetadata(name, version, opts.requiresPython)
  const files: Record<string, string> = {
    [`${base}/PKG-INFO`]: metadata,
    [`${base}/pyproject.toml`]: '[project]\n',
    [`${base}/src/mod.py`]: 'X = 1\n'
  }
  for (const [path, text] of Object.entries(files)) {
    await mkdir(dirname(join(dir, path)), { recursive: true })
    await writeFile(join(dir, path), text)
  }
  const pieces: Buffer[] = []
  for await (const piece of createTar({ gzip: true, cwd: dir, portable: true }, [base])) pieces.push(piece as Buffer)
  return { filename: `${base}.tar.gz`, bytes: Buffer.concat(pieces), metadata }
}

export const sha256 = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex')
export const md5 = (b: Uint8Array) => createHash('md5').update(b).digest('hex')

/** The form twine sends: metadata fields, digests, then the file. `fields` overrides or (with
 *  null) removes any of them; `contentFirst` puts the file before the fields. */
export async function uploadForm (dist: Dist, name: string, version: string, fields: Record<string, string | null> = {}, opts: { contentFirst?: boolean } = {}): Promise<FormData> {
  const all: Record<string, string | null> = {
    ':action': 'file_upload',
    protocol_version: '1',
    metadata_version: '2.1',
    name,
    version,
    filetype: dist.filename.endsWith('.whl') ? 'bdist_wheel' : 'sdist',
    pyversion: dist.filename.endsWith('.whl') ? 'py3' : 'source',
    summary: 'a test package',
    sha256_digest: sha256(dist.bytes),
    md5_digest: md5(dist.bytes),
    blake2_256_digest: await blake2b(dist.bytes, 256),
    ...fields
  }
  const form = new FormData()
  const content = () => form.append('content', new Blob([dist.bytes], { type: 'application/octet-stream' }), dist.filename)
  if (opts.contentFirst === true) content()
  for (const [k, v] of Object.entries(all)) if (v != null) form.append(k, v)
  if (opts.contentFirst !== true) content()
  return form
}

export async function upload (node: TestNode, form: FormData, opts: { token?: string | null, path?: string } = {}): Promise<Response> {
  const token = opts.token === undefined ? node.adminToken : opts.token
  const headers: Record<string, string> = token == null ? {} : { Authorization: `Basic ${Buffer.from(`__token__:${token}`).toString('base64')}` }
  return await fetch(`${node.url}${opts.path ?? '/pypi/'}`, { method: 'POST', body: form, headers })
}
