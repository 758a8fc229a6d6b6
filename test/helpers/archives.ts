// Archives built for tests, streamed rather than held whole where they unpack large: tar streams
// whose entries are zeros (to compress to almost nothing), gzipped or zstd-compressed, and zips
// with sizes that lie.
import { randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import { createGzip, createZstdCompress } from 'node:zlib'
import { Header } from 'tar'
import yazl from 'yazl'

export interface TarEntry { path: string, size?: number, text?: string | Buffer, type?: 'File' | 'Directory' | 'SymbolicLink' }

const ZEROS = Buffer.alloc(1024 * 1024)

/** A tar stream; an entry with `size` and no `text` is that many zero bytes, never in memory at once. */
export async function * tarStream (entries: Iterable<TarEntry>): AsyncGenerator<Buffer> {
  for (const e of entries) {
    const body = e.text != null ? Buffer.from(e.text) : undefined
    const size = body?.length ?? e.size ?? 0
    const type = e.type ?? 'File'
    const h = new Header({ path: e.path, mode: type === 'Directory' ? 0o755 : 0o644, size: type === 'File' ? size : 0, mtime: new Date(0), type, uid: 0, gid: 0, linkpath: type === 'SymbolicLink' ? 'x' : undefined } as any)
    h.encode()
    yield h.block as Buffer
    if (type !== 'File') continue
    if (body != null) yield body
    else for (let left = size; left > 0; left -= ZEROS.length) yield ZEROS.subarray(0, Math.min(left, ZEROS.length))
    if (size % 512 !== 0) yield Buffer.alloc(512 - (size % 512))
  }
  yield Buffer.alloc(1024)
}

async function collect (stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const pieces: Buffer[] = []
  for await (const p of stream) pieces.push(p)
  return Buffer.concat(pieces)
}

export const tarBytes = async (entries: Iterable<TarEntry>) => await collect(tarStream(entries))
export const tgzBytes = async (entries: Iterable<TarEntry>) => await collect(Readable.from(tarStream(entries)).pipe(createGzip({ level: 6 })))
export const tzstBytes = async (entries: Iterable<TarEntry>) => await collect(Readable.from(tarStream(entries)).pipe(createZstdCompress()))

/** An npm package tarball: package/package.json plus `extra` entries. */
export async function npmTgz (name: string, version: string, extra: TarEntry[] = []): Promise<Buffer> {
  return await tgzBytes([{ path: 'package/package.json', text: JSON.stringify({ name, version }) }, ...extra])
}

/** `n` small files under `dir/`. */
export function manyFiles (dir: string, n: number): TarEntry[] {
  return Array.from({ length: n }, (_, i) => ({ path: `${dir}/f${i}.txt`, text: 'x' }))
}

/** A zip; a Buffer or string entry is stored as given, a number is that many zero bytes. */
export async function zipBytes (files: Record<string, string | Buffer | number>): Promise<Buffer> {
  const zip = new yazl.ZipFile()
  for (const [path, content] of Object.entries(files)) {
    if (path.endsWith('/')) { zip.addEmptyDirectory(path); continue }
    zip.addBuffer(typeof content === 'number' ? Buffer.alloc(content) : Buffer.from(content), path)
  }
  zip.end()
  return await collect(zip.outputStream as unknown as AsyncIterable<Buffer>)
}

/** Rewrites the uncompressed size of `name` in its local header and central directory record,
 *  as a hostile zip would (the data still inflates to its real size). */
export function lieAboutSize (zip: Buffer, name: string, size: number): Buffer {
  const out = Buffer.from(zip)
  const nameBytes = Buffer.from(name)
  let patched = 0
  for (let at = 0; at < out.length - 46; at++) {
    const sig = out.readUInt32LE(at)
    if (sig === 0x04034b50 && out.subarray(at + 30, at + 30 + nameBytes.length).equals(nameBytes) && out.readUInt16LE(at + 26) === nameBytes.length) {
      if ((out.readUInt16LE(at + 6) & 0x08) === 0) out.writeUInt32LE(size, at + 22) // sizes are here unless a data descriptor follows
      patched++
    } else if (sig === 0x02014b50 && out.subarray(at + 46, at + 46 + nameBytes.length).equals(nameBytes) && out.readUInt16LE(at + 28) === nameBytes.length) {
      out.writeUInt32LE(size, at + 24)
      patched++
    }
  }
  if (patched === 0) throw new Error(`${name} not found in the zip`)
  return out
}

export const incompressible = (n: number) => randomBytes(n)
