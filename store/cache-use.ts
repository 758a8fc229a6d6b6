// When each cached blob was last served, for least-recently-used eviction. A cache hit only
// notes the time in memory; the notes are written in one transaction every `flushMs` (and before
// eviction reads them, and at stop), so the hot path never writes SQLite and a blob served a
// thousand times a minute costs one row update a minute.
import type { DB } from './db.ts'

export const CACHE_USE_FLUSH_MS = 60_000

export class CacheUse {
  readonly #db: DB
  readonly #pending = new Map<string, number>()
  readonly #s
  #timer?: ReturnType<typeof setInterval>

  constructor (db: DB) {
    this.#db = db
    this.#s = {
      upsert: db.prepare('INSERT INTO cache_use (cid, used_at) VALUES (?, ?) ON CONFLICT (cid) DO UPDATE SET used_at = MAX(used_at, excluded.used_at)'),
      get: db.prepare<[string], { used_at: number }>('SELECT used_at FROM cache_use WHERE cid = ?')
    }
  }

  /** Notes that `cid` was served (or fetched) now. */
  touch (cid: string, at = Date.now()): void {
    this.#pending.set(cid, Math.max(at, this.#pending.get(cid) ?? 0))
  }

  /** When `cid` was last served, noted or written (undefined: never since it was cached). */
  lastUsed (cid: string): number | undefined {
    return this.#pending.get(cid) ?? this.#s.get.get(cid)?.used_at
  }

  /** Writes what was noted since the last flush. */
  flush (): void {
    if (this.#pending.size === 0) return
    const batch = [...this.#pending]
    this.#pending.clear()
    try {
      this.#db.transaction(() => { for (const [cid, at] of batch) this.#s.upsert.run(cid, at) }).immediate()
    } catch (err) {
      for (const [cid, at] of batch) this.touch(cid, at) // kept for the next flush
      throw err
    }
  }

  start (flushMs = CACHE_USE_FLUSH_MS): void {
    this.#timer = setInterval(() => { try { this.flush() } catch {} }, flushMs)
    this.#timer.unref()
  }

  stop (): void {
    if (this.#timer != null) clearInterval(this.#timer)
    this.flush()
  }
}
