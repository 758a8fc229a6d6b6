// Throughput probes of idle links, so the swarm scheduler (mesh/swarm.ts) knows a peer's rate
// before the first transfer that needs it: one small transfer per stale link, only while no
// fetch runs (a probe must not compete with real work).
import type { Logger } from 'pino'
import type { MeshLibp2p } from './libp2p.ts'
import type { PeerProfiles } from './profiles.ts'
import type { BlobClient } from './transfer.ts'
import { describeError } from './errors.ts'

/** Idle links get a throughput probe when last measured longer ago than this. */
const PROBE_STALE_MS = 10 * 60_000
const PROBE_BYTES = 256 * 1024
const PROBE_INTERVAL_MS = 60_000

export interface LinkProberInit {
  libp2p: MeshLibp2p
  client: BlobClient
  profiles: PeerProfiles
  /** Whether a fetch runs now (then no probe). */
  busy: () => boolean
  signal: AbortSignal
  log: Logger
}

export class LinkProber {
  readonly #i: LinkProberInit
  #timer: ReturnType<typeof setInterval> | undefined

  constructor (init: LinkProberInit) { this.#i = init }

  start (): void {
    this.#timer = setInterval(() => { void this.probeOne() }, PROBE_INTERVAL_MS)
    this.#timer.unref?.()
  }

  stop (): void { clearInterval(this.#timer) }

  /** Measures one idle link whose throughput is stale (mesh/profiles.ts). */
  async probeOne (): Promise<void> {
    const { libp2p, client, profiles, signal, log } = this.#i
    if (this.#i.busy()) return
    const peer = libp2p.getPeers().find(p => !profiles.measuredWithin(p, PROBE_STALE_MS))
    if (peer == null) return
    const started = performance.now()
    try {
      await client.probe(peer, PROBE_BYTES, AbortSignal.any([signal, AbortSignal.timeout(10_000)]))
      profiles.recordTransfer(peer, PROBE_BYTES, performance.now() - started, { chunk: false })
    } catch (err: any) {
      log.debug({ peer: peer.toString(), error: describeError(err) }, 'probe failed')
    }
  }
}
