// Cache management of remote repositories in the node: last use of cached blobs (store/cache-use.ts),
// each repository's `quota` enforced after a fetch commits, and the admin API that `akmesh cache`
// uses while the node runs (only the process that commits blobs may evict: its commit locks are
// in memory):
//   GET  /-/cache[?repo=R]                                  cached artifacts, least recently used first
//   POST /-/cache/prune?older-than=30d[&repo=R][&dry-run=1]  evicts cached blobs not used for that long
//   GET  /-/artifacts?repo=R[&limit=&offset=]               a repository's artifacts, marked cached
import Router from '@koa/router'
import type { Logger } from 'pino'
import { millis } from '../config/duration.ts'
import type { Config } from '../config/schema.ts'
import type { FileBlobStore } from '../store/blobs.ts'
import { CacheEvictor, type EvictionReport } from '../store/cache-evict.ts'
import { CacheListing, type CachedArtifact } from '../store/cache-list.ts'
import { CacheUse } from '../store/cache-use.ts'
import type { DB } from '../store/db.ts'
import { badRequest } from '../store/errors.ts'
import type { CacheHooks } from '../protocols/shared/remote/remote-repository.ts'
import { requireAdmin } from './mesh-api.ts'

export interface CacheKeeperInit {
  db: DB
  store: FileBlobStore
  config: Pick<Config, 'repositories' | 'gc'>
  /** This node's peer ID. */
  self?: string
  log: Logger
}

export interface PruneRequest {
  olderThan: number
  /** Only this remote repository (default: all of them). */
  repo?: string
  dryRun?: boolean
  /** The time ages are measured from (default now). */
  now?: number
}

export interface CacheSummary { repo: string, quota: number | null, blobs: number, bytes: number }

export class CacheKeeper {
  readonly use: CacheUse
  readonly listing: CacheListing
  readonly #evictor: CacheEvictor
  readonly #quotas = new Map<string, number>()
  readonly #remote: string[]
  readonly #log: Logger
  /** Evictions run one at a time (quota checks after fetches, prunes). */
  #running: Promise<unknown> = Promise.resolve()
  readonly #queued = new Set<string>()

  constructor (init: CacheKeeperInit) {
    this.use = new CacheUse(init.db)
    this.listing = new CacheListing(init.db, this.use)
    this.#remote = init.config.repositories.filter(r => r.type === 'remote').map(r => r.name)
    for (const r of init.config.repositories) if (r.type === 'remote' && r.quota != null) this.#quotas.set(r.name, r.quota)
    this.#evictor = new CacheEvictor({ db: init.db, store: init.store, use: this.use, remoteRepos: new Set(this.#remote), self: init.self, graceMs: init.config.gc.grace })
    this.#log = init.log.child({ component: 'cache' })
  }

  get remoteRepositories (): readonly string[] { return this.#remote }

  /** Starts the last-use flushes and enforces each quota once (it may have been lowered). */
  start (): void {
    this.use.start()
    for (const repo of this.#quotas.keys()) this.#enforce(repo)
  }

  async stop (): Promise<void> {
    await this.#running.catch(() => {})
    this.use.stop()
  }

  /** What a remote repository tells the keeper (RemoteRepositoryParts.cache). */
  hooksFor (repo: string): CacheHooks {
    return {
      served: (cid) => { this.use.touch(cid) },
      fetched: (cid) => {
        this.use.touch(cid)
        this.#enforce(repo, cid)
      }
    }
  }

  /** Queues a quota check of `repo` (at most one waiting per repository), never evicting `keep`.
   *  After a fetch's commit it runs off the fetch's path: the client's stream is not held back. */
  #enforce (repo: string, keep?: string): void {
    const quota = this.#quotas.get(repo)
    if (quota == null || this.#queued.has(repo)) return
    this.#queued.add(repo)
    void this.#serial(async () => {
      this.#queued.delete(repo)
      const r = await this.#evictor.enforceQuota(repo, quota, keep)
      if (r.evicted.length > 0) this.#logEvicted(r, { repo, quota }, 'cache quota exceeded: evicted least recently used blobs')
    }).catch((err: Error) => { this.#log.error({ err, repo }, 'cache quota enforcement failed') })
  }

  async prune (req: PruneRequest): Promise<EvictionReport> {
    const repos = this.#repos(req.repo)
    return await this.#serial(async () => {
      const r = await this.#evictor.prune(repos, (req.now ?? Date.now()) - req.olderThan, req.dryRun === true)
      if (!r.dryRun) this.#logEvicted(r, { olderThanMs: req.olderThan, repos }, 'cache prune')
      return r
    })
  }

