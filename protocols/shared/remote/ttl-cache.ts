// Fetched metadata and upstream "not found" answers, each trusted for a while. Metadata past its
// TTL is still kept: when the upstream is down or slow it is served stale rather than an error.
export interface CachedDocument {
  body: Buffer
  contentType: string
  /** The upstream's validators, for a conditional refresh. */
  etag?: string
  lastModified?: string
  fetchedAt: number
}

/** Bounded: the oldest entries go first once `max` is reached (a Map iterates in insert order). */
export class TtlCache<V> {
  readonly #entries = new Map<string, { value: V, at: number }>()
  readonly #max: number
  constructor (max = 10_000) { this.#max = max }

  set (key: string, value: V, at = Date.now()): void {
    this.#entries.delete(key)
    this.#entries.set(key, { value, at })
    if (this.#entries.size > this.#max) this.#entries.delete(this.#entries.keys().next().value as string)
  }

  /** The value and its age in ms, however old. */
  get (key: string): { value: V, age: number } | undefined {
    const e = this.#entries.get(key)
    return e == null ? undefined : { value: e.value, age: Date.now() - e.at }
  }

  /** The value if younger than `ttl` ms. */
  fresh (key: string, ttl: number): V | undefined {
    const e = this.get(key)
    return e != null && e.age < ttl ? e.value : undefined
  }

  delete (key: string): void { this.#entries.delete(key) }
}
