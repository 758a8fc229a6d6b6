// The state of one blob transfer in the fetcher (mesh/fetcher.ts): its partial file, swarm,
// waiting readers, and the record the admin API shows.
import type { PartialBlob } from '../store/partial.ts'
import type { SourceStats, Swarm } from './swarm.ts'

/** Relay hops a fetch of our own may ask for (A–B–C needs one: B relays for C). */
export const RELAY_HOPS = 2

/** What the admin API shows of a transfer. */
export interface TransferRecord {
  cid: string
  size: number
  status: 'running' | 'done' | 'failed'
  startedAt: number
  finishedAt: number | null
  /** Chunks already here when it started (a resumed transfer). */
  resumedChunks: number
  error?: string
  sources: Record<string, SourceStats>
  /** `origin/seq` of the signed manifest whose SHA digests were recorded for the blob (not
   *  recomputed here: mesh/README.md, "Verify once at the origin"). */
  digestsSignedBy?: string
}

/** One blob being fetched: readers wait on `changed`. */
export class Fetch {
  partial: PartialBlob | undefined
  swarm: Swarm | undefined
  failed: unknown
  committed = false
  /** Started for a peer (relay): fetched in order, since the peer streams it on. */
  relayed = false
  /** How many relay hops this fetch may ask peers for, when no holder is reachable. */
  relayHops = RELAY_HOPS
  readonly readers = new Set<{ pos: number }>()
  readonly record: TransferRecord
  #wake: Array<() => void> = []

  constructor (cid: string, size: number) {
    this.record = { cid, size, status: 'running', startedAt: Date.now(), finishedAt: null, resumedChunks: 0, sources: {} }
  }

  changed (): void { const w = this.#wake; this.#wake = []; for (const f of w) f() }
  async waitChange (): Promise<void> { await new Promise<void>(resolve => this.#wake.push(resolve)) }

  /** The lowest chunk a reader waits for (undefined: none waits). */
  urgentFrom (): number | undefined {
    let m: number | undefined = this.relayed ? 0 : undefined
    for (const r of this.readers) if (m == null || r.pos < m) m = r.pos
    return m
  }
}

