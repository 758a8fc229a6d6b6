// The mesh service: identity + peering file + libp2p node + bootstrap dialing, following edits
// of the peering file. Manifest gossip and catch-up plug in on top of the returned handle.
import type { PeerId } from '@libp2p/interface'
import type { Logger } from 'pino'
import { LivePeering, type PeeringListener } from '../config/peering.ts'
import type { Peering } from '../config/peering-schema.ts'
import { Introductions } from './introductions.ts'
import { Membership } from './membership.ts'
import { BootstrapDialer } from './bootstrap.ts'
import { ConnectedPeersFile } from './connected-file.ts'
import { loadIdentity } from './identity.ts'
import { OncePer } from './once-per.ts'
import { createMeshLibp2p, type MeshLibp2p } from './libp2p.ts'
import { Replication, type ReplicationStorage } from './replication.ts'
import { describeError } from './errors.ts'

/** A refused peer is logged again after this long if it keeps trying. */
const ONCE_PER_MS = 60 * 60_000

export interface MeshInit {
  dataDir: string
  /** A live peering file, or its path (then the mesh opens it and closes it on stop). */
  peering: LivePeering | string
  log: Logger
  signal?: AbortSignal
  /** Overrides the TCP port of every listen address (0: an ephemeral port, for tests). */
  listenPort?: number
  /** The store to replicate (signer, applier, gossip, catch-up); without it, no replication. */
  storage?: ReplicationStorage
}

export interface MeshPeer {
  peerId: string
  addrs: string[]
  direction: 'inbound' | 'outbound'
}

export interface Mesh {
  peerId: PeerId
  libp2p: MeshLibp2p
  peering: LivePeering
  replication?: Replication
  membership: Membership
  introductions: Introductions
  /** The addresses this node listens on, each ending in /p2p/<peerId>. */
  multiaddrs (): string[]
  /** Connected peers with the addresses of their connections. */
  peers (): MeshPeer[]
  stop (): Promise<void>
}

export async function startMesh (init: MeshInit): Promise<Mesh> {
  const log = init.log.child({ component: 'mesh' })
  const ownsPeering = typeof init.peering === 'string'
  const peering = typeof init.peering === 'string' ? await LivePeering.open(init.peering, { log }) : init.peering
  const controller = new AbortController()
  const onAbort = () => { void stop() }
  init.signal?.addEventListener('abort', onAbort, { once: true })

  const refusals = new OncePer(ONCE_PER_MS)
  let libp2p: MeshLibp2p | undefined
  let replication: Replication | undefined
  let membership: Membership | undefined
  let introductions: Introductions | undefined
  // A peer may connect if it is a known member the connect rules let in, or (with a mesh root)
  // on probation until it presents its certificate (mesh/introductions.ts).
  const mayConnect = (peer: string): boolean => membership?.mayConnect(peer) === true || introductions?.mayProbate(peer) === true
  try {
    const identity = await loadIdentity(init.dataDir)
    if (identity.created) log.info({ peerId: identity.peerId.toString(), file: identity.file }, 'generated node identity')
    const self = identity.peerId.toString()
    const started = peering.current
    const members = membership = await Membership.open({ dataDir: init.dataDir, self, peering: () => peering.current, log })
    libp2p = await createMeshLibp2p({
      privateKey: identity.privateKey,
      mesh: started.mesh,
      listen: init.listenPort == null ? started.listen : started.listen.map(a => withTcpPort(a, init.listenPort as number)),
      psk: started.pskKey,
      // Reads the live file on every check: allowlist edits apply to the next connection.
      isAllowed: mayConnect,
      isMember: (peer) => members.isMember(peer),
      onRefused: (r) => { if (refusals.due(r.peerId)) log.warn({ peer: r.peerId, addr: r.addr, direction: r.direction, nextLogInMs: ONCE_PER_MS }, 'refused a connection: the peer is not a known member (no certificate held, not in the allowlist), or the connect rules exclude it (logged once an hour per peer)') }
    })
    if (init.storage != null) {
      replication = new Replication({ ...init.storage, libp2p, peering, membership: members, privateKey: identity.privateKey, log })
      await replication.start()
    }
    introductions = new Introductions({
      libp2p, mesh: started.mesh, membership: members, peering: () => peering.current, log
    })
    await introductions.start()
  } catch (err) {
    try { await replication?.stop() } catch {}
    try { await libp2p?.stop() } catch {}
    init.signal?.removeEventListener('abort', onAbort)
    if (ownsPeering) peering.close()
    throw err
  }
  const node = libp2p
  const members = membership
  const intros = introductions
  const dialer = new BootstrapDialer({ libp2p: node, log, signal: controller.signal })

  const onChange: PeeringListener = (next, previous) => {
    for (const key of ['mesh', 'listen', 'psk'] as const) {
      if (JSON.stringify(next[key]) !== JSON.stringify(previous[key])) log.warn({ key }, 'peering file: this change takes effect at the next restart')
    }
    for (const peer of node.getPeers()) {
      if (!members.mayConnect(peer.toString()) && !intros.onProbation(peer.toString())) {
        log.info({ peer: peer.toString() }, 'disconnecting peer no longer in the allowlist, or excluded by the connect rules')
        node.hangUp(peer).catch((err: any) => log.warn({ peer: peer.toString(), error: describeError(err) }, 'hang up failed'))
      }
    }
    dialer.update(next.bootstrap)
  }
  const unsubscribe = peering.subscribe(onChange)

  const peers = (): MeshPeer[] => node.getConnections().reduce<MeshPeer[]>((acc, c) => {
    const id = c.remotePeer.toString()
    const existing = acc.find(p => p.peerId === id)
    if (existing != null) existing.addrs.push(c.remoteAddr.toString())
    else acc.push({ peerId: id, addrs: [c.remoteAddr.toString()], direction: c.direction })
    return acc
  }, [])
  const connected = new ConnectedPeersFile(init.dataDir, peers, log)
  node.addEventListener('peer:connect', connected.changed)
  node.addEventListener('peer:disconnect', connected.changed)
  await connected.start()

  const multiaddrs = () => node.getMultiaddrs().map(String)
  log.info({ peerId: node.peerId.toString(), multiaddrs: multiaddrs(), mesh: peering.current.mesh, private: peering.current.pskKey != null }, 'mesh listening')
  dialer.update(peering.current.bootstrap)

  let stopping: Promise<void> | undefined
  async function stop (): Promise<void> {
    stopping ??= (async () => {
      init.signal?.removeEventListener('abort', onAbort)
      unsubscribe()
      controller.abort()
      await intros.stop()
      await replication?.stop()
      node.removeEventListener('peer:connect', connected.changed)
      node.removeEventListener('peer:disconnect', connected.changed)
      await node.stop()
      await connected.stop()
      if (ownsPeering) peering.close()
    })()
    await stopping
  }

  return {
    peerId: node.peerId,
    libp2p: node,
    peering,
    replication,
    membership: members,
    introductions: intros,
    multiaddrs,
    peers,
    stop
  }
}

/** `/ip4/0.0.0.0/tcp/7071` with port 0 → `/ip4/0.0.0.0/tcp/0`; addresses without TCP are kept. */
export function withTcpPort (addr: string, port: number): string {
  return addr.replace(/\/tcp\/\d+/, `/tcp/${port}`)
}

export type { Peering }
