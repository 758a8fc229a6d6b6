// Zip archives (wheels; later jars, nupkgs, some sdists): the central directory is read through
// random access (from the store, a file, or memory), every entry is counted against the budget by
// its declared sizes before anything is inflated, and only the selected entries are inflated, with
// their real bytes counted: yauzl refuses an entry that inflates past its declared size.
import type { Readable } from 'node:stream'
import { setImmediate as turn } from 'node:timers/promises'
import yauzl from 'yauzl'
import { badRequest, isRegistryError, tooLarge } from '../../store/errors.ts'
import type { BlobStore } from '../../store/types.ts'
import type { ArchiveBudget, ArchiveEntry } from './archive-budget.ts'
import type { ArchiveSource } from './archive.ts'

/** Random access into a stored blob, for the zip central directory at the end of the file. */
class BlobReader extends yauzl.RandomAccessReader {
  readonly #store: Pick<BlobStore, 'open'>
  readonly #cid: string
  constructor (store: Pick<BlobStore, 'open'>, cid: string) {
    super()
    this.#store = store
    this.#cid = cid
  }

  _readStreamForRange (start: number, end: number): Readable {
    return this.#store.open(this.#cid, { start, end: end - 1 }) // yauzl's end is exclusive
  }
}

const OPTIONS = { lazyEntries: true, strictFileNames: false, validateEntrySizes: true, decodeStrings: true }

async function openZip (source: ArchiveSource): Promise<yauzl.ZipFile> {
  if ('bytes' in source) return await yauzl.fromBufferPromise(Buffer.from(source.bytes.buffer, source.bytes.byteOffset, source.bytes.byteLength), OPTIONS)
  if ('path' in source) return await yauzl.openPromise(source.path, OPTIONS)
  return await yauzl.fromRandomAccessReaderPromise(new BlobReader(source.store, source.cid), source.size, OPTIONS)
}

function entryOf (entry: yauzl.Entry): ArchiveEntry {
  if (entry.fileName.endsWith('/')) return { path: entry.fileName, type: 'directory', size: 0 }
  // Unix mode in the high 16 bits when made on Unix (versionMadeBy >> 8 === 3): 0o120000 is a link.
  if (entry.versionMadeBy >> 8 === 3 && ((entry.externalFileAttributes >>> 16) & 0o170000) === 0o120000) {
    return { path: entry.fileName, type: 'link', size: 0 }
  }
  return { path: entry.fileName, type: 'file', size: entry.uncompressedSize }
}

async function readEntry (zip: yauzl.ZipFile, entry: yauzl.Entry, e: ArchiveEntry, budget: ArchiveBudget, signal?: AbortSignal): Promise<Buffer> {
  const stream = await zip.openReadStreamPromise(entry)
  const pieces: Buffer[] = []
  try {
    for await (const piece of stream as AsyncIterable<Buffer>) {
      signal?.throwIfAborted()
      budget.extract(e.path, piece.byteLength)
      pieces.push(piece)
    }
  } catch (err) {
    if (/too many bytes in the stream/.test((err as Error).message)) {
      throw tooLarge(`${budget.label} entry ${JSON.stringify(e.path)} unpacks to more than the ${e.size} bytes its header declares`)
    }
    throw err
  } finally {
    stream.destroy()
  }
  return Buffer.concat(pieces)
}

export async function readZip (source: ArchiveSource, budget: ArchiveBudget, select: (e: ArchiveEntry) => boolean, signal?: AbortSignal): Promise<Array<{ path: string, bytes: Buffer }>> {
  const invalid = (why: string) => badRequest(`${budget.label} is not a valid zip archive: ${why}`)
  let zip: yauzl.ZipFile
  try {
    zip = await openZip(source)
  } catch (err) {
    throw invalid((err as Error).message)
  }
  const extracted: Array<{ path: string, bytes: Buffer }> = []
  let declared = 0
  try {
    // The end-of-central-directory record says how many entries follow: refuse before reading them.
    if (zip.entryCount > budget.limits.entries) {
      throw tooLarge(`${budget.label} exceeds the limit of ${budget.limits.entries} entries (limits.archive.entries)`)
    }
    for await (const entry of zip.eachEntry()) {
      signal?.throwIfAborted()
      const e = entryOf(entry)
      budget.entry(e)
      budget.ratio(entry.compressedSize, entry.uncompressedSize, `${budget.label} entry ${JSON.stringify(e.path)}`)
      // Entries may share their compressed data (overlapping-file bombs): judge the sum too.
      declared += entry.uncompressedSize
      budget.ratio(zip.fileSize, declared)
      if (e.type === 'file' && select(e)) extracted.push({ path: e.path, bytes: await readEntry(zip, entry, e, budget, signal) })
      if (budget.entries % 1000 === 0) await turn()
    }
  } catch (err) {
    if (isRegistryError(err) || (err as Error).name === 'AbortError') throw err
    throw invalid((err as Error).message)
  } finally {
    zip.close()
  }
  return extracted
}
