// "Log this at most once per key per period": for events a peer repeats forever (a refused dial
// every backoff, a refused manifest every catch-up round).

/** Keys kept; the oldest is forgotten first (a forgotten key is simply logged again). */
const MAX_KEYS = 1000

export class OncePer {
  readonly #periodMs: number
  readonly #last = new Map<string, number>()

  constructor (periodMs: number) {
    this.#periodMs = periodMs
  }

  /** True if `key` was not due-checked true within the period (and records now). */
  due (key: string, now = Date.now()): boolean {
    const last = this.#last.get(key)
    if (last != null && now - last < this.#periodMs) return false
    this.#last.delete(key)
    if (this.#last.size >= MAX_KEYS) this.#last.delete(this.#last.keys().next().value as string)
    this.#last.set(key, now)
    return true
  }
}
