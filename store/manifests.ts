// The manifest log: every signed manifest this node holds (its own and other origins'), keyed by
// (origin, seq). Catch-up answers from it, so manifests travel across hops. Envelopes are opaque
// bytes here; mesh/manifest.ts encodes and verifies them.
//
// Each manifest names its origin's previous seq (`prev`; an origin's seqs have gaps, because its
// change log also holds rows applied from others). Following those links from 0 gives the
// contiguous watermark: every manifest of the origin up to it is held. Catch-up asks from there,
// so a manifest that arrived by gossip ahead of an earlier one never hides the earlier one.
import type { DB } from './db.ts'

export interface ManifestRecord {
  origin: string
  seq: number
  /** The origin's seq before this one (0: its first manifest). */
  prev: number
  kind: string
  repo: string
  name: string
  version: string
  timestamp: number
  envelope: Uint8Array
}

/** An origin's newest manifest held here (member visibility). Times in ms. */
export interface LastManifest { seq: number, timestamp: number, receivedAt: number }

interface Row extends Omit<ManifestRecord, 'envelope'> { envelope: Buffer }

const toRecord = (r: Row): ManifestRecord => ({ ...r, envelope: new Uint8Array(r.envelope) })

const COLUMNS = 'origin, seq, prev, kind, repo, name, version, timestamp, envelope'

export class ManifestLog {
  readonly #s
  readonly #insert: (m: ManifestRecord) => boolean

  constructor (db: DB) {
    this.#s = {
      insert: db.prepare(`INSERT OR IGNORE INTO manifests (${COLUMNS}, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
      get: db.prepare<[string, number], Row>(`SELECT ${COLUMNS} FROM manifests WHERE origin = ? AND seq = ?`),
      since: db.prepare<[string, number, number], Row>(`SELECT ${COLUMNS} FROM manifests WHERE origin = ? AND seq > ? ORDER BY seq LIMIT ?`),
      next: db.prepare<[string, number], { seq: number }>('SELECT seq FROM manifests WHERE origin = ? AND prev = ? ORDER BY seq LIMIT 1'),
      contiguous: db.prepare<[string], { seq: number }>('SELECT seq FROM manifest_origins WHERE origin = ?'),
      setContiguous: db.prepare('INSERT INTO manifest_origins (origin, seq) VALUES (?, ?) ON CONFLICT (origin) DO UPDATE SET seq = excluded.seq'),
      watermarks: db.prepare<[], { origin: string, seq: number }>('SELECT origin, seq FROM manifest_origins'),
      heads: db.prepare<[], { origin: string, seq: number }>('SELECT origin, MAX(seq) AS seq FROM manifests GROUP BY origin'),
      forVersion: db.prepare<[string, string, string, number], Row>(`SELECT ${COLUMNS} FROM manifests WHERE repo = ? AND name = ? AND version = ? ORDER BY timestamp, origin, seq LIMIT ?`),
      latest: db.prepare<[string], { seq: number | null }>('SELECT MAX(seq) AS seq FROM manifests WHERE origin = ?'),
      lastSeen: db.prepare<[string], LastManifest>('SELECT seq, timestamp, received_at AS receivedAt FROM manifests WHERE origin = ? ORDER BY seq DESC LIMIT 1')
    }
    this.#insert = db.transaction((m: ManifestRecord): boolean => {
      const s = this.#s
      if (s.insert.run(m.origin, m.seq, m.prev, m.kind, m.repo, m.name, m.version, m.timestamp, m.envelope, Date.now()).changes === 0) return false
      const from = s.contiguous.get(m.origin)?.seq ?? 0
      if (m.prev !== from) return true // a hole before it (or it was already counted)
      let seq = m.seq
      for (let n = s.next.get(m.origin, seq); n != null; n = s.next.get(m.origin, seq)) seq = n.seq
      s.setContiguous.run(m.origin, seq)
      return true
    })
  }

  /** Stores a manifest; true if it was new (the same (origin, seq) again changes nothing). */
  insert (m: ManifestRecord): boolean {
    return this.#insert(m)
  }

  get (origin: string, seq: number): ManifestRecord | undefined {
    const r = this.#s.get.get(origin, seq)
    return r == null ? undefined : toRecord(r)
  }

  /** Manifests of `origin` with seq > `seq`, oldest first, at most `limit` (a catch-up batch). */
  since (origin: string, seq: number, limit: number): ManifestRecord[] {
    return this.#s.since.all(origin, seq, limit).map(toRecord)
  }

  /** Every origin's manifests of one artifact version, oldest first, at most `limit` (a peer's
   *  lookup: what this node would also send it in catch-up). */
  forVersion (repo: string, name: string, version: string, limit: number): ManifestRecord[] {
    return this.#s.forVersion.all(repo, name, version, limit).map(toRecord)
  }

  /** Per origin, the contiguous watermark: every manifest of it up to this seq is held. */
  watermarks (): Map<string, number> {
    return new Map(this.#s.watermarks.all().map(r => [r.origin, r.seq]))
  }

  watermark (origin: string): number {
    return this.#s.contiguous.get(origin)?.seq ?? 0
  }

  /** Highest seq held per origin (above the watermark when some earlier one is missing). */
  heads (): Map<string, number> {
    return new Map(this.#s.heads.all().map(r => [r.origin, r.seq]))
  }

  /** The origin's highest-seq manifest held: seq, the manifest's timestamp, when it arrived
   *  (one index probe: the status asks per member, not per manifest). */
  lastSeen (origin: string): LastManifest | undefined {
    return this.#s.lastSeen.get(origin)
  }

  latest (origin: string): number {
    return this.#s.latest.get(origin)?.seq ?? 0
  }
}
