// Read-only views of what a node holds, for selecting a bundle and writing an inventory: which
// manifests (by origin and seq), which blobs each names, which blobs are here.
import * as dagCbor from '@ipld/dag-cbor'
import type { DB } from '../../store/db.ts'

export interface HeldManifest { origin: string, seq: number, repo: string, name: string, version: string }

/** Every manifest row, ordered by origin then seq (one read, no envelopes). */
export function heldManifests (db: DB): HeldManifest[] {
  return db.prepare<[], HeldManifest>('SELECT origin, seq, repo, name, version FROM manifests ORDER BY origin, seq').all()
}

/** CIDs of every blob whose bytes are here. */
export function presentBlobs (db: DB): string[] {
  return db.prepare<[], { cid: string }>('SELECT cid FROM blobs WHERE present = 1 ORDER BY cid').all().map(r => r.cid)
}

/** The blob CIDs a stored envelope's manifest names. It was verified when it was received or
 *  signed here, so this only decodes. */
export function filesOf (envelope: Uint8Array): Array<{ cid: string, size: number }> {
  const { payload } = dagCbor.decode<{ payload: Uint8Array }>(envelope)
  const m = dagCbor.decode<{ files?: Array<{ cid: string, size: number }> }>(payload)
  return (m.files ?? []).map(f => ({ cid: f.cid, size: f.size }))
}

/** Seq and prev of the manifests of `origin` held above `seq` (to follow its chain past a hole). */
export function linksAbove (db: DB, origin: string, seq: number): Array<{ seq: number, prev: number }> {
  return db.prepare<[string, number], { seq: number, prev: number }>('SELECT seq, prev FROM manifests WHERE origin = ? AND seq > ?').all(origin, seq)
}

/** Is manifest (origin, seq) in the manifest log? */
export const holds = (db: DB) => {
  const q = db.prepare<[string, number], { n: number }>('SELECT 1 AS n FROM manifests WHERE origin = ? AND seq = ?')
  return (origin: string, seq: number): boolean => q.get(origin, seq) != null
}
