// Mesh state on the HTTP front, for operators and tests (admin scope): GET /-/mesh/peers,
// /-/mesh/status (peer ID, per-origin watermarks, counts, recent distinct rejections, equivocating
// origins), /-/mesh/conflicts, /-/mesh/transfers; POST
// /-/mesh/import (manifests of an air-gap bundle, from `akmesh import`).
import Router from '@koa/router'
import type { Context } from 'koa'
import { MAX_ENVELOPE_BYTES } from '../mesh/manifest.ts'
import { grants } from '../store/accounts.ts'
import { forbidden, RegistryError, unauthorized } from '../store/errors.ts'
import type { MembershipCheck } from '../mesh/membership.ts'
import type { AuthState } from './auth.ts'
import { readFrames } from './bundle/frames.ts'
import { receiveImport } from './bundle/import-route.ts'

/** What the HTTP front needs from the mesh service. */
export interface MeshStatus {
  peerId: { toString: () => string }
  multiaddrs: () => string[]
  peers: () => Array<{ peerId: string, addrs: string[], direction: string }>
  replication?: {
    status: () => { watermarks: Record<string, number>, received: number, rejected: number, conflicts: number }
    applier: { conflicts: (limit?: number) => unknown[] }
    /** Verifies, applies in one transaction and gossips onward (mesh/replication.ts). */
    receiveMany?: (envelopes: Uint8Array[], from: { via: string, peer: string }) => Promise<Array<'new' | 'held' | 'rejected'>>
  }
  /** The live peering file: mesh name and allowlist (membership). */
  peering?: { current: { mesh: string } }
  /** Whose manifests count (mesh/membership.ts). */
  membership?: MembershipCheck
}

/** An import body holds manifests only (blobs are committed by the CLI beside the node). */
const MAX_IMPORT_BYTES = 1024 * 1024 * 1024

/** Blob transfers and what they measured (mesh/fetcher.ts, mesh/profiles.ts). */
export interface MeshTransfers {
  list: () => unknown[]
  profiles: () => unknown[]
}

export function requireAdmin (ctx: Context): void {
  const state = ctx.state as AuthState
  const challenge = { 'WWW-Authenticate': 'Bearer realm="akmesh"' }
  if (state.badCredentials === true) throw unauthorized('invalid, expired or revoked credentials', challenge)
  if (state.principal == null) throw unauthorized('an admin token is required', challenge)
  if (!grants(state.principal, 'admin', '*')) throw forbidden(`${state.principal.name} has no admin scope on every repository`)
}

export function meshRoutes (mesh: MeshStatus, transfers?: MeshTransfers): Router {
  const router = new Router({ prefix: '/-/mesh' })
  router.use(async (ctx, next) => { requireAdmin(ctx); await next() })
  router.get('/peers', (ctx) => {
    ctx.body = { peerId: mesh.peerId.toString(), multiaddrs: mesh.multiaddrs(), peers: mesh.peers(), profiles: transfers?.profiles() ?? [] }
  })
  // Recent and running blob transfers: which peers served how many chunks.
  router.get('/transfers', (ctx) => {
    ctx.body = { transfers: transfers?.list() ?? [] }
  })
  router.get('/status', (ctx) => {
    ctx.body = { peerId: mesh.peerId.toString(), peers: mesh.peers().length, replicating: mesh.replication != null, ...mesh.replication?.status(), members: mesh.membership?.members?.() ?? [] }
  })
  router.get('/conflicts', (ctx) => {
    const limit = Math.min(Math.max(Number(ctx.query.limit ?? 100) || 100, 1), 1000)
    ctx.body = { conflicts: mesh.replication?.applier.conflicts(limit) ?? [] }
  })
  // Partial trust: manifests of origins this node does not accept are refused and listed
  // (node/bundle/import-route.ts); the rest go the way gossip and catch-up go (receiveMany).
  router.post('/import', async (ctx) => {
    const receiveMany = mesh.replication?.receiveMany?.bind(mesh.replication)
    const membership = mesh.membership
    if (receiveMany == null || mesh.peering == null || membership == null) throw new RegistryError('Unavailable', 'this node does not replicate; nothing can be imported')
    const frames = await readFrames(ctx.req, { maxFrame: MAX_ENVELOPE_BYTES, maxTotal: MAX_IMPORT_BYTES })
    const r = await receiveImport({ mesh: mesh.peering.current.mesh, self: mesh.peerId.toString(), membership, receiveMany }, frames, ctx.query)
    ctx.status = r.status
    ctx.body = r.body
  })
  return router
}
