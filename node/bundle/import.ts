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
// Manifests of origins this node does not accept are refused one by one (stage.ts, and the
// running node's own check before any blob is committed), reported, recorded (refusals.ts), and
// their blobs left out; `strict` refuses the whole bundle instead.
import type { MembershipCheck } from '../../mesh/membership.ts'
import type { Logger } from 'pino'
import { rm } from 'node:fs/promises'
import { RemoteApplier, type ApplyStatus } from '../../store/apply.ts'
import type { RemoteChange } from '../../store/changes.ts'
import type { ArtifactIndex } from '../../store/artifacts.ts'
import type { FileBlobStore } from '../../store/blobs.ts'
import type { DB } from '../../store/db.ts'
import { integrityError } from '../../store/errors.ts'
import { CID } from 'multiformats/cid'
import { ManifestError, openEnvelope, type Manifest } from '../../mesh/manifest.ts'
import { blockMatches } from './format.ts'
import { ManifestLog } from '../../store/manifests.ts'
import { Progress } from './progress.ts'
import { RefusedBundleError, stageBundle, type StagedBlob, type StagedBundle } from './stage.ts'
import { checkBase, coverageWarnings, type CoverageContext } from './coverage.ts'
import { holds } from './held.ts'
import { readRefusals, recordRefusals, type RefusalRecord, type RefusedManifest } from './refusals.ts'
import { findVolumes, VolumeReader } from './volumes.ts'
import { applyThroughNode, postRevocations, refusedByNode } from './node-client.ts'

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
  /** Refuse the whole bundle if this node does not accept the origin of any manifest in it. */
  strict?: boolean
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
  /** Manifests whose origin this node does not accept (not applied, not stored), and why. */
  refused: Array<Omit<RefusedManifest, 'prev' | 'cid'>>
  /** withheld: blobs only refused manifests name, left out (not read from the bundle). */
  blobs: { added: number, addedBytes: number, skipped: number, resumed: number, withheld: number }
  summary: string
}

export async function importBundle (deps: ImportDeps, opts: ImportOptions): Promise<ImportReport> {
  // The formats' validators (every format's code, ~150 modules) load while the bundle is staged,
  // which mostly waits for the disk; only the direct path applies here.
  const validator = opts.node == null ? import('../artifact-check.ts') : undefined
  validator?.catch(() => {}) // awaited where it is used
  const volumes = await findVolumes(opts.bundle)
  const reader = new VolumeReader(volumes)
  const progress = new Progress('import', reader.total, { enabled: opts.progress })
  let staged: StagedBundle
  try {
    staged = await stageBundle(reader, { dataDir: deps.dataDir, store: deps.store, mesh: deps.mesh, membership: deps.membership, strict: opts.strict, signal: opts.signal, progress })
  } finally {
    await reader.close()
  }
  progress.finish()
  // A running node decides with its own certificates: what it refuses is left out like the rest.
  if (opts.node != null) {
    // The node learns (and gossips) the bundle's revocations before it checks the manifests.
    await postRevocations(opts.node, staged.index.revocations ?? [], opts.signal)
    await refusedByNode(opts.node, staged, opts.signal)
  }
  if (opts.strict === true && staged.refused.length > 0) {
    await rm(staged.dir, { recursive: true, force: true })
    throw new RefusedBundleError(staged.refused)
  }
  const manifests = new ManifestLog(deps.db)
  const coverage = (refusals: RefusalRecord): CoverageContext => ({
    db: deps.db, manifests, refusals, refuses: (origin, repo) => deps.membership.admit(origin, repo) != null
  })
  checkFiles(staged, deps.store)
  if (opts.allowGaps !== true) checkBase(staged.index, coverage(await readRefusals(deps.dataDir)))

  // The envelopes to apply (owned bytes, nothing else writes them), verified as they are.
  const items = await recheckEnvelopes(staged, deps)

  // Commit: blobs first (invisible until a manifest names them), then every manifest at once.
  // Only blobs a manifest to apply names: the others stay in the staging directory, removed below.
  const wanted = new Set(items.flatMap(i => i.change.files.map(f => f.cid)))
  let addedBytes = 0
  let added = 0
  let withheld = staged.withheld.length
  const toCommit: StagedBlob[] = []
  for (const b of staged.staged.values()) {
    if (!wanted.has(b.cid)) { withheld++; continue }
    if (deps.store.has(b.cid)) continue
    toCommit.push(b)
  }
  // A few at a time: each commit waits for a rename and two fsyncs (its directory, the index).
  await eachConcurrently(toCommit, COMMITS_IN_FLIGHT, async b => {
    opts.signal?.throwIfAborted()
    await deps.store.commitTemp(b.path, b.digests)
    await rm(`${b.path}.json`, { force: true })
    added++
    addedBytes += b.digests.size
  })
  const outcomes = items.length === 0
    ? []
    : opts.node != null
      ? await applyThroughNode(opts.node, items, opts.signal)
      : applyHere(deps, manifests, items, (await (validator ?? import('../artifact-check.ts'))).checkReplicatedArtifact)
  await rm(staged.dir, { recursive: true, force: true })
  const refusals = await recordRefusals(deps.dataDir, staged.root, staged.refused, holds(deps.db))

  const { index } = staged
  return {
    root: staged.root,
    exporter: { peerId: index.exporter, ...(index.exporterName != null ? { name: index.exporterName } : {}), createdAt: index.createdAt },
    warnings: coverageWarnings(index, coverage(refusals)),
    manifests: staged.items.map(({ change }, i) => ({
      origin: change.origin, seq: change.seq, repo: change.repo, name: change.name, version: change.version, kind: change.kind, ...outcomes[i]
    })),
    refused: staged.refused.map(({ origin, seq, kind, repo, name, version, reason, message }) => ({ origin, seq, kind, repo, name, version, reason, message })),
    blobs: { added, addedBytes, skipped: staged.held.length + staged.staged.size - added - (withheld - staged.withheld.length), resumed: staged.resumed.length, withheld },
    summary: progress.summary()
  }
}

const COMMITS_IN_FLIGHT = 4

/** Runs `fn` over `items`, at most `limit` at once; once one fails no more start, and the first
 *  error is thrown after those in flight settle. */
async function eachConcurrently<T> (items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  let failure: { err: unknown } | undefined
  const lane = async (): Promise<void> => {
    while (failure == null && next < items.length) {
      try { await fn(items[next++]) } catch (err) { failure ??= { err } }
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane))
  if (failure != null) throw failure.err
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

export interface AppliedItem { change: Manifest, envelope: Uint8Array }

const NOT_APPLIED: Partial<Record<ApplyStatus, string>> = {
  'unknown-repository': 'no such repository here (kept for forwarding)',
  'format-mismatch': 'the repository of that name here holds another format',
  'blob-mismatch': 'contradicts the bytes of a blob held here'
}

function applyHere (deps: ImportDeps, manifests: ManifestLog, items: AppliedItem[], validate: (format: string, change: RemoteChange) => void): Array<{ outcome: ManifestOutcome, reason?: string }> {
  const applier = new RemoteApplier({ db: deps.db, artifacts: deps.artifacts, store: deps.store, manifests, self: deps.self, log: deps.log, validate })
  const results = applier.applyMany(items)
  return results.map(r => r.status === 'applied'
    ? { outcome: 'added' as const }
    : NOT_APPLIED[r.status] != null || r.reason != null ? { outcome: 'not-applied' as const, reason: r.reason ?? NOT_APPLIED[r.status] } : { outcome: 'skipped' as const })
}
