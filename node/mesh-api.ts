// Mesh state on the HTTP front, for operators and tests (admin scope): GET /-/mesh/peers,
// /-/mesh/status (peer ID, per-origin watermarks, counts), /-/mesh/conflicts.
import Router from '@koa/router'
import type { Context } from 'koa'
import { grants } from '../store/accounts.ts'
import { forbidden, unauthorized } from '../store/errors.ts'
import type { AuthState } from './auth.ts'

/** What the HTTP front needs from the mesh service. */
export interface MeshStatus {
  peerId: { toString: () => string }
  multiaddrs: () => string[]
  peers: () => Array<{ peerId: string, addrs: string[], direction: string }>
  replication?: {
    status: () => { watermarks: Record<string, number>, received: number, rejected: number, conflicts: number }
    applier: { conflicts: (limit?: number) => unknown[] }
  }
}

function requireAdmin (ctx: Context): void {
  const state = ctx.state as AuthState
  const challenge = { 'WWW-Authenticate': 'Bearer realm="akmesh"' }
  if (state.badCredentials === true) throw unauthorized('invalid, expired or revoked credentials', challenge)
  if (state.principal == null) throw unauthorized('an admin token is required', challenge)
  if (!grants(state.principal, 'admin', '*')) throw forbidden(`${state.principal.name} has no admin scope on every repository`)
}

export function meshRoutes (mesh: MeshStatus): Router {
  const router = new Router({ prefix: '/-/mesh' })
  router.use(async (ctx, next) => { requireAdmin(ctx); await next() })
  router.get('/peers', (ctx) => {
    ctx.body = { peerId: mesh.peerId.toString(), multiaddrs: mesh.multiaddrs(), peers: mesh.peers() }
  })
  router.get('/status', (ctx) => {
    ctx.body = { peerId: mesh.peerId.toString(), peers: mesh.peers().length, replicating: mesh.replication != null, ...mesh.replication?.status() }
  })
  router.get('/conflicts', (ctx) => {
    const limit = Math.min(Math.max(Number(ctx.query.limit ?? 100) || 100, 1), 1000)
    ctx.body = { conflicts: mesh.replication?.applier.conflicts(limit) ?? [] }
  })
  return router
}
