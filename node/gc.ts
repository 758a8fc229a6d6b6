// Blob garbage collection in the node: the start-up sweep of orphan files, the periodic run
// (config `gc`), and `POST /-/gc` (admin), which `akmesh gc` uses while the node runs (only the
// process that commits blobs can collect safely: its commit locks and read times are in memory).
// Runs one at a time.
import Router from '@koa/router'
import type { Logger } from 'pino'
import type { Config } from '../config/schema.ts'
import type { FileBlobStore } from '../store/blobs.ts'
import type { DB } from '../store/db.ts'
import { badRequest } from '../store/errors.ts'
import { collectGarbage, type GcReport } from '../store/gc.ts'
import { sweepOrphans } from '../store/orphans.ts'
import { manifestFacts } from './manifest-facts.ts'
import { requireAdmin } from './mesh-api.ts'

export interface BlobCollectorInit {
  db: DB
  store: FileBlobStore
  config: Config['gc']
  /** This node's peer ID. */
  self: string
  log: Logger
}

export class BlobCollector {
  readonly #i: BlobCollectorInit
  readonly #log: Logger
  readonly #controller = new AbortController()
  readonly #timers: Array<ReturnType<typeof setTimeout>> = []
  #running: Promise<unknown> = Promise.resolve()

  constructor (init: BlobCollectorInit) {
    this.#i = init
    this.#log = init.log.child({ component: 'store:gc' })
  }

  /** Sweeps orphan files now (those already older than the grace period) and once more when the
   *  grace period has passed (a crash's leftovers are then old enough), then collects every
   *  `interval`. */
  start (): void {
    const { interval, grace } = this.#i.config
    const sweep = (): void => { void this.#serial(async () => await this.#sweep()).catch(() => {}) }
    sweep()
    this.#timers.push(setTimeout(sweep, Math.min(grace + 1000, 2 ** 31 - 1)))
    if (interval != null) this.#timers.push(setInterval(() => { void this.run({}).catch(() => {}) }, interval))
    for (const t of this.#timers) t.unref()
  }

  async stop (): Promise<void> {
    for (const t of this.#timers) clearTimeout(t)
    this.#controller.abort()
    await this.#running.catch(() => {})
  }

  /** One collection (after any run in progress). */
  async run (opts: { dryRun?: boolean }): Promise<GcReport> {
    return await this.#serial(async () => {
      const started = Date.now()
      const { db, store, self, config } = this.#i
      try {
        const report = await collectGarbage({ db, store, self, decode: manifestFacts }, { graceMs: config.grace, dryRun: opts.dryRun, signal: this.#controller.signal })
        this.#log.info({ dryRun: report.dryRun, orphans: report.orphans, unreferenced: report.unreferenced, spared: report.spared, undecodable: report.undecodable, ms: Date.now() - started }, 'blob gc')
        return report
      } catch (err) {
        if (!this.#controller.signal.aborted) this.#log.error({ err }, 'blob gc failed')
        throw err
      }
    })
  }

  async #sweep (): Promise<void> {
    try {
      const r = await sweepOrphans(this.#i.store, this.#i.db, { graceMs: this.#i.config.grace, signal: this.#controller.signal })
      if (r.count > 0) this.#log.info({ count: r.count, bytes: r.bytes }, 'swept orphan blob files')
    } catch (err) {
      if (!this.#controller.signal.aborted) this.#log.error({ err }, 'orphan sweep failed')
      throw err
    }
  }

  async #serial<T> (fn: () => Promise<T>): Promise<T> {
    const run = this.#running.catch(() => {}).then(fn)
    this.#running = run.catch(() => {})
    return await run
  }
}

/** POST /-/gc[?dry-run=1] (admin on every repository): runs a collection, answers its report. */
export function gcRoutes (collector: BlobCollector): Router {
  const router = new Router({ prefix: '/-' })
  router.post('/gc', async (ctx) => {
    requireAdmin(ctx)
    const flag = ctx.query['dry-run']
    if (flag != null && flag !== '1' && flag !== 'true' && flag !== '0' && flag !== 'false') throw badRequest('dry-run: expected 1, true, 0 or false')
    ctx.body = await collector.run({ dryRun: flag === '1' || flag === 'true' })
  })
  return router
}
