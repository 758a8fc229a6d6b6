// What remote repositories hold: their cached artifacts with upstream, size, whether the bytes are
// here, and last use; and any repository's artifacts marked cached or not (the admin listing).
import { cacheFields } from './cache-origin.ts'
import type { CacheUse } from './cache-use.ts'
import type { DB } from './db.ts'

export interface CachedArtifact {
  repo: string
  name: string
  version: string
  upstream: string
  fetchedAt: number | null
  /** Last served (or fetched) here; null if never recorded. */
  lastUsedAt: number | null
  /** Sum of its files' sizes. */
  bytes: number
  /** Bytes of those files held here (evicted or never fetched ones are not). */
  presentBytes: number
}

export interface ListedArtifact {
  repo: string
  name: string
  version: string
  cached: boolean
  upstream?: string
  fetchedAt?: number | null
  files: Array<{ filename: string, cid: string, size: number, present: boolean }>
  createdAt: number
}

interface Row { id: number, repo: string, name: string, version: string, metadata: string, created_at: number }
interface FileRow { artifact_id: number, filename: string, cid: string, size: number, present: number }

export class CacheListing {
  readonly #s
  readonly #use: CacheUse

  constructor (db: DB, use: CacheUse) {
    this.#use = use
    this.#s = {
      artifacts: db.prepare<[string, number, number], Row>('SELECT id, repo, name, version, metadata, created_at FROM artifacts WHERE repo = ? ORDER BY name, version LIMIT ? OFFSET ?'),
      files: db.prepare<[string, number, number], FileRow>(`SELECT f.artifact_id, f.filename, f.cid, b.size, b.present FROM files f
        JOIN blobs b ON b.cid = f.cid WHERE f.artifact_id IN (SELECT id FROM artifacts WHERE repo = ? ORDER BY name, version LIMIT ? OFFSET ?) ORDER BY f.filename`)
    }
  }

  /** A repository's artifacts (paged), each marked cached (with its upstream) or not. */
  artifacts (repo: string, limit = 1000, offset = 0): ListedArtifact[] {
    const files = new Map<number, ListedArtifact['files']>()
    for (const f of this.#s.files.all(repo, limit, offset)) {
      const list = files.get(f.artifact_id) ?? []
      list.push({ filename: f.filename, cid: f.cid, size: f.size, present: f.present === 1 })
      files.set(f.artifact_id, list)
    }
    return this.#s.artifacts.all(repo, limit, offset).map(r => ({
      repo: r.repo, name: r.name, version: r.version, ...cacheFields(JSON.parse(r.metadata) as Record<string, unknown>), files: files.get(r.id) ?? [], createdAt: r.created_at
    }))
  }

  /** Cached artifacts of `repos`, least recently used first. */
  cached (repos: string[]): CachedArtifact[] {
    const out: CachedArtifact[] = []
    for (const repo of repos) {
      for (const a of this.artifacts(repo, Number.MAX_SAFE_INTEGER)) {
        if (!a.cached) continue
        const used = a.files.map(f => this.#use.lastUsed(f.cid)).filter((t): t is number => t != null)
        out.push({
          repo, name: a.name, version: a.version, upstream: a.upstream ?? '', fetchedAt: a.fetchedAt ?? null,
          lastUsedAt: used.length === 0 ? null : Math.max(...used),
          bytes: a.files.reduce((n, f) => n + f.size, 0),
          presentBytes: a.files.reduce((n, f) => n + (f.present ? f.size : 0), 0)
        })
      }
    }
    return out.sort((x, y) => (x.lastUsedAt ?? x.fetchedAt ?? 0) - (y.lastUsedAt ?? y.fetchedAt ?? 0))
  }
}
