// Authorization declared where a route is mounted: a format gets `Routes`, never the raw router,
// so a route cannot exist without stating the access it needs (as zot applies its authorization
// handler per route group). Undeclared or malformed declarations fail closed.
import type Router from '@koa/router'
import type { Context, Middleware, Next } from 'koa'
import type { RepositoryConfig } from '../config/schema.ts'
import { SCOPES, type Scope } from '../store/accounts.ts'
import { forbidden, RegistryError } from '../store/errors.ts'
import type { Access, AccessRule, FormatContext, FormatHandler, RoutePath, Routes } from '../protocols/format.ts'
import { authorize } from './auth.ts'

const METHODS = ['get', 'put', 'post', 'patch', 'delete', 'all'] as const

const isAccess = (a: unknown): a is Access => a === 'public' || (SCOPES as readonly unknown[]).includes(a)

export interface Guarded {
  format: FormatHandler
  /** The repository the routes belong to; undefined for a format's shared routes. */
  fc?: FormatContext
  repo?: RepositoryConfig
}

/** Wraps `router` so that every route runs its declared authorization before its handler. Throws
 *  at mount time (the node refuses to start) on a route without a valid declaration. */
export function declaredRoutes<A extends AccessRule> (router: Router, scope: Guarded): Routes<A> {
  const routes = {} as Routes<A>
  for (const method of METHODS) {
    routes[method] = (path: RoutePath, access: A, handler: Middleware) => {
      const where = `${scope.format.name}: ${method.toUpperCase()} ${String(path)}`
      if (typeof handler !== 'function' || !(typeof access === 'function' || isAccess(access))) {
        throw new Error(`${where} is mounted without an access declaration ('read', 'write', 'admin', 'public' or a function of the request)`)
      }
      if (scope.repo == null && access !== 'public') {
        throw new Error(`${where}: shared routes belong to no repository; declare 'public' and check per repository`)
      }
      router[method](path, guard(scope, access), handler)
    }
  }
  return routes
}

function guard ({ format, fc, repo }: Guarded, rule: AccessRule): Middleware {
  return async (ctx: Context, next: Next) => {
    if (fc != null) format.authenticate?.(ctx, fc)
    const access: unknown = typeof rule === 'function' ? rule(ctx) : rule
    if (!isAccess(access)) throw forbidden(`${ctx.method} ${ctx.path} declares no valid access; refused`)
    if (access !== 'public') {
      // declaredRoutes admits only 'public' on shared routes, so a scope always has a repository.
      const r = repo as RepositoryConfig
      ctx.state.actor = authorizeWithChallenge(ctx, format, fc as FormatContext, r, access)
    }
    await next()
  }
}

function authorizeWithChallenge (ctx: Context, format: FormatHandler, fc: FormatContext, repo: RepositoryConfig, scope: Scope): string {
  try {
    return authorize(ctx, repo, scope)
  } catch (err) {
    if (err instanceof RegistryError && err.code === 'Unauthorized' && format.challenge != null) {
      throw new RegistryError('Unauthorized', err.message, format.challenge(ctx, fc, scope))
    }
    throw err
  }
}