  /** Per remote repository: its quota, and the cached blobs and bytes held here (for status). */
  summary (): CacheSummary[] {
    return this.#remote.map(repo => {
      const blobs = this.#evictor.cachedBlobs(repo)
      return { repo, quota: this.#quotas.get(repo) ?? null, blobs: blobs.length, bytes: blobs.reduce((n, b) => n + b.size, 0) }
    })
  }

  cached (repo?: string): CachedArtifact[] {
    this.use.flush()
    return this.listing.cached(this.#repos(repo))
  }

  #repos (repo?: string): string[] {
    if (repo == null) return this.#remote
    if (!this.#remote.includes(repo)) throw badRequest(`${repo} is not a remote repository of this node (remote: ${this.#remote.join(', ') || 'none'})`)
    return [repo]
  }

  #logEvicted (r: EvictionReport, fields: Record<string, unknown>, msg: string): void {
    this.#log.info({ ...fields, evicted: r.evicted.map(e => ({ repo: e.repo, cid: e.cid, size: e.size, artifacts: e.artifacts })), bytes: r.bytes, spared: r.spared }, msg)
  }

  async #serial<T> (fn: () => Promise<T>): Promise<T> {
    const run = this.#running.catch(() => {}).then(fn)
    this.#running = run.catch(() => {})
    return await run
  }
}

const olderThanParam = millis()

export function cacheRoutes (keeper: CacheKeeper): Router {
  const router = new Router({ prefix: '/-' })
  router.get('/cache', (ctx) => {
    requireAdmin(ctx)
    const repo = stringParam(ctx.query.repo, 'repo')
    ctx.body = { repositories: keeper.summary().filter(s => repo == null || s.repo === repo), artifacts: keeper.cached(repo) }
  })
  router.post('/cache/prune', async (ctx) => {
    requireAdmin(ctx)
    const raw = stringParam(ctx.query['older-than'], 'older-than')
    if (raw == null) throw badRequest('older-than is required, e.g. older-than=30d')
    const parsed = olderThanParam.safeParse(raw)
    if (!parsed.success) throw badRequest(`older-than: expected a duration such as 12h or 30d, got ${JSON.stringify(raw)}`)
    const flag = stringParam(ctx.query['dry-run'], 'dry-run')
    const now = stringParam(ctx.query.now, 'now')
    if (now != null && !/^\d+$/.test(now)) throw badRequest('now: expected milliseconds since the epoch')
    ctx.body = await keeper.prune({ olderThan: parsed.data, repo: stringParam(ctx.query.repo, 'repo'), dryRun: flag === '1' || flag === 'true', now: now == null ? undefined : Number(now) })
  })
  router.get('/artifacts', (ctx) => {
    requireAdmin(ctx)
    const repo = stringParam(ctx.query.repo, 'repo')
    if (repo == null) throw badRequest('repo is required')
    const limit = Math.min(Math.max(Number(ctx.query.limit ?? 1000) || 1000, 1), 10_000)
    const offset = Math.max(Number(ctx.query.offset ?? 0) || 0, 0)
    ctx.body = { repo, artifacts: keeper.listing.artifacts(repo, limit, offset).map(a => ({ ...a, lastUsedAt: a.cached ? lastUse(keeper, a.files) : undefined })) }
  })
  return router
}

function lastUse (keeper: CacheKeeper, files: Array<{ cid: string }>): number | null {
  const used = files.map(f => keeper.use.lastUsed(f.cid)).filter((t): t is number => t != null)
  return used.length === 0 ? null : Math.max(...used)
}

function stringParam (v: unknown, name: string): string | undefined {
  if (v == null) return undefined
  if (typeof v !== 'string') throw badRequest(`${name}: give it once`)
  return v
}
