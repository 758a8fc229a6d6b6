// Replication: signs local changes (ManifestSigner), applies verified remote manifests
// (RemoteApplier), spreads them by gossip (mesh/gossip.ts) and repairs gaps by catch-up
// (mesh/sync.ts). Every manifest, from gossip or catch-up, goes through `receive`/`receiveMany`:
// the same checks (openEnvelope with the live allowlist) before anything is applied.
import type { PrivateKey } from '@libp2p/interface'
import type { Logger } from 'pino'
import type { LivePeering } from '../config/peering.ts'
import { replicationFor } from '../config/peering-schema.ts'
import type { Membership } from './membership.ts'
import { RemoteApplier, type ApplyDeps, type ApplyResult } from '../store/apply.ts'
import type { ArtifactIndex } from '../store/artifacts.ts'
import type { FileBlobStore } from '../store/blobs.ts'
import type { DB } from '../store/db.ts'
import { ManifestLog } from '../store/manifests.ts'
import { ManifestGossip } from './gossip.ts'
import type { MeshLibp2p } from './libp2p.ts'
import { ManifestError, openEnvelope, type Manifest } from './manifest.ts'
import { RejectionLog, type Rejection } from './rejections.ts'
import { ManifestSigner } from './signer.ts'
import { ManifestSync } from './sync.ts'
import { OncePer } from './once-per.ts'
import type { LearnedRevocation } from './revocation-store.ts'
import { isRevocationEnvelope, RevocationError } from './revocations.ts'

/** What the mesh needs from the store to replicate (store/ objects, no format knowledge). */
export interface ReplicationStorage {
  db: DB
  artifacts: ArtifactIndex
  store: FileBlobStore
  /** The formats' rules for what a change may name (node/ passes FormatHandler.validateArtifact;
   *  the mesh knows no format). A change that fails is kept for forwarding, not applied. */
  validate?: ApplyDeps['validate']
}

export interface ReplicationInit extends ReplicationStorage {
  libp2p: MeshLibp2p
  peering: LivePeering
  membership: Membership
  privateKey: PrivateKey
  log: Logger
}

/** 'new': held now and not before (forward it); 'held': nothing new; 'rejected': failed a check. */
export type ReceiveOutcome = 'new' | 'held' | 'rejected'

export interface ManifestReceiver {
  receive (envelope: Uint8Array, from: { via: string, peer: string }): Promise<ReceiveOutcome>
}

export interface ReplicationStatus {
  /** Per origin: every manifest up to this seq is held. */
  watermarks: Record<string, number>
  /** Per origin: the highest seq held (above its watermark while an earlier one is missing). */
  heads: Record<string, number>
  received: number
  rejected: number
  /** Distinct recent rejections (origin, reason, count, first/last seen), most recent first. */
  rejections: Rejection[]
  conflicts: number
  /** Origins that signed two different manifests for one seq (evidence kept in the index). */
  equivocating: Array<{ origin: string, seqs: number, envelopes: number, firstSeen: number, lastSeen: number }>
}

export class Replication implements ManifestReceiver {
  readonly manifests: ManifestLog
  readonly signer: ManifestSigner
  readonly applier: RemoteApplier
  readonly gossip: ManifestGossip
  readonly sync: ManifestSync
  readonly #i: ReplicationInit
  readonly #log: Logger
  #unsubscribe: (() => void) | undefined
  #received = 0
  readonly #rejections: RejectionLog
  /** An origin without a certificate here triggers at most one immediate catch-up per 10 s. */
  readonly #askedForCertificate = new OncePer(10_000)
  readonly #applied = new Set<(m: Manifest) => void>()

