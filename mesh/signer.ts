// Turns this node's change-log rows into signed manifests in the manifest log (seq = the row's
// seq, origin = this node's peer ID): after each commit, and at start for rows a crash left
// unsigned. Listeners (gossip) get each new envelope.
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { Logger } from 'pino'
import type { ArtifactIndex } from '../store/artifacts.ts'
import { ChangeLog } from '../store/changes.ts'
import type { DB } from '../store/db.ts'
import type { ManifestLog } from '../store/manifests.ts'
import { payloadSigner, type PayloadSigner } from './ed25519-signer.ts'
import { MAX_ENVELOPE_BYTES, buildManifest, signManifest, type BlobCatalog, type Manifest } from './manifest.ts'

export interface SignerDeps {
  db: DB
  artifacts: ArtifactIndex
  store: BlobCatalog
  manifests: ManifestLog
  mesh: string
  privateKey: PrivateKey
  log?: Logger
}

export interface SignedManifest { manifest: Manifest, envelope: Uint8Array }

const BATCH = 100

export class ManifestSigner {
  readonly peerId: string
  readonly #d: SignerDeps
  readonly #changes: ChangeLog
  readonly #key: PayloadSigner
  readonly #listeners = new Set<(m: SignedManifest) => void>()
  #unsubscribe: (() => void) | undefined
  #running: Promise<void> | undefined
  #again = false

  constructor (deps: SignerDeps) {
    this.#d = deps
    this.peerId = peerIdFromPrivateKey(deps.privateKey).toString()
    this.#changes = new ChangeLog(deps.db)
    this.#key = payloadSigner(deps.privateKey)
  }

  /** Signs what a crash left unsigned, then follows every commit. */
  async start (): Promise<void> {
    this.#unsubscribe ??= this.#d.artifacts.onCommit(() => { void this.signPending().catch(() => {}) })
    await this.signPending()
  }

  /** Stops following commits and waits for the signing in progress. */
  async stop (): Promise<void> {
    this.#unsubscribe?.()
    this.#unsubscribe = undefined
    await this.#running?.catch(() => {})
  }

  /** Calls `listener` with each manifest signed from now on. Returns a function that removes it. */
  onManifest (listener: (m: SignedManifest) => void): () => void {
    this.#listeners.add(listener)
    return () => { this.#listeners.delete(listener) }
  }

  /** Signs every local change not yet in the manifest log; resolves when none is left. Calls made
   *  while a pass runs coalesce into one more pass. */
  signPending (): Promise<void> {
    if (this.#running != null) {
      this.#again = true
      return this.#running
    }
    this.#running = (async () => {
      try {
        do {
          this.#again = false
          await this.#drain()
        } while (this.#again)
      } finally {
        this.#running = undefined
      }
    })()
    this.#running.catch((err: unknown) => { this.#d.log?.error({ err }, 'signing manifests failed') })
    return this.#running
  }

  async #drain (): Promise<void> {
    const { artifacts, manifests, mesh, store } = this.#d
    for (;;) {
      let prev = manifests.latest(this.peerId)
      const rows = this.#changes.localAfter(prev, BATCH)
      if (rows.length === 0) return
      for (const change of rows) {
        const format = artifacts.repositoryFormat(change.repo)
        if (format == null) throw new Error(`change ${change.seq}: repository ${change.repo} is not declared`)
        const manifest = await buildManifest(change, { mesh, origin: this.peerId, prev, format, blobs: store })
        const envelope = await signManifest(manifest, this.#key)
        if (envelope.byteLength > MAX_ENVELOPE_BYTES) {
          // Peers will refuse it (too-large); the change stays local. Logged so it is not silent.
          this.#d.log?.error({ seq: change.seq, repo: change.repo, name: change.name, version: change.version, bytes: envelope.byteLength }, 'manifest too large to replicate')
        }
        manifests.insert({
          origin: this.peerId, seq: change.seq, prev, kind: change.kind, repo: change.repo, name: change.name,
          version: change.version, timestamp: change.at, envelope
        })
        prev = change.seq
        for (const l of this.#listeners) {
          try { l({ manifest, envelope }) } catch (err) { this.#d.log?.error({ err }, 'manifest listener failed') }
        }
      }
    }
  }
}
