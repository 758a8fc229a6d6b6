// Mesh state on the HTTP front, for operators and tests (admin scope): GET /-/mesh/peers,
// /-/mesh/status (peer ID, per-origin watermarks, counts, recent distinct rejections, equivocating
// origins, members and certificate warnings, revocations, remote repositories' caches), /-/mesh/conflicts, /-/mesh/transfers,
// /-/mesh/revocations; POST /-/mesh/import (manifests of an air-gap bundle, from `akmesh import`),
// POST /-/mesh/revocations (a revocation signed by the root, from `akmesh mesh publish-revocation`).
import Router from '@koa/router'
import type { Context } from 'koa'
import { MAX_ENVELOPE_BYTES } from '../mesh/manifest.ts'
import { grants } from '../store/accounts.ts'
import { badRequest, forbidden, RegistryError, tooLarge, unauthorized } from '../store/errors.ts'
import { MAX_REVOCATION_BYTES, RevocationError } from '../mesh/revocations.ts'
import type { LearnedRevocation } from '../mesh/revocation-store.ts'
import type { MembershipCheck } from '../mesh/membership.ts'
import type { MemberReportView } from '../mesh/member-report.ts'
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
    /** Keeps a root-signed revocation and gossips it (mesh/replication.ts). */
    addRevocation?: (envelope: Uint8Array) => Promise<LearnedRevocation>
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

export function meshRoutes (mesh: MeshStatus, transfers?: MeshTransfers, members?: { view: () => Promise<MemberReportView> }, cache?: { summary?: () => unknown }): Router {
  const router = new Router({ prefix: '/-/mesh' })
  router.use(async (ctx, next) => { requireAdmin(ctx); await next() })
  router.get('/peers', (ctx) => {
    ctx.body = { peerId: mesh.peerId.toString(), multiaddrs: mesh.multiaddrs(), peers: mesh.peers(), profiles: transfers?.profiles() ?? [] }
  })
  // Recent and running blob transfers: which peers served how many chunks.
  router.get('/transfers', (ctx) => {
    ctx.body = { transfers: transfers?.list() ?? [] }
  })
  // members: every known member (certificate or allow list) with connected and last manifest
  // seen (mesh/member-table.ts); warnings: certificates expiring within 14 days or expired.
  router.get('/status', async (ctx) => {
    const view = members != null ? await members.view() : { members: mesh.membership?.members?.() ?? [], warnings: [] }
    ctx.body = { peerId: mesh.peerId.toString(), peers: mesh.peers().length, replicating: mesh.replication != null, ...mesh.replication?.status(), ...view, revocations: mesh.membership?.revoked?.() ?? [], cache: cache?.summary?.() ?? [] }
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
  router.get('/revocations', (ctx) => {
    ctx.body = { revocations: mesh.membership?.revoked?.() ?? [] }
  })
  // A revocation file (`akmesh mesh revoke`): verified against the mesh root, kept, gossiped; the
  // rest of the mesh also gets it by catch-up and in bundles.
  router.post('/revocations', async (ctx) => {
    const add = mesh.replication?.addRevocation?.bind(mesh.replication) ?? mesh.membership?.learnRevocation?.bind(mesh.membership)
    if (add == null) throw new RegistryError('Unavailable', 'this node has no mesh membership: it cannot keep a revocation')
    const bytes = await readBody(ctx, MAX_REVOCATION_BYTES)
    try {
      const { revocation: r, fresh } = await add(bytes)
      ctx.body = { peer: r.peer, at: new Date(r.at).toISOString(), all: r.all, issued: new Date(r.issued).toISOString(), fresh }
    } catch (err) {
      if (err instanceof RevocationError) throw badRequest(`revocation refused (${err.reason}): ${err.message}`)
      throw err
    }
  })
  return router
}

async function readBody (ctx: Context, max: number): Promise<Uint8Array> {
  const parts: Buffer[] = []
  let size = 0
  for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
    size += chunk.byteLength
    if (size > max) throw tooLarge(`a revocation is at most ${max} bytes`)
    parts.push(chunk)
  }
  return new Uint8Array(Buffer.concat(parts))
}
