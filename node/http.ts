// The HTTP front: one Koa app, one router per repository, errors mapped in one place.
import Koa, { type Context, type Next } from 'koa'
import Router from '@koa/router'
import compress from 'koa-compress'
import { constants as zlib } from 'node:zlib'
import type { Logger } from 'pino'
import type { Config } from '../config/schema.ts'
import { grants, type Accounts, type Principal } from '../store/accounts.ts'
import type { ArtifactIndex } from '../store/artifacts.ts'
import { BlobLinks } from '../store/blob-links.ts'
import type { FileBlobStore } from '../store/blobs.ts'
import type { DB } from '../store/db.ts'
import { RegistryError } from '../store/errors.ts'
import type { PeerLookup } from '../store/types.ts'
import { UploadSessions } from '../store/uploads.ts'
import type { FormatContext, FormatHandler } from '../protocols/format.ts'
import { formatByName } from '../protocols/registry.ts'
import type { ContentProgress } from '../protocols/shared/remote/content-progress.ts'
import { RemoteRepository, type CacheHooks } from '../protocols/shared/remote/remote-repository.ts'
import { remoteSettings } from '../config/remote-schema.ts'
import { VirtualRepository } from '../protocols/shared/virtual/virtual-repository.ts'
import { allows, authenticate } from './auth.ts'
import { STATUS, toRegistryError } from './http-errors.ts'
import { declaredRoutes } from './route-access.ts'
import { isRequestStreamError } from './process-guard.ts'
import { meshRoutes, type MeshStatus, type MeshTransfers } from './mesh-api.ts'
import type { MemberReportView } from '../mesh/member-report.ts'

export interface HttpParts {
  config: Config
  db: DB
  store: FileBlobStore
  artifacts: ArtifactIndex
  accounts: Accounts
  log: Logger
  mesh?: MeshStatus
  transfers?: MeshTransfers
  /** The member table of /-/mesh/status (mesh/member-report.ts). */
  members?: { view: () => Promise<MemberReportView> }
  /** Cache bookkeeping of remote repositories (node/cache.ts): last use, quotas. */
  cache?: { hooksFor: (repo: string) => CacheHooks, summary?: () => unknown }
  /** Asked by remote repositories before they go upstream (mesh/lookup.ts). */
  peers?: PeerLookup
  /** What the remotes are getting now, for peers' lookups (shared with mesh/lookup.ts). */
  progress?: ContentProgress
}

