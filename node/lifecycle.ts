// Start parts in order; if a later one fails, stop the ones that started, in reverse; stop in
// reverse on shutdown too (js-libp2p's Startable/components pattern). A failed start leaves
// nothing open: no listener, no libp2p node, no SQLite handle.
import type { Logger } from 'pino'

interface Started { name: string, stop: () => Promise<void> | void }

export class Lifecycle {
  readonly #started: Started[] = []
  readonly #log: Logger | undefined
  #stopping: Promise<void> | undefined

  constructor (log?: Logger) { this.#log = log }

  /** Runs one startup step and records how to undo it. On failure, everything started so far is
   *  stopped and the error is rethrown, naming the step. */
  async start<T> (name: string, start: () => Promise<T> | T, stop?: (part: T) => Promise<void> | void): Promise<T> {
    if (this.#stopping != null) throw new Error(`cannot start ${name}: the node is stopping`)
    let part: T
    try {
      part = await start()
    } catch (err: any) {
      await this.stop()
      throw new Error(`startup failed at ${name}: ${err?.message ?? String(err)}`, { cause: err })
    }
    if (stop != null) this.#started.push({ name, stop: () => stop(part) })
    return part
  }

  /** Stops every started part, last first. A part that fails to stop is logged; the rest still
   *  stop. Idempotent: later calls wait for the first. */
  async stop (): Promise<void> {
    this.#stopping ??= (async () => {
      for (const part of this.#started.reverse()) {
        try { await part.stop() } catch (err) { this.#log?.error({ err, part: part.name }, 'stopping a part failed') }
      }
      this.#started.length = 0
    })()
    await this.#stopping
  }
}
