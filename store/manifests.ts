// The manifest log: every signed manifest this node holds (its own and other origins'), keyed by
// (origin, seq). Catch-up answers from it, so manifests travel across hops. Envelopes are opaque
// bytes here; mesh/manifest.ts encodes and verifies them.
import type { DB } from './db.ts'

export interface ManifestRecord {
  origin: string
  seq: number
  kind: string
  repo: string
  name: string
  version: string
  timestamp: number
  envelope: Uint8Array
}

interface Row extends Omit<ManifestRecord, 'envelope'> { envelope: Buffer }

const toRecord = (r: Row): ManifestRecord => ({ ...r, envelope: new Uint8Array(r.envelope) })

export class ManifestLog {
  readonly #s

  constructor (db: DB) {
    this.#s = {
      insert: db.prepare(`INSERT OR IGNORE INTO manifests (origin, seq, kind, repo, name, version, timestamp, envelope, received_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
      get: db.prepare<[string, number], Row>('SELECT origin, seq, kind, repo, name, version, timestamp, envelope FROM manifests WHERE origin = ? AND seq = ?'),
      since: db.prepare<[string, number, number], Row>(
        'SELECT origin, seq, kind, repo, name, version, timestamp, envelope FROM manifests WHERE origin = ? AND seq > ? ORDER BY seq LIMIT ?'),
      watermarks: db.prepare<[], { origin: string, seq: number }>('SELECT origin, MAX(seq) AS seq FROM manifests GROUP BY origin'),
      watermark: db.prepare<[string], { seq: number | null }>('SELECT MAX(seq) AS seq FROM manifests WHERE origin = ?')
    }
  }

  /** Stores a manifest; true if it was new (the same (origin, seq) again changes nothing). */
  insert (m: ManifestRecord): boolean {
    return this.#s.insert.run(m.origin, m.seq, m.kind, m.repo, m.name, m.version, m.timestamp, m.envelope, Date.now()).changes > 0
  }

  get (origin: string, seq: number): ManifestRecord | undefined {
    const r = this.#s.get.get(origin, seq)
    return r == null ? undefined : toRecord(r)
  }

  /** Manifests of `origin` with seq > `seq`, oldest first, at most `limit` (a catch-up batch). */
  since (origin: string, seq: number, limit: number): ManifestRecord[] {
    return this.#s.since.all(origin, seq, limit).map(toRecord)
  }

  /** Highest seq held per origin (seqs may have gaps). */
  watermarks (): Map<string, number> {
    return new Map(this.#s.watermarks.all().map(r => [r.origin, r.seq]))
  }

  watermark (origin: string): number {
    return this.#s.watermark.get(origin)?.seq ?? 0
  }
}
