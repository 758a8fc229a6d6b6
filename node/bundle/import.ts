// `akmesh import`: verify everything (node/bundle/stage.ts: the signed index, every block, every
// manifest), check every envelope once more as it will be applied, then make it visible in two
// steps: commit the staged blobs into the store (rename, no copy), then apply every manifest in
// one transaction. Applying goes either
//  - through the running node (`POST /-/mesh/import`, admin token): the node checks the
//    envelopes again against its live allowlist, applies them with Replication.receiveMany (one
//    transaction, the npm packument cache invalidated, and each new manifest gossiped onward to
//    its mesh with the origin's signature), or
//  - straight into the data directory when no node runs on it (RemoteApplier.applyMany, one
//    transaction); the node's catch-up offers the manifests to its peers when it next starts.
// Blobs are committed by this process in both cases: bytes never cross HTTP, and a blob is not
// served before a manifest names it (formats serve artifacts; peers ask only for CIDs that signed
// manifests name).
import type { MembershipCheck } from '../../mesh/membership.ts'
import type { Logger } from 'pino'
import { rm } from 'node:fs/promises'
import { RemoteApplier, type ApplyStatus } from '../../store/apply.ts'
import { checkReplicatedArtifact } from '../artifact-check.ts'
import type { ArtifactIndex } from '../../store/artifacts.ts'
import type { FileBlobStore } from '../../store/blobs.ts'
import type { DB } from '../../store/db.ts'
import { conflict, integrityError } from '../../store/errors.ts'
import { CID } from 'multiformats/cid'
import { ManifestError, openEnvelope, type Manifest } from '../../mesh/manifest.ts'
import { blockMatches } from './format.ts'
import { ManifestLog } from '../../store/manifests.ts'
import { Progress } from './progress.ts'
import { stageBundle, type StagedBundle } from './stage.ts'
import { findVolumes, VolumeReader } from './volumes.ts'
import { encodeFrames } from './frames.ts'

export interface ImportDeps {
  dataDir: string
  db: DB
  store: FileBlobStore
  artifacts: ArtifactIndex
  mesh: string
  /** This node's peer ID. */
  self: string
  membership: MembershipCheck
  log?: Logger
}

export interface ImportOptions {
  bundle: string
  /** Apply through this running node instead of the data directory. */
  node?: { url: string, token: string }
  /** Import an incremental bundle even if this node lacks what it was based on. */
  allowGaps?: boolean
  progress?: boolean
  signal?: AbortSignal
}

export type ManifestOutcome = 'added' | 'skipped' | 'not-applied'

export interface ImportReport {
  root: string
  /** Who exported the bundle (its index is signed by that node's key), and when. */
  exporter: { peerId: string, name?: string, createdAt: number }
  /** Origins this node still holds only up to a point below what the exporter held. */
  warnings: string[]
  manifests: Array<{ origin: string, seq: number, repo: string, name: string, version: string, kind: string, outcome: ManifestOutcome, reason?: string }>
  blobs: { added: number, addedBytes: number, skipped: number, resumed: number }
  summary: string
}

