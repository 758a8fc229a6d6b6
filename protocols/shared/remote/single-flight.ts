// Concurrent callers asking for the same key share one run of the work: one upstream request
// however many clients ask for the same missing thing at once.
export class SingleFlight<T> {
  readonly #running = new Map<string, Promise<T>>()

  /** Joins the run for `key`, or starts `work` if none is running. */
  run (key: string, work: () => Promise<T>): Promise<T> {
    const running = this.#running.get(key)
    if (running != null) return running
    const p = work().finally(() => { if (this.#running.get(key) === p) this.#running.delete(key) })
    this.#running.set(key, p)
    return p
  }

  running (key: string): Promise<T> | undefined { return this.#running.get(key) }
}
