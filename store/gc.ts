// The blob garbage collector: deletes present blobs that nothing references, and orphan files.
//
// A blob is kept while any of these names it (store/README: "What gc keeps"):
// - a file of an artifact row (any repository: identical bytes are stored once);
// - a blob link (OCI: a blob pushed or mounted into an image stays readable by digest until it is
//   deleted through the OCI API, whether or not a manifest names it);
// - a held manifest (any origin, applied or not: policy `none`, unknown repository, conflict
//   loser) that is still current state (store/current-manifests.ts): its files count unless a
//   later manifest, in the fold's (timestamp, origin, seq) order, deleted its version or replaced
//   it (`publish` with `replace`). So once a delete is held its version's blobs are garbage here,
//   as on every node that folds the same manifests;
// - a local change not yet signed into a manifest (the signer needs the blob's row);
// - a blob younger than the grace period (a publish in flight between storing the bytes and
//   recording the artifact), read in this process within the grace period (a peer or a client
//   being served, chunk by chunk), or with a partial file (a fetch writing it).
// Blobs known only from manifests (present = 0) have no bytes here and are never touched.
// Each delete re-checks all of it inside an IMMEDIATE transaction (including manifests that
// arrived during the run) under the blob's commit lock, deletes the row, and moves the file aside
// in the same transaction (store/orphans.ts), so a concurrent commit of the same bytes survives.
import { existsSync, lstatSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import type { FileBlobStore } from './blobs.ts'
import type { DB } from './db.ts'
import { currentManifestsPaged, type ManifestDecoder, type ManifestFacts } from './current-manifests.ts'
import { moveAsideIfGarbage, sweepOrphans } from './orphans.ts'

export type { ManifestDecoder, ManifestFacts }

export interface GcDeps {
  db: DB
  store: FileBlobStore
  decode: ManifestDecoder
  /** This node's peer ID (its manifests' origin); unknown: every local change counts as unsigned. */
  self?: string
}

export interface GcOptions {
  graceMs: number
  dryRun?: boolean
  signal?: AbortSignal
  now?: number
}

export interface GcReport {
  dryRun: boolean
  /** Files without a present row (crash leftovers). */
  orphans: { count: number, bytes: number }
  /** Present blobs nothing references. */
  unreferenced: { count: number, bytes: number }
  /** What was deleted (or, dry run, would be). */
  blobs: Array<{ cid: string, size: number, kind: 'orphan' | 'unreferenced' }>
  /** Unreferenced by rows but kept, by reason. */
  spared: { young: number, inUse: number, manifest: number, unsigned: number }
  /** Stored envelopes that did not decode (they name nothing the collector can see). */
  undecodable: number
}

interface Candidate { cid: string, size: number, created_at: number }

export async function collectGarbage (deps: GcDeps, opts: GcOptions): Promise<GcReport> {
  const { db, store } = deps
  const now = opts.now ?? Date.now()
  const olderThan = now - opts.graceMs
  const dryRun = opts.dryRun === true
  const report: GcReport = { dryRun, orphans: { count: 0, bytes: 0 }, unreferenced: { count: 0, bytes: 0 }, blobs: [], spared: { young: 0, inUse: 0, manifest: 0, unsigned: 0 }, undecodable: 0 }

  const swept = await sweepOrphans(store, db, { graceMs: opts.graceMs, dryRun, signal: opts.signal, now })
  report.orphans = { count: swept.count, bytes: swept.bytes }
  for (const f of swept.files) report.blobs.push({ ...f, kind: 'orphan' })

  const s = {
    candidates: db.prepare<[], Candidate>(`SELECT cid, size, created_at FROM blobs b WHERE present = 1
      AND NOT EXISTS (SELECT 1 FROM files f WHERE f.cid = b.cid) AND NOT EXISTS (SELECT 1 FROM blob_links l WHERE l.cid = b.cid) ORDER BY cid`),
    row: db.prepare<[string], Candidate>('SELECT cid, size, created_at FROM blobs WHERE cid = ? AND present = 1'),
    file: db.prepare<[string], { one: number }>('SELECT 1 AS one FROM files WHERE cid = ? LIMIT 1'),
    link: db.prepare<[string], { one: number }>('SELECT 1 AS one FROM blob_links WHERE cid = ? LIMIT 1'),
    receivedSince: db.prepare<[number], { origin: string, seq: number }>('SELECT origin, seq FROM manifests WHERE received_at >= ?'),
    envelope: db.prepare<[string, number], { envelope: Buffer }>('SELECT envelope FROM manifests WHERE origin = ? AND seq = ?'),
    del: db.prepare('DELETE FROM blobs WHERE cid = ? AND present = 1')
  }
  const candidates = s.candidates.all()
  if (candidates.length === 0) return report
  const scanStart = Date.now()
  const current = await currentManifestsPaged(db, deps.decode, opts.signal)
  report.undecodable = current.undecodable
  const named = current.liveBlobs()
  const unsigned = unsignedBlobs(deps)
  store.forgetReadsBefore(olderThan)
  const inUse = (cid: string): boolean => store.lastRead(cid) > olderThan || existsSync(store.partialPath(cid))
  // Manifests that arrived during the run, decoded once each (undecodable: they might name anything).
  const arrived = new Map<string, ManifestFacts | undefined>()
  const namedByArrived = (cid: string): boolean => s.receivedSince.all(scanStart).some(m => {
    const key = `${m.origin}/${m.seq}`
    if (!arrived.has(key)) {
      const e = s.envelope.get(m.origin, m.seq)?.envelope
      arrived.set(key, e == null ? undefined : safeDecode(deps.decode, e))
    }
    const facts = arrived.get(key)
    return facts == null || facts.cids.includes(cid)
  })

  for (const c of candidates) {
    opts.signal?.throwIfAborted()
    if (unsigned.has(c.cid)) { report.spared.unsigned++; continue }
    if (named.has(c.cid)) { report.spared.manifest++; continue }
    if (c.created_at > olderThan) { report.spared.young++; continue }
    if (inUse(c.cid)) { report.spared.inUse++; continue }
    const path = store.pathOf(c.cid)
    let f: { path: string, ino: number } | undefined
    try {
      const st = lstatSync(path)
      // Renamed over lately: the same bytes committed again (maybe by another process), whose
      // row kept its old created_at.
      if (Math.max(st.mtimeMs, st.ctimeMs) > olderThan) { report.spared.young++; continue }
      f = { path, ino: st.ino }
    } catch {}
    if (!dryRun) {
      // Everything again, now, inside the transaction that deletes the row.
      const stillGarbage = (): boolean => {
        const row = s.row.get(c.cid)
        if (row == null || row.created_at > olderThan || s.file.get(c.cid) != null || s.link.get(c.cid) != null || inUse(c.cid)) return false
        return !unsignedBlobs(deps).has(c.cid) && !namedByArrived(c.cid)
      }
      const deleted = await store.withBlobLock(c.cid, async () => {
        if (f == null) {
          // The row's file is already gone (verify calls it missing): only the row goes.
          return db.transaction(() => {
            if (existsSync(path) || !stillGarbage()) return false
            s.del.run(c.cid)
            return true
          }).immediate()
        }
        const aside = moveAsideIfGarbage(db, store, f, olderThan, stillGarbage, () => { s.del.run(c.cid) })
        if (aside == null) return false
        await rm(aside, { force: true })
        return true
      })
      if (!deleted) continue
    }
    const size = f == null ? 0 : c.size
    report.unreferenced.count++
    report.unreferenced.bytes += size
    report.blobs.push({ cid: c.cid, size, kind: 'unreferenced' })
  }
  return report
}

function safeDecode (decode: ManifestDecoder, envelope: Uint8Array): ManifestFacts | undefined {
  try { return decode(envelope) } catch { return undefined }
}

/** Blobs named by local changes the signer has not turned into manifests yet (also spared by
 *  cache eviction, store/cache-evict.ts). */
export function unsignedBlobs (deps: Pick<GcDeps, 'db' | 'self'>): Set<string> {
  const signed = deps.self == null
    ? 0
    : deps.db.prepare<[string], { seq: number | null }>('SELECT MAX(seq) AS seq FROM manifests WHERE origin = ?').get(deps.self)?.seq ?? 0
  const out = new Set<string>()
  for (const r of deps.db.prepare<[number], { detail: string }>('SELECT detail FROM changes WHERE origin IS NULL AND seq > ?').all(signed)) {
    const files = (JSON.parse(r.detail) as { files?: Array<{ cid: string }> }).files ?? []
    for (const f of files) out.add(f.cid)
  }
  return out
}
