// Publishing arbitrary npm tarballs with the registry's own publish call (what `npm publish`
// sends): PUT {registry}/{escaped name} with the version's manifest and the tarball attached.
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { Parser, type ReadEntry } from 'tar'
import type { Registry } from './types.ts'

export type Manifest = Record<string, unknown> & { name: string, version: string }

/** package.json from inside a package tarball (the top directory is usually, not always, "package/"). */
export async function readManifest (tgz: Buffer): Promise<Manifest> {
  const found = new Map<string, string>()
  await new Promise<void>((resolve, reject) => {
    const parser = new Parser({
      onReadEntry: (entry: ReadEntry) => {
        if (/^[^/]+\/package\.json$/.test(entry.path) && !found.has(entry.path)) {
          const chunks: Buffer[] = []
          entry.on('data', (c: Buffer) => chunks.push(c))
          entry.on('end', () => found.set(entry.path, Buffer.concat(chunks).toString('utf8')))
        } else entry.resume()
      }
    })
    parser.on('end', () => resolve())
    parser.on('error', reject)
    parser.end(tgz)
  })
  const text = found.get('package/package.json') ?? [...found.values()][0]
  if (text == null) throw new Error('no package.json in tarball')
  return JSON.parse(text.replace(/^\uFEFF/, '')) as Manifest
}

export function escapeName (name: string): string {
  return name.startsWith('@') ? `@${encodeURIComponent(name.slice(1))}` : encodeURIComponent(name)
}

export interface PublishOptions {
  /** Registry name/version to publish under (defaults to the tarball's package.json). */
  name?: string
  version?: string
  /** Set dist-tags.latest to this version (default true: publish versions in ascending order). */
  tagLatest?: boolean
}

/** Publishes one tarball; throws unless the registry answers 2xx. */
export async function publishTarball (reg: Registry, tgz: Buffer, opts: PublishOptions = {}): Promise<void> {
  const pkg = await readManifest(tgz)
  const name = opts.name ?? pkg.name
  const version = opts.version ?? pkg.version
  const base = name.slice(name.lastIndexOf('/') + 1)
  const file = `${base}-${version}.tgz`
  const registry = reg.registry.endsWith('/') ? reg.registry : `${reg.registry}/`
  const url = `${registry}${escapeName(name)}`
  // Fields npm publish does not send, or that describe someone else's install.
  const manifest: Record<string, unknown> = { ...pkg }
  for (const k of Object.keys(manifest)) if (k.startsWith('_')) delete manifest[k]
  const body = {
    _id: name,
    name,
    ...(typeof pkg.description === 'string' ? { description: pkg.description } : {}),
    'dist-tags': opts.tagLatest === false ? {} : { latest: version },
    versions: {
      [version]: {
        ...manifest,
        name,
        version,
        _id: `${name}@${version}`,
        dist: {
          shasum: createHash('sha1').update(tgz).digest('hex'),
          integrity: `sha512-${createHash('sha512').update(tgz).digest('base64')}`,
          tarball: `${registry}${name}/-/${file}`
        }
      }
    },
    access: null,
    _attachments: {
      [file]: { content_type: 'application/octet-stream', data: tgz.toString('base64'), length: tgz.length }
    }
  }
  const res = await fetch(url, {
    method: 'PUT',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${reg.token}`, 'npm-command': 'publish' },
    body: JSON.stringify(body)
  })
  const text = await res.text()
  if (!res.ok) throw new Error(`${reg.name}: publish ${name}@${version} -> ${res.status} ${text.slice(0, 500)}`)
}

export async function publishFile (reg: Registry, path: string, opts: PublishOptions = {}): Promise<void> {
  await publishTarball(reg, await readFile(path), opts)
}

/** Runs fn over items with at most `limit` in flight. */
export async function pool<T> (items: T[], limit: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0
  const worker = async () => {
    while (next < items.length) {
      const i = next++
      await fn(items[i]!, i)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
}
