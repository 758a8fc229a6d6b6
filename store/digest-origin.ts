// Which signed manifest the SHA digests of a blob known from the mesh came from: the first remote
// change naming it (store/apply.ts records a blob's facts from the first manifest that names it).
// A replica records those digests without recomputing them (mesh/README.md, "Verify once at the
// origin"), so when a client refuses the bytes this names the member that signed the digest.
import { PRE_MESH_ORIGIN } from './changes.ts'
import type { DB } from './db.ts'

export interface DigestOrigin { origin: string, seq: number }

export function digestOrigin (db: DB): (cid: string) => DigestOrigin | undefined {
  const first = db.prepare<[string, string], { origin: string, origin_seq: number }>(
    `SELECT c.origin, c.origin_seq FROM changes c, json_each(c.detail, '$.files') f
     WHERE c.origin IS NOT NULL AND c.origin <> ? AND json_extract(f.value, '$.cid') = ? ORDER BY c.seq LIMIT 1`)
  return (cid) => {
    const r = first.get(PRE_MESH_ORIGIN, cid)
    return r == null ? undefined : { origin: r.origin, seq: r.origin_seq }
  }
}
