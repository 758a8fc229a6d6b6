// What an archive may cost the node to open: every reader (tar, zip, and later formats) counts
// entries and bytes through one budget, so the limits and their messages are the same everywhere.
import { DEFAULT_ARCHIVE_LIMITS as CONFIG_DEFAULTS } from '../../config/schema.ts'
import { tooLarge } from '../../store/errors.ts'

/** `limits.archive` in the config (config/schema.ts). */
export interface ArchiveLimits {
  /** Entries of any kind (files, directories, links). */
  entries: number
  /** Sum of the sizes of the files, and of the decompressed stream. */
  unpackedBytes: number
  /** Size of any one file. */
  entryBytes: number
  /** Unpacked bytes per compressed byte, once more than RATIO_FLOOR bytes are unpacked. */
  ratio: number
  /** Bytes of the entries a caller extracts into memory (package.json, METADATA), together. */
  extractBytes: number
}

export const DEFAULT_ARCHIVE_LIMITS: ArchiveLimits = CONFIG_DEFAULTS

/** Below this many unpacked bytes the ratio is not judged: a small file of zeros or a tar of a few
 *  tiny files compresses far beyond any sane ratio, and the unpacked cap already bounds the work. */
export const RATIO_FLOOR = 16 * 1024 * 1024

export interface ArchiveEntry {
  /** As stored in the archive (forward slashes; not normalised). */
  path: string
  type: 'file' | 'directory' | 'link' | 'other'
  /** Declared unpacked size in bytes (0 for what is not a file). */
  size: number
}

export class ArchiveBudget {
  readonly limits: ArchiveLimits
  readonly label: string
  entries = 0
  files = 0
  unpackedBytes = 0
  extractedBytes = 0

  constructor (limits: ArchiveLimits, label: string) {
    this.limits = limits
    this.label = label
  }

  /** Counts an entry as its header announces it; throws TooLarge before its data is read. */
  entry (e: ArchiveEntry): void {
    const { limits, label } = this
    if (++this.entries > limits.entries) {
      throw tooLarge(`${label} exceeds the limit of ${limits.entries} entries (limits.archive.entries)`)
    }
    if (e.type !== 'file') return
    this.files++
    if (e.size > limits.entryBytes) {
      throw tooLarge(`${label} entry ${quote(e.path)} unpacks to ${e.size} bytes, over the limit of ${limits.entryBytes} bytes per entry (limits.archive.entryBytes)`)
    }
    this.unpackedBytes += e.size
    this.unpacked(this.unpackedBytes)
  }

  /** Checks a running total of unpacked bytes against the unpacked-size cap. */
  unpacked (bytes: number): void {
    if (bytes > this.limits.unpackedBytes) {
      throw tooLarge(`${this.label} unpacks to more than the limit of ${this.limits.unpackedBytes} bytes (limits.archive.unpackedBytes)`)
    }
  }

  /** Checks unpacked against compressed bytes (a stream so far, or one zip entry's sizes). */
  ratio (compressed: number, unpacked: number, what = this.label): void {
    if (unpacked > RATIO_FLOOR && unpacked > this.limits.ratio * Math.max(compressed, 1)) {
      throw tooLarge(`${what} exceeds the limit of ${this.limits.ratio}:1 on the compression ratio (limits.archive.ratio): ${compressed} bytes unpack to more than ${unpacked}`)
    }
  }

  /** Counts bytes of an extracted entry as they arrive. */
  extract (path: string, bytes: number): void {
    this.extractedBytes += bytes
    if (this.extractedBytes > this.limits.extractBytes) {
      throw tooLarge(`${this.label} entry ${quote(path)} is over the limit of ${this.limits.extractBytes} bytes for files the registry reads (limits.archive.extractBytes)`)
    }
  }
}

const quote = (path: string) => JSON.stringify(path.length > 200 ? path.slice(0, 200) + '...' : path)
