// Keeps connections to the bootstrap peers: dials each at start, re-dials with exponential
// backoff while it is unreachable or after it disconnects; follows peering file edits.
import type { PeerId } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import type { Logger } from 'pino'
import { peerIdOfMultiaddr } from '../config/peering-schema.ts'
import { describeError } from './errors.ts'
import type { MeshLibp2p } from './libp2p.ts'

export interface BootstrapInit {
  libp2p: MeshLibp2p
  log: Logger
  signal: AbortSignal
  /** Backoff bounds; the delay doubles per failure, with jitter. */
  minDelayMs?: number
  maxDelayMs?: number
  dialTimeoutMs?: number
}

interface Target {
  peerId: string
  addrs: Multiaddr[]
  failures: number
  timer?: NodeJS.Timeout
  dialing: boolean
}

export class BootstrapDialer {
  readonly #init: Required<BootstrapInit>
  readonly #targets = new Map<string, Target>()

  constructor (init: BootstrapInit) {
    this.#init = { minDelayMs: 500, maxDelayMs: 30_000, dialTimeoutMs: 10_000, ...init }
    // Failures are not reset here: a peer that accepts then drops us (its allowlist) must
    // back off like one that refuses, not be re-dialed in a tight loop.
    const onDisconnect = (evt: CustomEvent<PeerId>) => {
      const t = this.#targets.get(evt.detail.toString())
      if (t != null && !t.dialing) this.#schedule(t, this.#backoff(t))
    }
    init.libp2p.addEventListener('peer:disconnect', onDisconnect)
    init.signal.addEventListener('abort', () => {
      init.libp2p.removeEventListener('peer:disconnect', onDisconnect)
      for (const t of this.#targets.values()) clearTimeout(t.timer)
    }, { once: true })
  }

  /** Sets the bootstrap list: new peers are dialed now, removed ones are no longer re-dialed.
   *  Peers that were failing are retried at once (an allowlist edit may be what they needed). */
  update (bootstrap: string[]): void {
    const wanted = new Map<string, Multiaddr[]>()
    for (const s of bootstrap) {
      const id = peerIdOfMultiaddr(s)
      if (id != null) wanted.set(id, [...(wanted.get(id) ?? []), multiaddr(s)])
    }
    for (const [id, t] of this.#targets) {
      if (!wanted.has(id)) { clearTimeout(t.timer); this.#targets.delete(id) }
    }
    for (const [id, addrs] of wanted) {
      const t = this.#targets.get(id)
      if (t == null) {
        const nt: Target = { peerId: id, addrs, failures: 0, dialing: false }
        this.#targets.set(id, nt)
        this.#schedule(nt, 0)
      } else {
        t.addrs = addrs
        if (t.failures > 0) { t.failures = 0; this.#schedule(t, 0) }
      }
    }
  }

  #backoff (t: Target): number {
    if (t.failures === 0) return this.#init.minDelayMs
    return Math.min(this.#init.maxDelayMs, this.#init.minDelayMs * 2 ** (t.failures - 1)) * (0.75 + Math.random() / 2)
  }

  #schedule (t: Target, delayMs: number): void {
    if (this.#init.signal.aborted) return
    clearTimeout(t.timer)
    t.timer = setTimeout(() => { void this.#dial(t) }, delayMs)
    t.timer.unref()
  }

  async #dial (t: Target): Promise<void> {
    const { libp2p, log, signal } = this.#init
    if (signal.aborted || t.dialing || this.#targets.get(t.peerId) !== t) return
    if (libp2p.getPeers().some(p => p.toString() === t.peerId)) { t.failures = 0; return }
    t.dialing = true
    try {
      const opts = { signal: AbortSignal.any([signal, AbortSignal.timeout(this.#init.dialTimeoutMs)]) }
      await libp2p.dial(t.addrs, opts)
      // The dialer's side of an upgrade can complete before the remote's gater closes the
      // connection (multistream-select is optimistic): one round trip proves we were admitted.
      try {
        await libp2p.services.ping.ping(peerIdFromString(t.peerId), opts)
      } catch (err: any) {
        await libp2p.hangUp(peerIdFromString(t.peerId)).catch(() => {})
        throw new Error(`connected but the peer closed the connection (not in its allowlist, or another mesh?): ${describeError(err)}`)
      }
      t.failures = 0
      log.info({ peer: t.peerId }, 'bootstrap peer connected')
    } catch (err: any) {
      if (signal.aborted) return
      t.failures++
      const delay = this.#backoff(t)
      // The first failure is news; the retries of a peer that is down are not.
      log[t.failures === 1 ? 'warn' : 'debug']({ peer: t.peerId, error: describeError(err), failures: t.failures, retryInMs: Math.round(delay) }, 'bootstrap dial failed')
      this.#schedule(t, delay)
    } finally {
      t.dialing = false
    }
  }
}
