// Starts a file's writeback while it is still being written: every FLUSH_EVERY bytes a datasync
// runs in the background (at most one at a time), so the disk writes during the copy instead of
// all in the final fsync, which then has little left to do (measured: the final fsync of a 1 GiB
// export was ~2 s of idle wait). The final fsync stays the durability point: a failed early
// flush is ignored here because that fsync reports the same error. Used by export (one long
// bundle file); import's staged blobs were slower with it (bench/README.md, bundle.ts).
import type { FileHandle } from 'node:fs/promises'

const FLUSH_EVERY = 64 * 1024 * 1024

export class EarlyFlush {
  readonly #fh: FileHandle
  #since = 0
  #inFlight: Promise<void> | undefined

  constructor (fh: FileHandle) { this.#fh = fh }

  wrote (bytes: number): void {
    this.#since += bytes
    if (this.#since < FLUSH_EVERY || this.#inFlight != null) return
    this.#since = 0
    this.#inFlight = this.#fh.datasync().catch(() => {}).finally(() => { this.#inFlight = undefined })
  }

  /** Waits for a flush in flight (before the file is closed). */
  async settle (): Promise<void> { await this.#inFlight }
}