export async function importBundle (deps: ImportDeps, opts: ImportOptions): Promise<ImportReport> {
  const volumes = await findVolumes(opts.bundle)
  const reader = new VolumeReader(volumes)
  const progress = new Progress('import', reader.total, { enabled: opts.progress })
  let staged: StagedBundle
  try {
    staged = await stageBundle(reader, { dataDir: deps.dataDir, store: deps.store, mesh: deps.mesh, membership: deps.membership, signal: opts.signal, progress })
  } finally {
    await reader.close()
  }
  progress.finish()
  const manifests = new ManifestLog(deps.db)
  checkFiles(staged, deps.store)
  if (opts.allowGaps !== true) checkBase(staged, manifests)

  // The envelopes to apply (owned bytes, nothing else writes them), verified as they are.
  const items = await recheckEnvelopes(staged, deps)

  // Commit: blobs first (invisible until a manifest names them), then every manifest at once.
  let addedBytes = 0
  let added = 0
  for (const b of staged.staged.values()) {
    opts.signal?.throwIfAborted()
    if (deps.store.has(b.cid)) continue
    await deps.store.commitTemp(b.path, b.digests)
    await rm(`${b.path}.json`, { force: true })
    added++
    addedBytes += b.digests.size
  }
  if (opts.node != null) await postRevocations(opts.node, staged.index.revocations ?? [], opts.signal)
  const outcomes = opts.node != null
    ? await applyThroughNode(opts.node, items, opts.signal)
    : applyHere(deps, manifests, items)
  await rm(staged.dir, { recursive: true, force: true })

  const { index } = staged
  return {
    root: staged.root,
    exporter: { peerId: index.exporter, ...(index.exporterName != null ? { name: index.exporterName } : {}), createdAt: index.createdAt },
    warnings: coverageWarnings(staged, new ManifestLog(deps.db)),
    manifests: staged.items.map(({ change }, i) => ({
      origin: change.origin, seq: change.seq, repo: change.repo, name: change.name, version: change.version, kind: change.kind, ...outcomes[i]
    })),
    blobs: { added, addedBytes, skipped: staged.held.length + staged.staged.size - added, resumed: staged.resumed.length },
    summary: progress.summary()
  }
}

/** Every file a manifest names must be in the bundle, held here, or declared absent by it. */
function checkFiles (staged: StagedBundle, store: FileBlobStore): void {
  const absent = new Set(staged.index.absent)
  for (const { change } of staged.items) {
    for (const f of change.files) {
      if (staged.staged.has(f.cid) || absent.has(f.cid) || store.has(f.cid)) continue
      throw integrityError(`manifest ${change.origin}/${change.seq} (${change.repo} ${change.name}@${change.version}) names blob ${f.cid}, which is neither in the bundle nor held here`)
    }
  }
}

/** An incremental bundle continues from what the previous export held: refuse it where that is
 *  missing (import the earlier bundle first), rather than leave a hole to be found later. */
function checkBase (staged: StagedBundle, manifests: ManifestLog): void {
  const missing = Object.entries(staged.index.base).filter(([origin, seq]) => seq > 0 && manifests.watermark(origin) < seq)
  if (missing.length === 0) return
  const [origin, seq] = missing[0]
  throw conflict(`this bundle continues an earlier export to "${staged.index.selection.destination ?? '?'}": it needs every manifest of ${origin} up to seq ${seq}, ` +
    `but this node holds them only up to ${manifests.watermark(origin)}${missing.length > 1 ? ` (and ${missing.length - 1} more origin(s))` : ''}. ` +
    'Import the earlier bundle first, or pass --allow-gaps')
}

/** Every envelope once more, just before it is applied: its bytes against the CID the index
 *  names, then decoded and its signature verified. Staging verified them too, but these are the
 *  bytes that are stored and gossiped, so no path may apply bytes that were not verified as
 *  they are (a buffer reused under a kept envelope once stored a blob's bytes as a manifest).
 *  Before the blobs are committed, so a failure leaves nothing behind. */
async function recheckEnvelopes (staged: StagedBundle, deps: ImportDeps): Promise<AppliedItem[]> {
  const out: AppliedItem[] = []
  for (const { envelope, cid, change: was } of staged.items) {
    const what = `manifest ${was.origin}/${was.seq} (block ${cid})`
    if (!await blockMatches(CID.parse(cid), envelope)) throw integrityError(`${what} changed in memory after it was verified; nothing was applied`)
    let change: Manifest
    try {
      change = await openEnvelope(envelope, { mesh: deps.mesh, admit: (o, repo, signedAt) => deps.membership.admit(o, repo, { signedAt }) })
    } catch (err) {
      if (!(err instanceof ManifestError)) throw err
      throw integrityError(`${what} rejected (${err.reason}) as it was applied: ${err.message}; nothing was applied`)
    }
    if (change.origin !== was.origin || change.seq !== was.seq) throw integrityError(`${what}: the signed manifest is ${change.origin}/${change.seq}; nothing was applied`)
    out.push({ change, envelope })
  }
  return out
}

