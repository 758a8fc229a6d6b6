// Cache eviction: drops the local BYTES of cached blobs (artifacts a remote repository fetched
// from its upstream), least recently used first, for a repository's quota or `cache prune`.
//
// The artifact row stays, as a replicated row whose blob was never fetched does (blobs.present =
// 0): evicting on one node deletes nothing for the mesh (no delete manifest, which other sites
// would apply and catch-up would undo). The next request for it is served from a peer holding the
// bytes, else fetched from the upstream again and verified to be the same CID.
//
// A blob is evicted only if every row naming it is a cached artifact of a remote repository (never
// bytes a local artifact also uses), every blob link naming it is in a remote repository (OCI links
// a cached blob to its image), no unsigned local change names it (the signer reads the blob's row),
// and its file was not committed again since its row was written (a local publish of the same bytes
// between its put and its row: the rename refreshes ctime), unless that was a gc grace period ago.
// All of it is checked again inside the IMMEDIATE transaction that marks the row absent, under the
// blob's commit lock (store/orphans.ts moveAsideIfGarbage, as gc does).
import { lstatSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import type { FileBlobStore } from './blobs.ts'
import { cacheOrigin } from './cache-origin.ts'
import type { CacheUse } from './cache-use.ts'
import type { DB } from './db.ts'
import { unsignedBlobs } from './gc.ts'
import { moveAsideIfGarbage } from './orphans.ts'

export interface CacheDeps {
  db: DB
  store: FileBlobStore
  use: CacheUse
  /** Repositories of type remote in this node's config: only their rows and links count as cache. */
  remoteRepos: ReadonlySet<string>
  /** This node's peer ID (unsigned local changes are spared). */
  self?: string
  /** gc.grace: a file committed again this long ago is no longer a publish in flight. */
  graceMs: number
}

/** A present blob named by cached rows of a repository, with when it was last used. */
export interface CachedBlob { repo: string, cid: string, size: number, usedAt: number }

export interface EvictedBlob extends CachedBlob { artifacts: string[] }

export interface EvictionReport {
  dryRun: boolean
  evicted: EvictedBlob[]
  bytes: number
  /** Kept, by reason: shared with a local artifact, named by an unsigned change, committed again lately. */
  spared: { local: number, unsigned: number, recommitted: number }
}

type Refusal = 'local' | 'unsigned' | 'recommitted'

export class CacheEvictor {
  readonly #d: CacheDeps
  readonly #s

  constructor (deps: CacheDeps) {
    this.#d = deps
    const db = deps.db
    this.#s = {
      // Named by a row of the repository, or linked into one of its images (an OCI blob whose
      // manifest is not complete here yet).
      blobs: db.prepare<[string, string], { cid: string, size: number, used_at: number }>(`SELECT c.cid, b.size, COALESCE(u.used_at, b.created_at) AS used_at
        FROM (SELECT f.cid FROM files f JOIN artifacts a ON a.id = f.artifact_id WHERE a.repo = ? UNION SELECT l.cid FROM blob_links l WHERE l.repo = ?) c
        JOIN blobs b ON b.cid = c.cid AND b.present = 1 LEFT JOIN cache_use u ON u.cid = c.cid ORDER BY used_at, c.cid`),
      rows: db.prepare<[string], { repo: string, name: string, version: string, metadata: string }>(
        'SELECT a.repo, a.name, a.version, a.metadata FROM files f JOIN artifacts a ON a.id = f.artifact_id WHERE f.cid = ?'),
      links: db.prepare<[string], { repo: string }>('SELECT repo FROM blob_links WHERE cid = ?'),
      row: db.prepare<[string], { created_at: number, present: number }>('SELECT created_at, present FROM blobs WHERE cid = ?'),
      // Last uses of blobs gc has deleted since.
      forget: db.prepare('DELETE FROM cache_use WHERE cid NOT IN (SELECT cid FROM blobs)'),
      setAbsent: db.prepare('UPDATE blobs SET present = 0 WHERE cid = ? AND present = 1')
    }
  }

  /** Present cached blobs of `repo`, least recently used first. */
  cachedBlobs (repo: string): CachedBlob[] {
    this.#d.use.flush()
    return this.#s.blobs.all(repo, repo).map(r => ({ repo, cid: r.cid, size: r.size, usedAt: this.#d.use.lastUsed(r.cid) ?? r.used_at }))
      .sort((a, b) => a.usedAt - b.usedAt || (a.cid < b.cid ? -1 : 1))
  }

  /** Evicts least recently used cached blobs of `repo` (never `keep`) until the bytes it holds
   *  that only the cache uses are at most `quota`. */
  async enforceQuota (repo: string, quota: number, keep?: string): Promise<EvictionReport> {
    const report = emptyReport(false)
    const blobs = this.cachedBlobs(repo)
    if (blobs.reduce((n, b) => n + b.size, 0) <= quota) return report
    // Bytes a local artifact also uses are not the cache's: they stay whatever the quota says.
    const unsigned = unsignedBlobs(this.#d)
    const own = blobs.filter(b => this.#refusal(b.cid, unsigned) !== 'local')
    let held = own.reduce((n, b) => n + b.size, 0)
    for (const b of own) {
      if (held <= quota) break
      if (b.cid === keep) continue
      if (await this.#evict(b, report)) held -= b.size
    }
    return report
  }

  /** Evicts cached blobs of `repos` last used before `before` (dry run: only lists them). */
  async prune (repos: string[], before: number, dryRun: boolean): Promise<EvictionReport> {
    const report = emptyReport(dryRun)
    const seen = new Set<string>()
    const unsigned = unsignedBlobs(this.#d)
    for (const repo of repos) {
      for (const b of this.cachedBlobs(repo)) {
        if (b.usedAt >= before || seen.has(b.cid)) continue
        seen.add(b.cid)
        if (dryRun) {
          const why = this.#refusal(b.cid, unsigned)
          if (why != null) report.spared[why]++
          else this.#add(report, b)
          continue
        }
        await this.#evict(b, report)
      }
    }
    if (!dryRun) this.#s.forget.run()
    return report
  }

  async #evict (b: CachedBlob, report: EvictionReport): Promise<boolean> {
    const { store } = this.#d
    let refused: Refusal | undefined
    const evicted = await store.withBlobLock(b.cid, async () => {
      const now = Date.now()
      refused = this.#refusal(b.cid, unsignedBlobs(this.#d))
      if (refused != null) return false
      const path = store.pathOf(b.cid)
      let ino: number | undefined
      try { ino = lstatSync(path).ino } catch {}
      const still = (): boolean => { refused = this.#refusal(b.cid, unsignedBlobs(this.#d)); return refused == null && this.#s.row.get(b.cid)?.present === 1 }
      if (ino == null) {
        // The file is already gone (verify calls it missing): the row says so now.
        return this.#d.db.transaction(() => still() && this.#s.setAbsent.run(b.cid).changes === 1).immediate()
      }
      const aside = moveAsideIfGarbage(this.#d.db, store, { path, ino }, this.#recommitCutoff(b.cid, now), still, () => { this.#s.setAbsent.run(b.cid) })
      if (aside == null) { refused ??= 'recommitted'; return false }
      await rm(aside, { force: true })
      return true
    })
    if (!evicted) { if (refused != null) report.spared[refused]++; return false }
    this.#add(report, b)
    return true
  }

  #add (report: EvictionReport, b: CachedBlob): void {
    const artifacts = this.#s.rows.all(b.cid).filter(r => r.repo === b.repo).map(r => r.version === '' ? r.name : `${r.name}@${r.version}`)
    report.evicted.push({ ...b, artifacts })
    report.bytes += b.size
  }

  /** A file changed after this was committed again (its row, written after the rename, is older). */
  #recommitCutoff (cid: string, now: number): number {
    const createdAt = this.#s.row.get(cid)?.created_at ?? 0
    return Math.max(createdAt + 2, now - this.#d.graceMs)
  }

  /** Why `cid` must keep its bytes, or undefined if only the cache uses them. */
  #refusal (cid: string, unsigned: ReadonlySet<string>): Refusal | undefined {
    const { remoteRepos } = this.#d
    for (const r of this.#s.rows.all(cid)) {
      if (!remoteRepos.has(r.repo) || cacheOrigin(JSON.parse(r.metadata) as Record<string, unknown>) == null) return 'local'
    }
    for (const l of this.#s.links.all(cid)) if (!remoteRepos.has(l.repo)) return 'local'
    if (unsigned.has(cid)) return 'unsigned'
    return undefined
  }
}

const emptyReport = (dryRun: boolean): EvictionReport => ({ dryRun, evicted: [], bytes: 0, spared: { local: 0, unsigned: 0, recommitted: 0 } })
