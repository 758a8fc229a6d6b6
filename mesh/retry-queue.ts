// Which absent blobs are fetched in the background, and when a failed fetch is tried again: the
// `mirror` policy's queue (a few at a time, retried every MIRROR_RETRY_MS) and blobs a client
// asked for that no peer served (retried when a peer connects, for WANTED_MS). The fetching itself
// is the BlobFetcher's; this only decides when.
import type { Logger } from 'pino'

/** Blobs fetched at once in the background for mirrored repositories. */
const MIRROR_CONCURRENCY = 2
/** A failed mirror fetch is tried again after this (sooner when a peer connects). */
export const MIRROR_RETRY_MS = 30_000
/** A fetch that failed while a client waited is retried when a peer connects, for this long. */
const WANTED_MS = 10 * 60_000

export interface RetryQueueInit {
  fetch: (cid: string) => Promise<unknown>
  /** Whether `cid` is known from a manifest and still absent here. */
  absent: (cid: string) => boolean
  /** Whether a fetch of `cid` runs now (a client asked). */
  running: (cid: string) => boolean
  signal: AbortSignal
  log: Logger
}

export class RetryQueue {
  readonly #i: RetryQueueInit
  readonly #queue: string[] = []
  #active = 0
  /** Fetches that failed and are tried again: when (mirrors: periodically; a blob a client asked
   *  for: Infinity, only when a peer connects) and until when. */
  readonly #failed = new Map<string, { at: number, until: number }>()
  #timer: ReturnType<typeof setInterval> | undefined

  constructor (init: RetryQueueInit) { this.#i = init }

  start (): void {
    this.#timer = setInterval(() => { this.retry(false) }, MIRROR_RETRY_MS / 3)
    this.#timer.unref?.()
  }

  stop (): void {
    clearInterval(this.#timer)
    this.#queue.length = 0
  }

  /** Fetches `cid` in the background, at most MIRROR_CONCURRENCY at once; a failure is tried
   *  again later (MIRROR_RETRY_MS, or when a peer connects). */
  mirror (cid: string): void {
    if (!this.#i.absent(cid) || this.#queue.includes(cid)) return
    this.#queue.push(cid)
    this.#drain()
  }

  /** A client wanted `cid` and no peer served it: fetch it again when a peer connects (perhaps
   *  its holder, back). */
  wanted (cid: string): void {
    if (this.#i.signal.aborted || !this.#i.absent(cid) || this.#failed.has(cid)) return
    this.#failed.set(cid, { at: Infinity, until: Date.now() + WANTED_MS })
  }

  /** Failed fetches not running again now. */
  waiting (): number {
    return [...this.#failed.keys()].filter(cid => !this.#i.running(cid)).length
  }

  /** Tries failed fetches again: those due (`all`: every one, as when a peer connected). */
  retry (all: boolean): void {
    const now = Date.now()
    for (const [cid, { at, until }] of this.#failed) {
      if (until < now) { this.#failed.delete(cid); continue }
      if (!all && at > now) continue
      if (this.#i.running(cid)) continue // running again already (a client asked)
      this.#failed.delete(cid)
      if (until === Infinity) { this.mirror(cid); continue }
      // In the background; if it fails again it stays wanted.
      this.#i.fetch(cid).catch(() => {
        if (!this.#i.signal.aborted && this.#i.absent(cid)) this.#failed.set(cid, { at: Infinity, until })
      })
    }
  }

  #drain (): void {
    while (this.#active < MIRROR_CONCURRENCY && this.#queue.length > 0 && !this.#i.signal.aborted) {
      const cid = this.#queue.shift() as string
      this.#active++
      this.#i.fetch(cid)
        .catch(() => {
          // Logged (with its cause) where every fetch ends.
          if (this.#i.signal.aborted) return
          if (this.#i.absent(cid)) this.#failed.set(cid, { at: Date.now() + MIRROR_RETRY_MS, until: Infinity })
        })
        .finally(() => { this.#active--; this.#drain() })
    }
  }
}