  constructor (init: ReplicationInit) {
    this.#i = init
    this.#log = init.log.child({ component: 'mesh:replication' })
    this.#rejections = new RejectionLog(this.#log)
    const mesh = init.peering.current.mesh
    this.manifests = new ManifestLog(init.db)
    this.signer = new ManifestSigner({ db: init.db, artifacts: init.artifacts, store: init.store, manifests: this.manifests, mesh, privateKey: init.privateKey, log: this.#log })
    this.applier = new RemoteApplier({
      db: init.db, artifacts: init.artifacts, store: init.store, manifests: this.manifests, self: this.signer.peerId, log: this.#log,
      replicates: (repo) => replicationFor(init.peering.current, repo) !== 'none',
      validate: init.validate
    })
    this.gossip = new ManifestGossip({ libp2p: init.libp2p, mesh, receiver: this, log: init.log, isMember: (p) => init.membership.isMember(p) })
    this.sync = new ManifestSync({ libp2p: init.libp2p, mesh, manifests: this.manifests, receiver: this, log: init.log, certificates: init.membership })
  }

  async start (): Promise<void> {
    this.gossip.start()
    this.#unsubscribe = this.signer.onManifest(({ envelope }) => { this.gossip.publish(envelope) })
    await this.signer.start()
    await this.sync.start()
  }

  async stop (): Promise<void> {
    this.#unsubscribe?.()
    await this.sync.stop()
    this.gossip.stop()
    await this.signer.stop()
  }

  async #open (envelope: Uint8Array, from: { via: string, peer: string }): Promise<Manifest | undefined> {
    const peering = this.#i.peering.current
    try {
      return await openEnvelope(envelope, { mesh: peering.mesh, admit: (o, repo, signedAt) => this.#i.membership.admit(o, repo, { signedAt }) })
    } catch (err) {
      const e = err instanceof ManifestError ? err : undefined
      this.#rejections.record({ origin: e?.origin, reason: e?.reason ?? 'error', message: (err as Error).message, ...from })
      // Gossip carries no certificates: a manifest of an origin we hold none for makes us catch up
      // from the relayer at once (catch-up passes the certificates of the origins it sends).
      if (e?.reason === 'not-allowed' && from.via === 'gossip' && e.origin != null && this.#askedForCertificate.due(e.origin)) {
        const relayer = this.#i.libp2p.getPeers().find(p => p.toString() === from.peer)
        if (relayer != null) void this.sync.syncWith(relayer)
      }
      return undefined
    }
  }

  /** A gossiped envelope: a manifest, or a revocation (they share the topic). */
  async receive (envelope: Uint8Array, from: { via: string, peer: string }): Promise<ReceiveOutcome> {
    if (isRevocationEnvelope(envelope)) return await this.#receiveRevocation(envelope, from)
    const [r] = await this.receiveMany([envelope], from)
    return r
  }

  async #receiveRevocation (envelope: Uint8Array, from: { via: string, peer: string }): Promise<ReceiveOutcome> {
    try {
      return (await this.#i.membership.learnRevocation(envelope)).fresh ? 'new' : 'held'
    } catch (err) {
      if (!(err instanceof RevocationError)) throw err
      if (err.reason === 'no-root') return 'held' // cannot check it here: not forwarded, no penalty
      this.#rejections.record({ reason: `revocation-${err.reason}`, message: err.message, ...from })
      return 'rejected'
    }
  }

  /** Installs a revocation signed by the root (the admin API) and gossips it to the mesh; catch-up
   *  and bundles carry it to nodes that miss the gossip. Throws RevocationError. */
  async addRevocation (envelope: Uint8Array): Promise<LearnedRevocation> {
    const learned = await this.#i.membership.learnRevocation(envelope)
    this.gossip.publish(envelope)
    return learned
  }

  /** Verifies each envelope, applies the good ones in one transaction, and publishes those new
   *  here that did not come by gossip (gossipsub forwards those itself). */
  async receiveMany (envelopes: Uint8Array[], from: { via: string, peer: string }): Promise<ReceiveOutcome[]> {
    const out: ReceiveOutcome[] = []
    const items: Array<{ change: Manifest, envelope: Uint8Array, i: number }> = []
    for (const envelope of envelopes) {
      const m = await this.#open(envelope, from)
      out.push('rejected')
      if (m != null) items.push({ change: m, envelope, i: out.length - 1 })
    }
    let results: ApplyResult[] = []
    if (items.length > 0) {
      try {
        results = this.applier.applyMany(items)
      } catch (err) {
        this.#log.error({ err, via: from.via, peer: from.peer }, 'applying manifests failed')
        return out
      }
    }
    results.forEach((r, k) => {
      const { i, envelope, change } = items[k]
      if (r.status === 'invalid') {
        // Kept in the manifest log (catch-up moves past it), never applied nor gossiped on.
        this.#rejections.record({ origin: change.origin, reason: 'invalid', message: `${change.repo} ${change.name}@${change.version} (${change.origin}/${change.seq}): ${r.reason ?? ''}`, ...from })
        return
      }
      if (r.status === 'equivocation') {
        out[i] = 'held' // the envelope held for that seq wins: nothing changes
        return
      }
      const isNew = r.status !== 'duplicate' && r.status !== 'own'
      out[i] = isNew ? 'new' : 'held'
      if (isNew) {
        this.#received++
        if (from.via !== 'gossip') this.gossip.publish(envelope)
        for (const listener of this.#applied) listener(items[k].change)
      }
    })
    return out
  }

  /** Called with each remote manifest newly applied here (blob replication hooks in here). */
  onApplied (listener: (m: Manifest) => void): () => void {
    this.#applied.add(listener)
    return () => { this.#applied.delete(listener) }
  }

  status (): ReplicationStatus {
    return {
      watermarks: Object.fromEntries(this.manifests.watermarks()),
      heads: Object.fromEntries(this.manifests.heads()),
      received: this.#received,
      rejected: this.#rejections.total,
      rejections: this.#rejections.recent(),
      conflicts: this.applier.conflicts(1000).length,
      equivocating: this.applier.equivocations()
    }
  }
}
