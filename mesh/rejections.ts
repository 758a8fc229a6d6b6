// Manifests this node refused, by (origin, reason): logged once per pair per hour (catch-up offers
// a refused manifest again every ~30 s, forever), and listed with counts for /-/mesh/status.
import type { Logger } from 'pino'

/** A refusal is logged again after this long if it keeps happening. */
export const LOG_EVERY_MS = 60 * 60_000
/** Distinct (origin, reason) pairs kept; the least recently seen goes first. */
const MAX_KEPT = 200

export interface Rejection {
  /** The manifest's origin, or '?' when it could not be read (undecodable bytes). */
  origin: string
  reason: string
  count: number
  firstSeen: number
  lastSeen: number
  /** The latest detail: which manifest, why, and from which peer. */
  message: string
  via: string
  peer: string
}

export class RejectionLog {
  readonly #log: Logger
  readonly #kept = new Map<string, Rejection & { loggedAt: number }>()
  total = 0

  constructor (log: Logger) {
    this.#log = log
  }

  record (r: { origin?: string, reason: string, message: string, via: string, peer: string }, now = Date.now()): void {
    this.total++
    const origin = r.origin ?? '?'
    const key = JSON.stringify([origin, r.reason])
    let e = this.#kept.get(key)
    if (e == null) {
      e = { origin, reason: r.reason, count: 0, firstSeen: now, lastSeen: now, message: r.message, via: r.via, peer: r.peer, loggedAt: 0 }
      if (this.#kept.size >= MAX_KEPT) this.#kept.delete(this.#kept.keys().next().value as string)
    }
    this.#kept.delete(key) // re-inserted: the map stays in least-recently-seen order
    this.#kept.set(key, e)
    Object.assign(e, { count: e.count + 1, lastSeen: now, message: r.message, via: r.via, peer: r.peer })
    if (now - e.loggedAt < LOG_EVERY_MS) return
    const repeats = e.loggedAt === 0 ? undefined : e.count
    e.loggedAt = now
    this.#log.warn({ origin, reason: r.reason, error: r.message, via: r.via, peer: r.peer, ...(repeats != null ? { count: repeats } : {}), nextLogInMs: LOG_EVERY_MS },
      'manifest rejected')
  }

  /** Distinct rejections, most recent first. */
  recent (): Rejection[] {
    return [...this.#kept.values()].reverse().map(({ loggedAt: _, ...r }) => r)
  }
}
