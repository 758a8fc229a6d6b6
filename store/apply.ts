// Applies a verified remote change (a manifest) to the index, in one transaction: the envelope
// joins the manifest log (so it is forwarded), the change joins the change log with its origin
// (so it is never signed as ours), and the package is re-folded from all its changes
// (store/fold.ts), so the result does not depend on arrival order. Blobs need not be here yet:
// they are recorded as known but absent (FileBlobStore.describe), and fetched later.
import { createHash } from 'node:crypto'
import type { Logger } from 'pino'
import type { ArtifactIndex } from './artifacts.ts'
import type { FileBlobStore } from './blobs.ts'
import { ChangeLog, type RemoteChange } from './changes.ts'
import type { DB } from './db.ts'
import { canonicalJson, foldPackage, sameFiles, type ChangeRef, type FoldConflict } from './fold.ts'
import type { ManifestLog } from './manifests.ts'

export interface ApplyDeps {
  db: DB
  artifacts: ArtifactIndex
  store: FileBlobStore
  manifests: ManifestLog
  /** This node's peer ID: its own (origin NULL) changes sort under it. */
  self: string
  /** Whether this node applies changes to `repo` (replication policy `none`: it only forwards
   *  them). Read per manifest, so a policy edit applies to what arrives next. */
  replicates?: (repo: string) => boolean
  /** The format's own rules for what a local publish may name (node/ passes
   *  FormatHandler.validateArtifact); throws (BadRequest) to refuse the change, with the reason. */
  validate?: (format: string, change: RemoteChange) => void
  log?: Logger
}

export type ApplyStatus =
  | 'applied'              // new; the index now reflects it (it may have lost a conflict)
  | 'duplicate'            // held already: nothing changed
  | 'own'                  // this node's own change coming back: nothing to apply
  | 'unknown-repository'   // kept in the manifest log for forwarding, not applied
  | 'not-replicated'       // its repository's policy is `none`: kept for forwarding, not applied
  | 'format-mismatch'      // the local repository of that name holds another format
  | 'blob-mismatch'        // describes a blob differently from its bytes here: kept, not applied
  | 'invalid'              // names what the format's rules refuse (`reason`): kept, not applied
  | 'equivocation'         // another envelope of the same (origin, seq) is held and wins: kept as evidence

export interface ConflictReport { repo: string, name: string, version: string, winner: ChangeRef, loser: ChangeRef }
/** Two envelopes signed by one origin for one seq: both are kept, the lower hash wins everywhere. */
export interface EquivocationReport { origin: string, seq: number, winner: string, loser: string }
export interface ApplyResult {
  status: ApplyStatus
  conflicts: ConflictReport[]
  /** Why the change was refused (status `invalid`). */
  reason?: string
  /** Set when this envelope revealed an equivocation (whichever of the two won). */
  equivocation?: EquivocationReport
}

/** SHA-256 (hex) of an envelope: the gossip message id, and the equivocation tie-break. */
export const envelopeHash = (envelope: Uint8Array): string => createHash('sha256').update(envelope).digest('hex')

export class RemoteApplier {
  readonly #d: ApplyDeps
  readonly #changes: ChangeLog
  readonly #s

