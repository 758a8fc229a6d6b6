// Opening archives a client uploaded (npm tarballs, wheels, sdists, and every later format: jars,
// crates, gems, nupkgs, charts, conda packages, .deb/.rpm payloads) without letting one of them
// stall or exhaust the node. One entry point for every format:
// - the archive is streamed (from the store by CID, a file, or bytes in memory) and decompressed
//   by node:zlib on the libuv thread pool, with a yield to the event loop at least every MiB
//   parsed (archive-tar.ts), so other requests are served while a large archive is read
//   (bench/archive-inspect.ts measures the event loop's delay against the old synchronous path);
// - entry count, unpacked size, per-entry size and compression ratio are capped (ArchiveBudget),
//   and a limit hit is a TooLarge (413) naming the limit and its config key;
// - only the entries the caller selects are read into memory, under limits.archive.extractBytes;
// - anything malformed is a BadRequest (400) naming the archive.
// Adding a compression for tar (bz2, xz) is one entry in archive-tar.ts's DECOMPRESSORS.
import { createReadStream } from 'node:fs'
import { Readable } from 'node:stream'
import type { BlobStore } from '../../store/types.ts'
import { ArchiveBudget, type ArchiveEntry, type ArchiveLimits } from './archive-budget.ts'
import { readTar } from './archive-tar.ts'
import { readZip } from './archive-zip.ts'

export { DEFAULT_ARCHIVE_LIMITS, type ArchiveEntry, type ArchiveLimits } from './archive-budget.ts'

export type ArchiveFormat = 'tar' | 'tar.gz' | 'tar.zst' | 'zip'

/** Where the archive's bytes are. */
export type ArchiveSource =
  | { bytes: Uint8Array }
  | { path: string, size: number }
  | { store: Pick<BlobStore, 'open'>, cid: string, size: number }

export interface InspectOptions {
  format: ArchiveFormat
  limits: ArchiveLimits
  /** Names the archive in error messages ("tarball", "wheel demo-1.0-py3-none-any.whl"). */
  label: string
  /** Sees every entry in archive order; true reads that file's bytes into `extracted`. */
  select?: (entry: ArchiveEntry) => boolean
  signal?: AbortSignal
}

export interface ArchiveSummary {
  entries: number
  files: number
  /** Sum of the files' sizes. */
  unpackedBytes: number
  /** The selected files, in archive order. */
  extracted: Array<{ path: string, bytes: Buffer }>
}

const SLICE = 256 * 1024

/** The archive's bytes as a stream. */
export function openSource (source: ArchiveSource): Readable {
  if ('bytes' in source) {
    const bytes = source.bytes
    return Readable.from((function * () {
      for (let at = 0; at < bytes.byteLength; at += SLICE) yield bytes.subarray(at, at + SLICE)
    })(), { objectMode: false })
  }
  if ('path' in source) return createReadStream(source.path, { highWaterMark: SLICE })
  return source.store.open(source.cid)
}

/** Reads the whole archive within `opts.limits`; throws TooLarge or BadRequest. */
export async function inspectArchive (source: ArchiveSource, opts: InspectOptions): Promise<ArchiveSummary> {
  opts.signal?.throwIfAborted()
  const budget = new ArchiveBudget(opts.limits, opts.label)
  const select = opts.select ?? (() => false)
  const extracted = opts.format === 'zip'
    ? await readZip(source, budget, select, opts.signal)
    : await readTar(openSource(source), opts.format, budget, select, opts.signal)
  return { entries: budget.entries, files: budget.files, unpackedBytes: budget.unpackedBytes, extracted }
}
