// Tar archives, plain or compressed: the compressed bytes are counted, decompressed by node:zlib
// (asynchronously, on the thread pool), counted again, and parsed by `tar`'s Parser, which is
// handed only decompressed bytes. The budget sees each header before the entry's data arrives.
import { once } from 'node:events'
import { Transform, type Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { setImmediate as turn } from 'node:timers/promises'
import { createGunzip, createZstdDecompress } from 'node:zlib'
import { Parser, type ReadEntry } from 'tar'
import { badRequest, isRegistryError } from '../../store/errors.ts'
import type { ArchiveBudget, ArchiveEntry } from './archive-budget.ts'

type TarFormat = 'tar' | 'tar.gz' | 'tar.zst'

const ZLIB_CHUNK = 256 * 1024
/** How each compressed tar is unpacked; a new one (tar.xz, tar.bz2) needs only a Transform here. */
const DECOMPRESSORS: Record<TarFormat, (() => Transform) | null> = {
  tar: null,
  'tar.gz': () => createGunzip({ chunkSize: ZLIB_CHUNK }),
  'tar.zst': () => createZstdDecompress({ chunkSize: ZLIB_CHUNK })
}
const DESCRIPTION: Record<TarFormat, string> = { tar: 'tar', 'tar.gz': 'gzipped tar', 'tar.zst': 'zstd-compressed tar' }
/** Yield to the event loop at least this often (bytes parsed): a parse of bytes already in memory
 *  (an npm tarball) would otherwise run to the end in microtasks, never letting I/O in. */
const YIELD_EVERY = 1024 * 1024

function entryOf (entry: ReadEntry): ArchiveEntry {
  switch (entry.type) {
    case 'File': case 'OldFile': case 'ContiguousFile':
      return { path: entry.path, type: 'file', size: entry.size ?? 0 }
    case 'Directory': case 'GNUDumpDir':
      return { path: entry.path, type: 'directory', size: 0 }
    case 'SymbolicLink': case 'Link':
      return { path: entry.path, type: 'link', size: 0 }
    default:
      return { path: entry.path, type: 'other', size: 0 }
  }
}

export async function readTar (input: Readable, format: TarFormat, budget: ArchiveBudget, select: (e: ArchiveEntry) => boolean, signal?: AbortSignal): Promise<Array<{ path: string, bytes: Buffer }>> {
  const invalid = (why: string) => badRequest(`${budget.label} is not a valid ${DESCRIPTION[format]} archive: ${why}`)
  const extracted: Array<{ path: string, bytes: Buffer }> = []
  let failure: Error | undefined
  const fail = (err: unknown) => { failure ??= isRegistryError(err) ? err : invalid((err as Error).message) }

  const parser = new Parser({
    strict: true,
    // The parser would sniff and inflate brotli or zstd itself, synchronously and uncounted.
    brotli: false,
    zstd: false,
    onReadEntry: (entry: ReadEntry) => {
      try {
        if (failure != null) { entry.resume(); return }
        const e = entryOf(entry)
        budget.entry(e)
        if (e.type !== 'file' || !select(e)) { entry.resume(); return }
        const pieces: Buffer[] = []
        entry.on('data', (b: Buffer) => {
          try { budget.extract(e.path, b.byteLength); pieces.push(b) } catch (err) { fail(err) }
        })
        entry.on('end', () => { extracted.push({ path: e.path, bytes: Buffer.concat(pieces) }) })
      } catch (err) {
        fail(err)
        entry.resume() // the parser waits until every entry's body is consumed
      }
    }
  })
  parser.on('error', fail)
  parser.on('abort', fail)
  const ended = once(parser, 'end')
  ended.catch(() => {})

  let compressed = 0
  const countCompressed = new Transform({
    transform (chunk: Buffer, _enc, done) { compressed += chunk.byteLength; done(null, chunk) }
  })
  const decompress = DECOMPRESSORS[format]?.()
  let unpacked = 0
  let head = Buffer.alloc(0)
  let sinceTurn = 0
  const parse = async (stream: AsyncIterable<Buffer>): Promise<void> => {
    for await (const chunk of stream) {
      if (head.byteLength < 2) {
        head = Buffer.concat([head, chunk.subarray(0, 2)])
        // tar's Parser would inflate a gzip stream it finds here itself: synchronously, unbounded.
        if (head.byteLength >= 2 && head[0] === 0x1f && head[1] === 0x8b) throw invalid('it holds gzip data where tar headers should be')
      }
      unpacked += chunk.byteLength
      budget.unpacked(unpacked)
      if (decompress != null) budget.ratio(compressed, unpacked)
      parser.write(chunk)
      if (failure != null) throw failure
      sinceTurn += chunk.byteLength
      if (sinceTurn >= YIELD_EVERY) { sinceTurn = 0; await turn() }
    }
    // A tar is whole 512-byte blocks; the parser ignores a cut inside a header without a word.
    if (unpacked % 512 !== 0) throw invalid(`truncated: ${unpacked} bytes is not a whole number of 512-byte blocks`)
    parser.end()
    await Promise.race([ended, new Promise<void>((resolve) => { parser.once('error', () => resolve()) })])
    if (failure != null) throw failure
  }

  try {
    await (decompress == null
      ? pipeline(input, countCompressed, parse, { signal })
      : pipeline(input, countCompressed, decompress, parse, { signal }))
  } catch (err) {
    if (isRegistryError(err) || (err as Error).name === 'AbortError') throw err
    throw invalid((err as Error).message)
  }
  return extracted
}
