// Which held manifests still describe current state, and so which blobs they keep alive (the
// garbage collector, store/gc.ts) or a bundle must carry (node/bundle/select.ts).
//
// Per (repo, name, version), manifests of every origin are ordered as store/fold.ts folds them,
// by (timestamp, origin, seq). A manifest is superseded when a later one of the same version is
// a `delete` or a `publish` with `replace`: its files are then no longer that version's files on
// any node that holds both. Every other manifest counts, applied or not (policy `none`, an unknown
// repository, a conflict loser): conservative, since such a manifest may still be applied.
import type { DB } from './db.ts'

/** What a stored envelope's manifest says that matters here (mesh/manifest.ts decodes). */
export interface ManifestFacts { cids: string[], replace: boolean }
export type ManifestDecoder = (envelope: Uint8Array) => ManifestFacts

export interface ManifestRow { origin: string, seq: number, kind: string, repo: string, name: string, version: string, timestamp: number, envelope: Uint8Array }

type Order = [number, string, number]
const before = (a: Order, b: Order): boolean => a[0] !== b[0] ? a[0] < b[0] : a[1] !== b[1] ? a[1] < b[1] : a[2] < b[2]

export class CurrentManifests {
  readonly #decode: ManifestDecoder
  readonly #versions = new Map<string, { end?: Order, naming: Array<{ order: Order, cids: string[] }> }>()
  /** Envelopes that did not decode: they name nothing that can be seen. */
  undecodable = 0

  constructor (decode: ManifestDecoder) {
    this.#decode = decode
  }

  add (r: ManifestRow): void {
    const key = JSON.stringify([r.repo, r.name, r.version])
    const order: Order = [r.timestamp, r.origin, r.seq]
    let v = this.#versions.get(key)
    if (v == null) { v = { naming: [] }; this.#versions.set(key, v) }
    const end = (): void => { if (v.end == null || before(v.end, order)) v.end = order }
    if (r.kind === 'delete') { end(); return }
    let facts: ManifestFacts
    try { facts = this.#decode(r.envelope) } catch { this.undecodable++; return }
    if (r.kind === 'publish' && facts.replace) end()
    if (facts.cids.length > 0) v.naming.push({ order, cids: facts.cids })
  }

  /** True if a later delete or replace of its version supersedes this manifest. */
  superseded (r: Pick<ManifestRow, 'origin' | 'seq' | 'repo' | 'name' | 'version' | 'timestamp'>): boolean {
    const end = this.#versions.get(JSON.stringify([r.repo, r.name, r.version]))?.end
    return end != null && before([r.timestamp, r.origin, r.seq], end)
  }

  /** Blobs named by manifests not superseded (a replace's own files stay: it is the end). */
  liveBlobs (): Set<string> {
    const live = new Set<string>()
    for (const v of this.#versions.values()) {
      for (const m of v.naming) {
        if (v.end != null && before(m.order, v.end)) continue
        for (const cid of m.cids) live.add(cid)
      }
    }
    return live
  }
}

const COLUMNS = 'origin, seq, kind, repo, name, version, timestamp, envelope'

/** Every held manifest, read at once (inside the caller's read transaction if there is one). */
export function currentManifests (db: DB, decode: ManifestDecoder): CurrentManifests {
  const c = new CurrentManifests(decode)
  for (const r of db.prepare<[], ManifestRow>(`SELECT ${COLUMNS} FROM manifests`).iterate()) c.add(r)
  return c
}

/** The same, a page at a time, yielding to the event loop between pages (a node keeps serving). */
export async function currentManifestsPaged (db: DB, decode: ManifestDecoder, signal?: AbortSignal, pageSize = 500): Promise<CurrentManifests> {
  const c = new CurrentManifests(decode)
  const page = db.prepare<[string, string, number], ManifestRow>(
    `SELECT ${COLUMNS} FROM manifests WHERE origin > ? OR (origin = ? AND seq > ?) ORDER BY origin, seq LIMIT ${pageSize}`)
  for (let origin = '', seq = -1; ;) {
    signal?.throwIfAborted()
    const rows = page.all(origin, origin, seq)
    if (rows.length === 0) return c
    for (const r of rows) c.add(r)
    origin = rows[rows.length - 1].origin
    seq = rows[rows.length - 1].seq
    await new Promise(resolve => setImmediate(resolve))
  }
}