interface AppliedItem { change: Manifest, envelope: Uint8Array }

/** The exporter signs, per origin, the watermark it held. Where this node, with the bundle applied,
 *  still holds an origin only up to a lower seq, some of the exporter's manifests did not come
 *  (a --repo selection leaves other repositories out; or someone held a newer bundle back). */
function coverageWarnings (staged: StagedBundle, manifests: ManifestLog): string[] {
  const { index } = staged
  const carried = new Map<string, number>()
  for (const m of index.manifests) carried.set(m.origin, Math.max(carried.get(m.origin) ?? 0, m.seq))
  const out: string[] = []
  for (const [origin, held] of Object.entries(index.watermarks)) {
    const here = manifests.watermark(origin)
    if (here >= held) continue
    out.push(`the bundle covers ${origin} only up to seq ${Math.max(carried.get(origin) ?? 0, index.base[origin] ?? 0)}, but its exporter held it up to seq ${held}: ` +
      `this node holds it up to seq ${here}${index.selection.repos != null ? ` (the export selected only repositories ${index.selection.repos.join(', ')})` : ''}`)
  }
  return out
}

const NOT_APPLIED: Partial<Record<ApplyStatus, string>> = {
  'unknown-repository': 'no such repository here (kept for forwarding)',
  'format-mismatch': 'the repository of that name here holds another format',
  'blob-mismatch': 'contradicts the bytes of a blob held here'
}

function applyHere (deps: ImportDeps, manifests: ManifestLog, items: AppliedItem[]): Array<{ outcome: ManifestOutcome, reason?: string }> {
  const applier = new RemoteApplier({ db: deps.db, artifacts: deps.artifacts, store: deps.store, manifests, self: deps.self, log: deps.log, validate: checkReplicatedArtifact })
  const results = applier.applyMany(items)
  return results.map(r => r.status === 'applied'
    ? { outcome: 'added' as const }
    : NOT_APPLIED[r.status] != null || r.reason != null ? { outcome: 'not-applied' as const, reason: r.reason ?? NOT_APPLIED[r.status] } : { outcome: 'skipped' as const })
}

/** The running node learns (and gossips) the bundle's revocations before it checks the manifests. */
async function postRevocations (node: { url: string, token: string }, revocations: Uint8Array[], signal?: AbortSignal): Promise<void> {
  for (const r of revocations) {
    const res = await fetch(new URL('/-/mesh/revocations', node.url), {
      method: 'POST', headers: { authorization: `Bearer ${node.token}`, 'content-type': 'application/octet-stream' }, body: r, signal
    })
    if (res.status !== 200 && res.status !== 400) throw new Error(`the node at ${node.url} did not take a revocation of the bundle: ${res.status} ${await res.text()}`)
  }
}

async function applyThroughNode (node: { url: string, token: string }, items: AppliedItem[], signal?: AbortSignal): Promise<Array<{ outcome: ManifestOutcome, reason?: string }>> {
  const res = await fetch(new URL('/-/mesh/import', node.url), {
    method: 'POST',
    headers: { authorization: `Bearer ${node.token}`, 'content-type': 'application/octet-stream' },
    body: encodeFrames(items.map(i => i.envelope)),
    signal
  })
  const body = await res.json().catch(() => ({})) as { outcomes?: string[], error?: string }
  if (res.status !== 200 || !Array.isArray(body.outcomes)) throw new Error(`the node at ${node.url} refused the manifests: ${res.status} ${body.error ?? ''}`)
  return body.outcomes.map(o => o === 'new' ? { outcome: 'added' as const } : o === 'held' ? { outcome: 'skipped' as const } : { outcome: 'not-applied' as const, reason: 'rejected by the node (see its log)' })
}
