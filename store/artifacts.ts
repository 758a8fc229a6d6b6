// Artifact rows: every format's publish, delete and tag move goes through here, each in one
// transaction that also appends to the change log (what the mesh will sign and replicate).
import type { DB } from './db.ts'
import { conflict, notFound } from './errors.ts'
import type { Artifact, ArtifactDraft, ArtifactFile, BlobInfo, FileWithBlob } from './types.ts'
import { toInfo, type BlobRow } from './blobs.ts'
import type { ChangeDetail, ChangeKind } from './changes.ts'

interface ArtifactRow { id: number, repo: string, name: string, version: string, metadata: string, created_at: number, updated_at: number }

export interface PublishOptions {
  /** Replace an existing version's files and metadata (generic files); otherwise Conflict. */
  replace?: boolean
  /** Refuse versions that existed once and were deleted (npm's rule). */
  refuseTombstoned?: boolean
}

export class ArtifactIndex {
  readonly #db: DB
  readonly #s
  readonly #generations = new Map<string, number>()
  readonly #listeners = new Set<() => void>()
  #logged = false
  /** The least `at` the next local change may have (see #log). */
  #nextAt: number

  constructor (db: DB) {
    this.#db = db
    this.#s = {
      repo: db.prepare<[string], { name: string, format: string }>('SELECT name, format FROM repositories WHERE name = ?'),
      addRepo: db.prepare('INSERT INTO repositories (name, format, created_at) VALUES (?, ?, ?)'),
      get: db.prepare<[string, string, string], ArtifactRow>('SELECT * FROM artifacts WHERE repo = ? AND name = ? AND version = ?'),
      versions: db.prepare<[string, string], ArtifactRow>('SELECT * FROM artifacts WHERE repo = ? AND name = ? ORDER BY created_at, id'),
      insert: db.prepare<[string, string, string, string, number, number]>('INSERT INTO artifacts (repo, name, version, metadata, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)'),
      update: db.prepare('UPDATE artifacts SET metadata = ?, updated_at = ? WHERE id = ?'),
      del: db.prepare('DELETE FROM artifacts WHERE id = ?'),
      metadata: db.prepare<[number], { metadata: string }>('SELECT metadata FROM artifacts WHERE id = ?'),
      files: db.prepare<[number], { filename: string, cid: string }>('SELECT filename, cid FROM files WHERE artifact_id = ? ORDER BY filename'),
      delFiles: db.prepare('DELETE FROM files WHERE artifact_id = ?'),
      addFile: db.prepare('INSERT INTO files (artifact_id, filename, cid) VALUES (?, ?, ?)'),
      fileByName: db.prepare<[string, string, string], { id: number, cid: string }>(
        'SELECT a.id, f.cid FROM files f JOIN artifacts a ON a.id = f.artifact_id WHERE a.repo = ? AND a.name = ? AND f.filename = ?'),
      blob: db.prepare<[string], BlobRow>('SELECT * FROM blobs WHERE cid = ?'),
      absent: db.prepare<[], { repo: string, cid: string }>(`SELECT DISTINCT a.repo, f.cid FROM files f
        JOIN artifacts a ON a.id = f.artifact_id JOIN blobs b ON b.cid = f.cid WHERE b.present = 0 ORDER BY a.repo, f.cid`),
      tags: db.prepare<[string, string], { tag: string, version: string }>('SELECT tag, version FROM tags WHERE repo = ? AND name = ? ORDER BY tag'),
      setTag: db.prepare('INSERT INTO tags (repo, name, tag, version) VALUES (?, ?, ?, ?) ON CONFLICT (repo, name, tag) DO UPDATE SET version = excluded.version'),
      delTag: db.prepare('DELETE FROM tags WHERE repo = ? AND name = ? AND tag = ?'),
      delTagsTo: db.prepare('DELETE FROM tags WHERE repo = ? AND name = ? AND version = ?'),
      delAllTags: db.prepare('DELETE FROM tags WHERE repo = ? AND name = ?'),
      tomb: db.prepare<[string, string, string], { version: string }>('SELECT version FROM tombstones WHERE repo = ? AND name = ? AND version = ?'),
      addTomb: db.prepare('INSERT OR IGNORE INTO tombstones (repo, name, version, deleted_at) VALUES (?, ?, ?, ?)'),
      change: db.prepare('INSERT INTO changes (kind, repo, name, version, detail, at) VALUES (?, ?, ?, ?, ?, ?)'),
      nextAt: db.prepare<[], { at: number | null }>('SELECT MAX(CASE WHEN origin IS NULL THEN at ELSE at + 1 END) AS at FROM changes'),
      names: db.prepare<[string, string, number, number], { name: string }>(
        "SELECT DISTINCT name FROM artifacts WHERE repo = ? AND name LIKE ? ESCAPE '\\' ORDER BY name LIMIT ? OFFSET ?"),
      prefixed: db.prepare<[string, string], { name: string }>(
        "SELECT name FROM artifacts WHERE repo = ? AND name LIKE ? ESCAPE '\\' ORDER BY name LIMIT 10000"),
      countNames: db.prepare<[string, string], { n: number }>(
        "SELECT COUNT(DISTINCT name) AS n FROM artifacts WHERE repo = ? AND name LIKE ? ESCAPE '\\'")
    }
    this.#nextAt = this.#s.nextAt.get()?.at ?? 0
  }

  /** Calls `listener` after each commit that appended local changes (the mesh signer). Returns
   *  a function that removes it. */
  onCommit (listener: () => void): () => void {
    this.#listeners.add(listener)
    return () => { this.#listeners.delete(listener) }
  }

  /** Records a repository declared in the config; a repository's format never changes. */
  ensureRepository (name: string, format: string): void {
    const row = this.#s.repo.get(name)
    if (row == null) this.#s.addRepo.run(name, format, Date.now())
    else if (row.format !== format) {
      throw new Error(`repository "${name}" holds ${row.format} artifacts; the config now says format ${format}. Use a new repository name.`)
    }
  }

  get (repo: string, name: string, version: string): Artifact | undefined {
    const row = this.#s.get.get(repo, name, version)
    return row == null ? undefined : this.#toArtifact(row)
  }

  versions (repo: string, name: string): Artifact[] {
    return this.#s.versions.all(repo, name).map(r => this.#toArtifact(r))
  }

  filesWithBlobs (artifact: Artifact): FileWithBlob[] {
    return artifact.files.map(f => ({ ...f, blob: this.#blob(f.cid) }))
  }

  /** The blob behind a file of a package (e.g. an npm tarball name). */
  fileByName (repo: string, name: string, filename: string): { cid: string } | undefined {
    return this.#s.fileByName.get(repo, name, filename)
  }

  /** Runs several index changes as one transaction (nested calls become savepoints). */
  atomically<T> (fn: () => T): T {
    return this.#write(fn)
  }

  /** Repository format, or undefined if it is not declared here. */
  repositoryFormat (name: string): string | undefined {
    return this.#s.repo.get(name)?.format
  }

  /** A change made elsewhere at `at` (origin's clock) was applied here: local changes from now on
   *  get a later `at`, so they sort after what this node had seen when it made them. */
  observe (at: number): void {
    this.#nextAt = Math.max(this.#nextAt, at + 1)
  }

  /** Invalidates caches of (repo, name) after a write made outside this class (remote apply). */
  invalidate (repo: string, name: string): void {
    for (const key of [`${repo}\0${name}`, repo]) this.#generations.set(key, (this.#generations.get(key) ?? 0) + 1)
  }

  /** Runs `fn` in a transaction (a savepoint if nested) and, once the outermost one commits,
   *  tells the listeners. better-sqlite3 has no commit hook, hence the flag. */
  #write<T> (fn: () => T): T {
    try {
      return this.#db.transaction(fn).immediate()
    } finally {
      if (!this.#db.inTransaction && this.#logged) {
        this.#logged = false
        for (const l of this.#listeners) l()
      }
    }
  }

  /** True if this version existed once and was deleted. */
  isTombstoned (repo: string, name: string, version: string): boolean {
    return this.#s.tomb.get(repo, name, version) != null
  }

  publish (draft: ArtifactDraft, opts: PublishOptions = {}): Artifact {
    const { repo, name, version } = draft
    return this.#write(() => {
      if (opts.refuseTombstoned === true && this.#s.tomb.get(repo, name, version) != null) {
        throw conflict(`${name}@${version} was published before and deleted; versions cannot be reused`)
      }
      const now = Date.now()
      const existing = this.#s.get.get(repo, name, version)
      let id: number
      if (existing != null) {
        if (opts.replace !== true) throw conflict(`${name}@${version} already exists`)
        id = existing.id
        this.#s.update.run(JSON.stringify(draft.metadata), now, id)
        this.#s.delFiles.run(id)
      } else {
        id = Number(this.#s.insert.run(repo, name, version, JSON.stringify(draft.metadata), now, now).lastInsertRowid)
      }
      for (const f of draft.files) this.#s.addFile.run(id, f.filename, f.cid)
      this.#log('publish', repo, name, version, { files: draft.files, metadata: draft.metadata, ...(existing != null ? { replace: true } : {}) })
      return this.#toArtifact(this.#s.get.get(repo, name, version) as ArtifactRow)
    })
  }

  /** Adds files to a version, creating the version if it does not exist (a PyPI release gathers
   *  its wheels and sdist one upload at a time). Conflict if the package already has a file of
   *  that name in any version. `metadata` maps the current metadata (undefined for a new version)
   *  to the new one inside the transaction, so concurrent uploads to one version cannot lose
   *  each other's changes. */
  addFiles (repo: string, name: string, version: string, files: ArtifactFile[],
    metadata: (current: Record<string, unknown> | undefined) => Record<string, unknown>): Artifact {
    return this.#write(() => {
      for (const f of files) {
        if (this.#s.fileByName.get(repo, name, f.filename) != null) throw conflict(`${f.filename} already exists in ${name}`)
      }
      const now = Date.now()
      const existing = this.#s.get.get(repo, name, version)
      let id: number
      if (existing != null) {
        id = existing.id
        this.#s.update.run(JSON.stringify(metadata(JSON.parse(existing.metadata))), now, id)
      } else {
        id = Number(this.#s.insert.run(repo, name, version, JSON.stringify(metadata(undefined)), now, now).lastInsertRowid)
      }
      for (const f of files) this.#s.addFile.run(id, f.filename, f.cid)
      this.#log('add-files', repo, name, version, this.#state(id))
      return this.#toArtifact(this.#s.get.get(repo, name, version) as ArtifactRow)
    })
  }

  updateMetadata (repo: string, name: string, version: string, metadata: Record<string, unknown>): void {
    this.#write(() => {
      const row = this.#s.get.get(repo, name, version)
      if (row == null) throw notFound(`${name}@${version} not found`)
      this.#s.update.run(JSON.stringify(metadata), Date.now(), row.id)
      this.#log('metadata', repo, name, version, this.#state(row.id))
    })
  }

  /** Deletes one version; it stays tombstoned so immutable formats never accept it again. */
  remove (repo: string, name: string, version: string): void {
    this.#write(() => {
      const row = this.#s.get.get(repo, name, version)
      if (row == null) throw notFound(`${name}@${version} not found`)
      this.#s.del.run(row.id)
      this.#s.delTagsTo.run(repo, name, version)
      this.#s.addTomb.run(repo, name, version, Date.now())
      this.#log('delete', repo, name, version, {})
    })
  }

  removePackage (repo: string, name: string): number {
    return this.#write(() => {
      const rows = this.#s.versions.all(repo, name)
      if (rows.length === 0) throw notFound(`${name} not found`)
      for (const r of rows) {
        this.#s.del.run(r.id)
        this.#s.addTomb.run(repo, name, r.version, Date.now())
        this.#log('delete', repo, name, r.version, {})
      }
      this.#s.delAllTags.run(repo, name)
      return rows.length
    })
  }

  tags (repo: string, name: string): Record<string, string> {
    return Object.fromEntries(this.#s.tags.all(repo, name).map(r => [r.tag, r.version]))
  }

  setTag (repo: string, name: string, tag: string, version: string): void {
    this.#write(() => {
      if (this.#s.get.get(repo, name, version) == null) throw notFound(`${name}@${version} not found`)
      this.#s.setTag.run(repo, name, tag, version)
      this.#log('tag', repo, name, version, { tag })
    })
  }

  removeTag (repo: string, name: string, tag: string): void {
    this.#write(() => {
      if (this.#s.delTag.run(repo, name, tag).changes === 0) throw notFound(`tag ${tag} not found on ${name}`)
      this.#log('untag', repo, name, '', { tag })
    })
  }

  /** Package names in a repository containing `text` (case-insensitive), paginated. */
  searchNames (repo: string, text: string, limit: number, offset: number): { names: string[], total: number } {
    const like = '%' + escapeLike(text) + '%'
    return {
      names: this.#s.names.all(repo, like, limit, offset).map(r => r.name),
      total: this.#s.countNames.get(repo, like)?.n ?? 0
    }
  }

  /** Names starting with `prefix` (a folder listing for path-named artifacts). */
  listNames (repo: string, prefix: string): string[] {
    return this.#s.prefixed.all(repo, escapeLike(prefix) + '%').map(r => r.name)
  }

  /** A number that changes whenever anything about (repo, name) changes in this process, for
   *  caches of rendered documents. Every write goes through #log, so it cannot be missed. */
  /** Files of live artifacts whose blobs are known but not here (a mirror fetches them). */
  absentBlobs (): Array<{ repo: string, cid: string }> {
    return this.#s.absent.all()
  }

  generation (repo: string, name: string): number {
    return this.#generations.get(`${repo}\0${name}`) ?? 0
  }

  /** Changes whenever anything in `repo` changes (for caches of repository-wide listings). */
  repositoryGeneration (repo: string): number {
    return this.#generations.get(repo) ?? 0
  }

  /** Appends a local change. The mesh orders changes by `at`, so it never goes backwards (even
   *  if the clock does) and is later than any remote change applied here (a hybrid clock). */
  #log (kind: ChangeKind, repo: string, name: string, version: string, detail: ChangeDetail): void {
    this.invalidate(repo, name)
    this.#nextAt = Math.max(Date.now(), this.#nextAt)
    this.#s.change.run(kind, repo, name, version, JSON.stringify(detail), this.#nextAt)
    this.#logged = true
  }

  #state (id: number): ChangeDetail {
    const row = this.#s.metadata.get(id)
    return { files: this.#s.files.all(id), metadata: JSON.parse(row?.metadata ?? '{}') }
  }

  #blob (cid: string): BlobInfo {
    return toInfo(this.#s.blob.get(cid) as BlobRow)
  }

  #toArtifact (row: ArtifactRow): Artifact {
    return {
      repo: row.repo,
      name: row.name,
      version: row.version,
      metadata: JSON.parse(row.metadata),
      files: this.#s.files.all(row.id),
      createdAt: row.created_at,
      updatedAt: row.updated_at
    }
  }
}

const escapeLike = (s: string) => s.replace(/[\\%_]/g, c => '\\' + c)
