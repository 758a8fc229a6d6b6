// The core metadata file of a distribution (a wheel's *.dist-info/METADATA, an sdist's PKG-INFO),
// read from the stored blob so it can be served on its own (PEP 658) and checked against the form.
import { Readable } from 'node:stream'
import { Parser, type ReadEntry } from 'tar'
import yauzl from 'yauzl'
import { badRequest } from '../../store/errors.ts'
import type { BlobStore } from '../../store/types.ts'
import type { DistFilename } from './names.ts'

/** METADATA carries the long description; PyPI caps uploads' descriptions far below this. */
const MAX_METADATA_BYTES = 16 * 1024 * 1024

/** Random access into a stored blob, for the zip central directory at the end of a wheel. */
class BlobReader extends yauzl.RandomAccessReader {
  readonly #store: BlobStore
  readonly #cid: string
  constructor (store: BlobStore, cid: string) {
    super()
    this.#store = store
    this.#cid = cid
  }

  _readStreamForRange (start: number, end: number): Readable {
    return this.#store.open(this.#cid, { start, end: end - 1 }) // yauzl's end is exclusive
  }
}

async function collect (stream: AsyncIterable<Uint8Array>, what: string): Promise<Buffer> {
  const pieces: Uint8Array[] = []
  let size = 0
  for await (const piece of stream) {
    size += piece.byteLength
    if (size > MAX_METADATA_BYTES) throw badRequest(`${what} is larger than ${MAX_METADATA_BYTES} bytes`)
    pieces.push(piece)
  }
  return Buffer.concat(pieces)
}

/** Reads one file from a zip blob: the first entry whose name `pick` accepts. */
async function readFromZip (store: BlobStore, cid: string, size: number, pick: (name: string) => boolean, what: string): Promise<Buffer | undefined> {
  let zip: yauzl.ZipFile
  try {
    zip = await yauzl.fromRandomAccessReaderPromise(new BlobReader(store, cid), size, { lazyEntries: true, strictFileNames: false })
  } catch (err) {
    throw badRequest(`not a valid zip archive: ${(err as Error).message}`)
  }
  try {
    for await (const entry of zip.eachEntry()) {
      if (!pick(entry.fileName)) continue
      if (entry.uncompressedSize > MAX_METADATA_BYTES) throw badRequest(`${what} is larger than ${MAX_METADATA_BYTES} bytes`)
      return await collect(await zip.openReadStreamPromise(entry), what)
    }
    return undefined
  } catch (err) {
    if ((err as { code?: string }).code === 'BadRequest') throw err
    throw badRequest(`corrupt zip archive: ${(err as Error).message}`)
  } finally {
    zip.close()
  }
}

/** Reads `<top>/PKG-INFO` from a gzipped tar blob, stopping as soon as it is found. */
async function readFromTarGz (store: BlobStore, cid: string, pick: (name: string) => boolean, what: string): Promise<Buffer | undefined> {
  const source = store.open(cid)
  const parser = new Parser({ strict: true })
  let found: Promise<Buffer> | undefined
  parser.on('entry', (entry: ReadEntry) => {
    if (found == null && entry.type === 'File' && pick(entry.path)) {
      found = collect(entry as unknown as AsyncIterable<Uint8Array>, what)
      found.catch(() => {}) // awaited below
    } else {
      entry.resume()
    }
  })
  try {
    await new Promise<void>((resolve, reject) => {
      parser.on('error', reject)
      parser.on('warn', (code: string, message: string) => { if (code !== 'TAR_ENTRY_INFO') reject(new Error(message)) })
      parser.on('end', resolve)
      source.on('error', reject)
      source.pipe(parser)
    })
  } catch (err) {
    throw badRequest(`not a valid .tar.gz archive: ${(err as Error).message}`)
  } finally {
    source.destroy()
  }
  return await found
}

/** The core metadata bytes of a stored distribution; 400 if the archive lacks them. */
export async function extractCoreMetadata (store: BlobStore, cid: string, size: number, dist: DistFilename, filename: string): Promise<Buffer> {
  let bytes: Buffer | undefined
  if (dist.packagetype === 'bdist_wheel') {
    // PEP 427: the metadata lives in {name}-{version}.dist-info/METADATA, spelled as in the filename.
    const wanted = `${dist.name}-${dist.version}.dist-info/METADATA`
    bytes = await readFromZip(store, cid, size, n => n === wanted, 'METADATA')
    if (bytes == null) throw badRequest(`wheel ${filename} has no ${wanted}`)
  } else {
    const isPkgInfo = (n: string) => /^[^/]+\/PKG-INFO$/.test(n)
    bytes = filename.endsWith('.zip')
      ? await readFromZip(store, cid, size, isPkgInfo, 'PKG-INFO')
      : await readFromTarGz(store, cid, isPkgInfo, 'PKG-INFO')
    if (bytes == null) throw badRequest(`sdist ${filename} has no <name>-<version>/PKG-INFO`)
  }
  return bytes
}

/** The header fields of a core metadata file (RFC 822 style: "Key: value", continuation lines
 *  start with whitespace, the body after the first blank line is the description). Keys are
 *  lowercased; repeated keys (Classifier, Requires-Dist) keep every value. */
export function parseCoreMetadata (bytes: Buffer): Map<string, string[]> {
  const headers = new Map<string, string[]>()
  let last: { key: string, index: number } | undefined
  for (const line of bytes.toString('utf8').split(/\r?\n/)) {
    if (line === '') break
    if (/^[ \t]/.test(line) && last != null) {
      const values = headers.get(last.key) as string[]
      values[last.index] += '\n' + line.trim()
      continue
    }
    const colon = line.indexOf(':')
    if (colon <= 0) continue
    const key = line.slice(0, colon).trim().toLowerCase()
    const values = headers.get(key) ?? []
    values.push(line.slice(colon + 1).trim())
    headers.set(key, values)
    last = { key, index: values.length - 1 }
  }
  return headers
}
