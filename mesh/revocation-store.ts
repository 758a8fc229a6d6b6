// The revocations a node holds (verified against the mesh root), kept in the data directory so a
// restart refuses what it refused before. One per peer: a second revocation of the same peer only
// ever makes it stricter (all, or an earlier time), so a revocation is final for that peer ID.
import * as dagCbor from '@ipld/dag-cbor'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { writeFileAtomic } from '../config/atomic-file.ts'
import type { MeshIdentity } from './certificates.ts'
import { RevocationError, stricter, verifyRevocation, type Revocation } from './revocations.ts'

/** Revocations learned by any path (a dag-cbor list of envelopes; re-verified at start). */
export const REVOCATIONS_FILE = 'mesh-revocations.cbor'

export interface LearnedRevocation {
  /** The revocation now in force for its peer (the stricter of what was held and what came). */
  revocation: Revocation
  /** Did this change what is refused (new peer, or stricter than what was held)? */
  fresh: boolean
}

export class RevocationStore {
  readonly #file: string
  readonly #held = new Map<string, { revocation: Revocation, bytes: Uint8Array }>()

  constructor (dataDir: string) { this.#file = join(dataDir, REVOCATIONS_FILE) }

  /** Loads the revocations kept before; those that do not verify against `mesh` are dropped. */
  async load (mesh: MeshIdentity | undefined): Promise<void> {
    if (mesh == null) return
    let bytes: Uint8Array
    try { bytes = await readFile(this.#file) } catch (e: any) {
      if (e.code === 'ENOENT') return
      throw new Error(`${this.#file}: cannot read (${e.code ?? e.message})`)
    }
    let list: unknown = []
    try { list = dagCbor.decode(bytes) } catch {}
    for (const b of Array.isArray(list) ? list : []) {
      if (!(b instanceof Uint8Array)) continue
      try { await this.learn(b, mesh, { persist: false }) } catch (err) { if (!(err instanceof RevocationError)) throw err }
    }
  }

  /** Verifies and keeps a revocation; throws RevocationError when it does not verify. */
  async learn (bytes: Uint8Array, mesh: MeshIdentity | undefined, opts: { persist?: boolean } = {}): Promise<LearnedRevocation> {
    if (mesh == null) throw new RevocationError('no-root', 'this node has no mesh root (meshRoot in the peering file): it cannot verify a revocation')
    // Catch-up passes every revocation every round: one held already is not verified again.
    for (const h of this.#held.values()) if (sameBytes(h.bytes, bytes)) return { revocation: h.revocation, fresh: false }
    const revocation = await verifyRevocation(bytes, mesh)
    const held = this.#held.get(revocation.peer)
    if (held != null && stricter(held.revocation, revocation) === held.revocation) return { revocation: held.revocation, fresh: false }
    this.#held.set(revocation.peer, { revocation, bytes })
    if (opts.persist !== false) await writeFileAtomic(this.#file, dagCbor.encode(this.envelopes()))
    return { revocation, fresh: true }
  }

  get (peer: string): Revocation | undefined { return this.#held.get(peer)?.revocation }
  list (): Revocation[] { return [...this.#held.values()].map(h => h.revocation) }
  /** The envelopes (to pass on with catch-up and in bundles). */
  envelopes (): Uint8Array[] { return [...this.#held.values()].map(h => h.bytes) }
}

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => a.byteLength === b.byteLength && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b)
