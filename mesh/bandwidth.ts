// The upload cap (peering file `uploadBandwidth`, bytes/s): one token bucket shared by every
// stream this node serves to peers, so the cap holds however many peers pull at once.
// Requests queue in order; the rate is read on every take, so an edit of the peering file
// applies to the next chunk.

/** Enough burst for one 1 MiB chunk at once, and no more than ~a quarter second at the cap. */
const MIN_BURST = 1024 * 1024

export class TokenBucket {
  readonly #rate: () => number | null
  #tokens = MIN_BURST
  #at = performance.now()
  #queue: Promise<void> = Promise.resolve()

  /** `rate`: bytes per second, or null for unlimited. */
  constructor (rate: () => number | null) {
    this.#rate = rate
  }

  /** Resolves when `bytes` may be sent. Waiters are served in order. */
  async take (bytes: number, signal?: AbortSignal): Promise<void> {
    if (this.#rate() == null) return
    const turn = this.#queue.then(async () => { await this.#take(bytes, signal) })
    this.#queue = turn.catch(() => {})
    await turn
  }

  async #take (bytes: number, signal?: AbortSignal): Promise<void> {
    const rate = this.#rate()
    if (rate == null) return
    const burst = Math.max(MIN_BURST, rate / 4)
    const now = performance.now()
    this.#tokens = Math.min(burst, this.#tokens + (now - this.#at) * rate / 1000)
    this.#at = now
    this.#tokens -= bytes
    // In debt: wait until the bucket has refilled to zero (a chunk larger than the burst still
    // goes out whole, then the next waits longer).
    if (this.#tokens < 0) await sleep(-this.#tokens / rate * 1000, signal)
  }
}

async function sleep (ms: number, signal?: AbortSignal): Promise<void> {
  signal?.throwIfAborted()
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve() }, ms)
    const onAbort = (): void => { clearTimeout(timer); reject(signal?.reason) }
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}
