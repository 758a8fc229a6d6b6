// Reads of the change log: what the signer turns into manifests and what a remote apply re-folds.
// (ArtifactIndex writes local rows; store/apply.ts writes remote ones.)
import type { DB } from './db.ts'
import type { ArtifactFile } from './types.ts'

export type ChangeKind = 'publish' | 'add-files' | 'metadata' | 'delete' | 'tag' | 'untag'
export const CHANGE_KINDS: readonly ChangeKind[] = ['publish', 'add-files', 'metadata', 'delete', 'tag', 'untag']

/** Rows logged before the mesh existed: history only (see the migration in store/db.ts). */
export const PRE_MESH_ORIGIN = 'pre-mesh'

/** The state a change left behind. publish/add-files/metadata: every file of the version and its
 *  metadata after the change; tag/untag: the tag; delete: nothing. */
export interface ChangeDetail {
  files?: ArtifactFile[]
  metadata?: Record<string, unknown>
  tag?: string
  /** A publish that replaced an existing version on purpose (mutable formats: generic files). */
  replace?: boolean
}

export interface Change {
  seq: number
  kind: ChangeKind
  repo: string
  name: string
  version: string
  detail: ChangeDetail
  /** Milliseconds, on the origin's clock. */
  at: number
  /** null: this node. */
  origin: string | null
  /** The seq at the origin (null for local rows: their seq is `seq`). */
  originSeq: number | null
}

interface ChangeRow { seq: number, kind: ChangeKind, repo: string, name: string, version: string, detail: string, at: number, origin: string | null, origin_seq: number | null }

const toChange = (r: ChangeRow): Change => ({
  seq: r.seq, kind: r.kind, repo: r.repo, name: r.name, version: r.version, detail: JSON.parse(r.detail),
  at: r.at, origin: r.origin, originSeq: r.origin_seq
})

export class ChangeLog {
  readonly #s

  constructor (db: DB) {
    this.#s = {
      local: db.prepare<[number, number], ChangeRow>('SELECT * FROM changes WHERE origin IS NULL AND seq > ? ORDER BY seq LIMIT ?'),
      pkg: db.prepare<[string, string, string], ChangeRow>('SELECT * FROM changes WHERE repo = ? AND name = ? AND (origin IS NULL OR origin <> ?) ORDER BY seq'),
      remote: db.prepare<[string, number], { seq: number }>('SELECT seq FROM changes WHERE origin = ? AND origin_seq = ?'),
      insertRemote: db.prepare('INSERT INTO changes (kind, repo, name, version, detail, at, origin, origin_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
    }
  }

  /** Local changes after `seq`, oldest first. */
  localAfter (seq: number, limit: number): Change[] {
    return this.#s.local.all(seq, limit).map(toChange)
  }

  /** Every change of a package (local and remote, not pre-mesh history), in log order. */
  ofPackage (repo: string, name: string): Change[] {
    return this.#s.pkg.all(repo, name, PRE_MESH_ORIGIN).map(toChange)
  }

  hasRemote (origin: string, originSeq: number): boolean {
    return this.#s.remote.get(origin, originSeq) != null
  }

  insertRemote (c: Omit<Change, 'seq'> & { origin: string, originSeq: number }): void {
    this.#s.insertRemote.run(c.kind, c.repo, c.name, c.version, JSON.stringify(c.detail), c.at, c.origin, c.originSeq)
  }
}

/** A change made on another node, as its signed manifest states it (mesh/manifest.ts adds the
 *  envelope fields). Files carry what a receiver needs before it has the bytes. */
export interface RemoteChange {
  origin: string
  seq: number
  /** The origin's seq before this one (0: its first): lets receivers see holes. */
  prev: number
  timestamp: number
  kind: ChangeKind
  repo: string
  format: string
  name: string
  version: string
  tag?: string
  replace?: true
  files: RemoteFile[]
  metadata: Record<string, unknown>
}

export interface RemoteFile {
  filename: string
  cid: string
  size: number
  sha256: string
  sha512: string
  sha1: string
  md5?: string
  chunkSize: number
  /** BLAKE3 (hex) of the concatenated per-chunk BLAKE3 hashes. */
  chunkRoot: string
}
