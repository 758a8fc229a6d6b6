// POST /-/mesh/import (node/mesh-api.ts mounts it): the manifests of a bundle, sent by
// `akmesh import --url` (node-client.ts) or any admin tool, as frames (frames.ts). Query:
//   certificates=N  the first N frames are member certificates (the bundle's): learned first;
//   check=1         only say which manifests this node refuses, apply nothing;
//   strict=1        refuse everything (403, nothing applied) if any manifest's origin is refused.
// A damaged manifest (bad signature, undecodable, another mesh) refuses the whole request (400).
// Otherwise every envelope goes the way gossip and catch-up go (receiveMany: one transaction,
// gossiped onward; the refused ones counted in the rejection report), and the answer lists the
// refused ones with their origin and reason.
import { badRequest, integrityError } from '../../store/errors.ts'
import { ManifestError } from '../../mesh/manifest.ts'
import type { MembershipCheck } from '../../mesh/membership.ts'
import { originCount, openOrRefuse } from './trust.ts'

export interface NodeRefusal { index: number, origin: string, seq: number, kind: string, repo: string, name: string, version: string, reason: string, message: string }

export interface ImportRouteDeps {
  mesh: string
  self: string
  membership: MembershipCheck
  receiveMany: (envelopes: Uint8Array[], from: { via: string, peer: string }) => Promise<Array<'new' | 'held' | 'rejected'>>
}

export interface ImportQuery { certificates?: unknown, check?: unknown, strict?: unknown }

const flag = (v: unknown): boolean => v === '1' || v === 'true' || v === ''

export async function receiveImport (deps: ImportRouteDeps, frames: Uint8Array[], query: ImportQuery): Promise<{ status: number, body: unknown }> {
  const n = query.certificates == null ? 0 : Number(query.certificates)
  if (!Number.isSafeInteger(n) || n < 0 || n > frames.length) throw badRequest(`certificates=${String(query.certificates)}: expected a count of 0-${frames.length} frames`)
  for (const c of frames.slice(0, n)) await deps.membership.learn?.(c)
  const envelopes = frames.slice(n)
  const refused: NodeRefusal[] = []
  for (const [index, envelope] of envelopes.entries()) {
    try {
      const { change: m, refusal } = await openOrRefuse(envelope, { mesh: deps.mesh, membership: deps.membership })
      if (refusal != null) refused.push({ index, origin: m.origin, seq: m.seq, kind: m.kind, repo: m.repo, name: m.name, version: m.version, ...refusal })
    } catch (err) {
      if (!(err instanceof ManifestError)) throw err
      throw integrityError(`manifest ${index} of the import rejected (${err.reason}): ${err.message}; nothing was applied`)
    }
  }
  if (flag(query.strict) && refused.length > 0) {
    const list = refused.map(r => `manifest ${r.origin}/${r.seq} (${r.repo} ${r.name}${r.version === '' ? '' : `@${r.version}`}) rejected (${r.reason}): ${r.message}`)
    return { status: 403, body: { error: `${refused.length} manifest(s) from ${originCount(refused)} origin(s) this node does not accept, and strict: ${list.join('; ')}; nothing was applied`, refused } }
  }
  if (flag(query.check)) return { status: 200, body: { checked: envelopes.length, refused } }
  const outcomes: string[] = await deps.receiveMany(envelopes, { via: 'bundle', peer: deps.self })
  // receiveMany checks membership again: what it took after all (a certificate learned since) is
  // no longer refused.
  for (const r of refused) if (outcomes[r.index] === 'rejected') outcomes[r.index] = 'refused'
  return { status: 200, body: { outcomes, refused: refused.filter(r => outcomes[r.index] === 'refused') } }
}