  constructor (deps: ApplyDeps) {
    this.#d = deps
    this.#changes = new ChangeLog(deps.db)
    const db = deps.db
    this.#s = {
      get: db.prepare<[string, string, string], { id: number, metadata: string }>('SELECT id, metadata FROM artifacts WHERE repo = ? AND name = ? AND version = ?'),
      files: db.prepare<[number], { filename: string, cid: string }>('SELECT filename, cid FROM files WHERE artifact_id = ? ORDER BY filename'),
      insert: db.prepare('INSERT INTO artifacts (repo, name, version, metadata, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)'),
      update: db.prepare('UPDATE artifacts SET metadata = ?, updated_at = ? WHERE id = ?'),
      del: db.prepare('DELETE FROM artifacts WHERE id = ?'),
      versionsOf: db.prepare<[string, string], { id: number, version: string }>('SELECT id, version FROM artifacts WHERE repo = ? AND name = ?'),
      delFiles: db.prepare('DELETE FROM files WHERE artifact_id = ?'),
      addFile: db.prepare('INSERT INTO files (artifact_id, filename, cid) VALUES (?, ?, ?)'),
      // Formats that scope blob reads to a (repository, name) (OCI) serve what its artifacts name.
      link: db.prepare('INSERT OR IGNORE INTO blob_links (repo, name, cid, created_at) VALUES (?, ?, ?, ?)'),
      addTomb: db.prepare('INSERT OR IGNORE INTO tombstones (repo, name, version, deleted_at) VALUES (?, ?, ?, ?)'),
      tags: db.prepare<[string, string], { tag: string, version: string }>('SELECT tag, version FROM tags WHERE repo = ? AND name = ?'),
      setTag: db.prepare('INSERT INTO tags (repo, name, tag, version) VALUES (?, ?, ?, ?) ON CONFLICT (repo, name, tag) DO UPDATE SET version = excluded.version'),
      delTag: db.prepare('DELETE FROM tags WHERE repo = ? AND name = ? AND tag = ?'),
      conflicts: db.prepare<[number], { repo: string, name: string, version: string, winner_origin: string, winner_seq: number, loser_origin: string, loser_seq: number, detected_at: number }>(
        'SELECT * FROM conflicts ORDER BY detected_at DESC, rowid DESC LIMIT ?'),
      conflict: db.prepare<[string, number], { winner_origin: string, winner_seq: number }>('SELECT winner_origin, winner_seq FROM conflicts WHERE loser_origin = ? AND loser_seq = ?'),
      evidence: db.prepare('INSERT OR IGNORE INTO equivocations (origin, seq, hash, envelope, detected_at) VALUES (?, ?, ?, ?, ?)'),
      equivocators: db.prepare<[], { origin: string, seqs: number, envelopes: number, first: number, last: number }>(
        'SELECT origin, COUNT(DISTINCT seq) AS seqs, COUNT(*) AS envelopes, MIN(detected_at) AS first, MAX(detected_at) AS last FROM equivocations GROUP BY origin ORDER BY last DESC'),
      replaceManifest: db.prepare('UPDATE manifests SET prev = ?, kind = ?, repo = ?, name = ?, version = ?, timestamp = ?, envelope = ? WHERE origin = ? AND seq = ?'),
      appliedChange: db.prepare<[string, number], { repo: string, name: string }>('SELECT repo, name FROM changes WHERE origin = ? AND origin_seq = ?'),
      dropChange: db.prepare('DELETE FROM changes WHERE origin = ? AND origin_seq = ?'),
      addConflict: db.prepare(`INSERT INTO conflicts (loser_origin, loser_seq, repo, name, version, winner_origin, winner_seq, detected_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (loser_origin, loser_seq) DO UPDATE SET winner_origin = excluded.winner_origin, winner_seq = excluded.winner_seq, detected_at = excluded.detected_at`)
    }
  }

  /** Applies `change`, which the caller verified (mesh/manifest.ts openEnvelope) from `envelope`. */
  applyRemote (change: RemoteChange, envelope: Uint8Array): ApplyResult {
    return this.applyMany([{ change, envelope }])[0]
  }

  /** Applies a batch (a catch-up page) in one transaction, re-folding each package it touches
   *  once rather than once per manifest. Conflicts are reported on the manifest that revealed
   *  them (the last applied one of that package). */
  applyMany (items: Array<{ change: RemoteChange, envelope: Uint8Array }>): ApplyResult[] {
    const results = this.#d.db.transaction((): ApplyResult[] => {
      const out: ApplyResult[] = []
      const touched = new Map<string, number>() // package -> index of its last applied manifest
      const undone = new Set<string>() // packages an equivocation loser had changed
      for (const { change, envelope } of items) {
        const result: ApplyResult = { status: 'duplicate', conflicts: [] }
        out.push(result)
        // A losing envelope that was applied leaves its package to be folded again without it.
        const replaced = (repo: string, name: string): void => {
          const key = JSON.stringify([repo, name])
          touched.set(key, out.length - 1)
          undone.add(key)
        }
        Object.assign(result, this.#admit(change, envelope, replaced))
        if (result.status === 'applied') touched.set(JSON.stringify([change.repo, change.name]), out.length - 1)
      }
      for (const [key, i] of touched) {
        const [repo, name] = JSON.parse(key) as [string, string]
        out[i].conflicts = this.#refold(repo, name, undone.has(key))
      }
      return out
    }).immediate()
    for (const c of results.flatMap(r => r.conflicts)) this.#d.log?.warn(c, 'manifest conflict')
    for (const r of results) if (r.equivocation != null) this.#d.log?.warn(r.equivocation, 'manifest equivocation: two envelopes signed for one seq')
    return results
  }

  /** Origins that signed two envelopes for one seq, with how many seqs and envelopes. */
  equivocations (): Array<{ origin: string, seqs: number, envelopes: number, firstSeen: number, lastSeen: number }> {
    return this.#s.equivocators.all().map(r => ({ origin: r.origin, seqs: r.seqs, envelopes: r.envelopes, firstSeen: r.first, lastSeen: r.last }))
  }

  /** Conflicts recorded so far, newest first (for the admin API). */
  conflicts (limit = 100): Array<ConflictReport & { detectedAt: number }> {
    return this.#s.conflicts.all(limit).map(r => ({
      repo: r.repo, name: r.name, version: r.version, detectedAt: r.detected_at,
      winner: { origin: r.winner_origin, seq: r.winner_seq }, loser: { origin: r.loser_origin, seq: r.loser_seq }
    }))
  }

  /** Logs the manifest and the change; the caller re-folds the package (and, when this envelope
   *  displaced an applied one of the same seq, `replaced` names the package that one changed). */
  #admit (change: RemoteChange, envelope: Uint8Array, replaced: (repo: string, name: string) => void): Omit<ApplyResult, 'conflicts'> {
    const { artifacts, store, manifests, self } = this.#d
    const { origin, seq, repo, name } = change
    const record = { origin, seq, prev: change.prev, kind: change.kind, repo, name, version: change.version, timestamp: change.timestamp, envelope }
    let equivocation: EquivocationReport | undefined
    if (!manifests.insert(record) && origin !== self) {
      const held = manifests.get(origin, seq)
      if (held != null && !Buffer.from(held.envelope).equals(envelope)) {
        // Equivocation: the origin signed two manifests for one seq. Every node keeps both and
        // holds (forwards, applies) the one with the lower hash, whichever arrived first.
        const [mine, theirs] = [envelopeHash(envelope), envelopeHash(held.envelope)]
        const now = Date.now()
        this.#s.evidence.run(origin, seq, theirs, held.envelope, now)
        this.#s.evidence.run(origin, seq, mine, envelope, now)
        equivocation = { origin, seq, winner: mine < theirs ? mine : theirs, loser: mine < theirs ? theirs : mine }
        if (mine > theirs) return { status: 'equivocation', equivocation }
        this.#s.replaceManifest.run(change.prev, change.kind, repo, name, change.version, change.timestamp, envelope, origin, seq)
        const applied = this.#s.appliedChange.get(origin, seq)
        if (applied != null) {
          this.#s.dropChange.run(origin, seq)
          replaced(applied.repo, applied.name)
        }
      }
    }
    const result = (status: ApplyStatus, reason?: string): Omit<ApplyResult, 'conflicts'> =>
      ({ status, ...(reason != null ? { reason } : {}), ...(equivocation != null ? { equivocation } : {}) })
    if (origin === self) return result('own')
    if (this.#changes.hasRemote(origin, seq)) return result('duplicate')
    const format = artifacts.repositoryFormat(repo)
    if (format == null) return result('unknown-repository')
    if (this.#d.replicates?.(repo) === false) return result('not-replicated')
    if (format !== change.format) return result('format-mismatch')
    try {
      this.#d.validate?.(format, change)
    } catch (err) {
      return result('invalid', (err as Error).message)
    }

    // The CID is the BLAKE3 of the bytes, so facts hashed here are the truth: a manifest that
    // contradicts them is kept (it was signed; catch-up moves on) but not applied.
    const lies = change.files.some(f => {
      const known = store.describe(f.cid)
      return known?.present === true && (known.size !== f.size || known.sha256 !== f.sha256 || (known.sha512 !== '' && known.sha512 !== f.sha512) || (known.sha1 !== '' && known.sha1 !== f.sha1))
    })
    if (lies) return result('blob-mismatch')
    for (const f of change.files) {
      if (store.describe(f.cid) == null) store.recordRemote({ ...f, md5: f.md5 ?? null })
    }
    this.#changes.insertRemote({
      kind: change.kind, repo, name, version: change.version, at: change.timestamp, origin, originSeq: seq,
      detail: {
        files: change.files.map(f => ({ filename: f.filename, cid: f.cid })),
        metadata: change.metadata,
        ...(change.tag != null ? { tag: change.tag } : {}),
        ...(change.replace === true ? { replace: true } : {})
      }
    })
    artifacts.observe(change.timestamp)
    return result('applied')
  }

  /** Rewrites what differs between the index and the fold of all the package's changes. Returns
   *  conflicts not reported before. `prune`: a change was removed (an equivocation loser), so a
   *  version no change accounts for any more goes. */
  #refold (repo: string, name: string, prune = false): ConflictReport[] {
    const state = foldPackage(this.#changes.ofPackage(repo, name), this.#d.self)
    let changed = false
    if (prune) {
      for (const v of this.#s.versionsOf.all(repo, name)) {
        if (!state.versions.has(v.version)) { this.#s.del.run(v.id); changed = true }
      }
    }
    for (const [version, v] of state.versions) {
      const cur = this.#s.get.get(repo, name, version)
      if (!v.live) {
        if (cur != null) { this.#s.del.run(cur.id); changed = true }
        this.#s.addTomb.run(repo, name, version, v.updatedAt)
        continue
      }
      for (const f of v.files) this.#s.link.run(repo, name, f.cid, v.updatedAt)
      const metadata = JSON.stringify(v.metadata)
      if (cur == null) {
        const id = Number(this.#s.insert.run(repo, name, version, metadata, v.createdAt, v.updatedAt).lastInsertRowid)
        for (const f of v.files) this.#s.addFile.run(id, f.filename, f.cid)
        changed = true
        continue
      }
      const files = this.#s.files.all(cur.id)
      if (!sameFiles(files, v.files)) {
        this.#s.delFiles.run(cur.id)
        for (const f of v.files) this.#s.addFile.run(cur.id, f.filename, f.cid)
        changed = true
      }
      if (canonicalJson(JSON.parse(cur.metadata)) !== canonicalJson(v.metadata)) {
        this.#s.update.run(metadata, v.updatedAt, cur.id)
        changed = true
      }
    }
    const current = new Map(this.#s.tags.all(repo, name).map(r => [r.tag, r.version]))
    for (const tag of current.keys()) {
      if (!state.tags.has(tag)) { this.#s.delTag.run(repo, name, tag); changed = true }
    }
    for (const [tag, version] of state.tags) {
      if (current.get(tag) !== version) { this.#s.setTag.run(repo, name, tag, version); changed = true }
    }
    if (changed) this.#d.artifacts.invalidate(repo, name)
    return state.conflicts.flatMap(c => this.#record(repo, name, c))
  }

  #record (repo: string, name: string, c: FoldConflict): ConflictReport[] {
    const seen = this.#s.conflict.get(c.loser.origin, c.loser.seq)
    if (seen?.winner_origin === c.winner.origin && seen.winner_seq === c.winner.seq) return []
    this.#s.addConflict.run(c.loser.origin, c.loser.seq, repo, name, c.version, c.winner.origin, c.winner.seq, Date.now())
    return [{ repo, name, version: c.version, winner: c.winner, loser: c.loser }]
  }
}