export function buildApp (parts: HttpParts): Koa {
  const { config, log } = parts
  const httpLog = log.child({ component: 'http' })
  const app = new Koa()
  app.proxy = config.http.publicUrl != null
  // What escapes the error mapper (a failure while streaming the response) is logged here, in
  // the node's log, rather than by Koa on stderr; Koa has already answered or closed the request.
  app.on('error', (err: any, ctx?: Context) => {
    // A client that hangs up mid-download is routine.
    const level = isRequestStreamError(err) ? 'debug' : 'warn'
    httpLog[level]({ err, method: ctx?.method, url: ctx?.originalUrl }, 'request failed after its answer started')
  })

  app.use(requestLog(httpLog))
  app.use(errorMapper(httpLog))
  app.use(compress({
    threshold: 1024,
    filter: (type) => /json|html|text\/plain/.test(type),
    br: false, // brotli at default quality costs more CPU than it saves on a LAN
    gzip: { level: zlib.Z_BEST_SPEED }
  }))
  app.use(authenticate(parts.accounts))

  const root = new Router()
  root.get('/healthz', (ctx) => { ctx.body = { status: 'ok' } })
  // Prepared once: a statement per request is garbage that better-sqlite3 12 finalises unsafely
  // on Node >= 24.19 (test/statement-gc.test.ts).
  const ping = parts.db.prepare('SELECT 1')
  root.get('/readyz', (ctx) => {
    ping.get() // throws (→ 500) if the index is unusable
    // Repository names (private ones too) are for operators: admin on every repository, as the
    // mesh API asks. Anyone else (load balancers, probes) gets the status.
    const p = ctx.state.principal as Principal | undefined
    ctx.body = p != null && grants(p, 'admin', '*')
      ? { status: 'ready', repositories: config.repositories.map(r => r.name) }
      : { status: 'ready' }
  })
  app.use(root.routes())
  if (parts.mesh != null) app.use(meshRoutes(parts.mesh, parts.transfers, parts.members, parts.cache).routes())

  const uploads = new UploadSessions(parts.store, { idleMs: config.limits.uploadIdleSeconds * 1000 })
  const blobLinks = new BlobLinks(parts.db)
  const contexts = new Map<FormatHandler, FormatContext[]>()
  // Contexts first, routes second: a virtual repository's context names its members' contexts,
  // whatever order the config lists them in.
  const built = new Map<string, { fc: FormatContext, format: FormatHandler, prefix: string }>()
  for (const repo of config.repositories) {
    const format = formatByName(repo.format) as FormatHandler
    const prefix = format.prefix?.(repo) ?? `/${repo.name}`
    const formatLog = log.child({ component: `format:${format.name}`, repo: repo.name })
    if (repo.type === 'remote' && format.remote == null) {
      throw new Error(`repository ${repo.name}: ${format.name} has no remote repositories yet (type: remote works for generic, oci)`)
    }
    if (repo.type === 'virtual' && format.virtual !== true) {
      throw new Error(`repository ${repo.name}: ${format.name} has no virtual repositories yet`)
    }
    const fc: FormatContext = {
      repo,
      store: parts.store,
      uploads,
      blobLinks,
      artifacts: parts.artifacts,
      accounts: parts.accounts,
      limits: config.limits,
      log: formatLog,
      remote: repo.type === 'remote'
        ? new RemoteRepository({
          name: repo.name,
          settings: remoteSettings(repo),
          store: parts.store,
          limits: config.limits,
          log: log.child({ component: `remote:${format.name}`, repo: repo.name }),
          cache: parts.cache?.hooksFor(repo.name),
          peers: parts.peers,
          progress: parts.progress
        })
        : undefined,
      allows: (ctx, scope) => allows(ctx, repo, scope),
      baseUrl: (ctx) => `${config.http.publicUrl?.replace(/\/$/, '') ?? `${ctx.protocol}://${ctx.host}`}${prefix}`
    }
    contexts.set(format, [...(contexts.get(format) ?? []), fc])
    built.set(repo.name, { fc, format, prefix })
  }
  for (const { fc } of built.values()) {
    const repo = fc.repo
    if (repo.type !== 'virtual') continue
    fc.virtual = new VirtualRepository({
      name: repo.name,
      members: (repo.members ?? []).map(name => {
        const member = built.get(name)?.fc
        if (member == null) throw new Error(`virtual repository ${repo.name}: no member ${name}`) // the config schema refuses this first
        return { name, kind: member.repo.type === 'remote' ? 'remote' as const : 'local' as const, fc: member }
      }),
      defaultLocal: repo.defaultLocal,
      allowRemoteOverride: repo.allowRemoteOverride
    })
  }
  for (const { fc, format, prefix } of built.values()) {
    const repo = fc.repo
    const router = new Router({ prefix })
    // Every path under the prefix is this format's, matched by a route or not, so even a 404 for
    // an unknown path has the body its clients parse.
    app.use(async (ctx, next) => {
      if (ctx.path === prefix || ctx.path.startsWith(`${prefix}/`)) ctx.state.format = format
      await next()
    })
    format.routes(declaredRoutes(router, { format, fc, repo }), fc)
    app.use(router.routes())
    app.use(router.allowedMethods({ throw: false }))
  }
  for (const [format, fcs] of contexts) {
    if (format.sharedRoutes == null) continue
    const router = new Router()
    router.use(async (ctx, next) => { ctx.state.format = format; await next() })
    format.sharedRoutes(declaredRoutes(router, { format }), fcs)
    app.use(router.routes())
  }
  return app
}

function requestLog (log: Logger) {
  return async (ctx: Context, next: Next) => {
    const start = performance.now()
    ctx.res.once('close', () => {
      const entry = {
        method: ctx.method, url: ctx.originalUrl, status: ctx.status,
        ms: Math.round(performance.now() - start), bytes: ctx.response.length, user: ctx.state.principal?.name,
        aborted: !ctx.res.writableFinished || undefined
      }
      if (ctx.status >= 500) log.error(entry, 'request')
      else log.info(entry, 'request')
    })
    await next()
  }
}

function errorMapper (log: Logger) {
  return async (ctx: Context, next: Next) => {
    try {
      await next()
      if (ctx.status === 404 && ctx.body == null) {
        throw new RegistryError('NotFound', `not found: ${ctx.method} ${ctx.path}`)
      }
    } catch (thrown) {
      const err = toRegistryError(thrown)
      if (err == null) {
        log.error({ err: thrown, method: ctx.method, url: ctx.originalUrl }, 'internal error')
      }
      if (ctx.headerSent || !ctx.writable) return // the client sees a cut connection; nothing else to do
      const e = err ?? new RegistryError('Unavailable', 'internal error; see the node log')
      ctx.status = err == null ? 500 : STATUS[e.code]
      for (const [k, v] of Object.entries(e.headers)) ctx.set(k, v)
      const format = ctx.state.format as FormatHandler | undefined
      const rendered = format?.errorBody?.(e)
      if (rendered != null) {
        ctx.type = rendered.contentType
        ctx.body = rendered.body
        if (rendered.statusMessage != null) ctx.message = rendered.statusMessage
      } else {
        ctx.body = { error: e.message, code: e.code }
      }
    }
  }
}
