// The libp2p node of a mesh member: TCP + Noise + Yamux, identify, ping, a private kad-DHT and
// gossipsub, an allowlist connection gater and an optional pre-shared key (private network).
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { createHash } from 'node:crypto'
import { StrictNoSign, gossipsub, type GossipSub } from '@libp2p/gossipsub'
import { identify, type Identify } from '@libp2p/identify'
import type { ConnectionGater, MultiaddrConnection, PeerId, PrivateKey } from '@libp2p/interface'
import { kadDHT, passthroughMapper, type KadDHT } from '@libp2p/kad-dht'
import { ping, type Ping } from '@libp2p/ping'
import { preSharedKey } from '@libp2p/pnet'
import { tcp } from '@libp2p/tcp'
import { createLibp2p, type Libp2p } from 'libp2p'
import { noiseCrypto } from './noise-crypto.ts'

export type MeshServices = {
  identify: Identify
  ping: Ping
  dht: KadDHT
  pubsub: GossipSub
}

export type MeshLibp2p = Libp2p<MeshServices>

export interface MeshLibp2pInit {
  privateKey: PrivateKey
  /** Mesh name: separates DHTs (and, above this layer, gossip topics) of different meshes. */
  mesh: string
  listen: string[]
  /** Swarm key bytes (go-ipfs swarm.key text); without it the network is not private. */
  psk?: Uint8Array
  /** Consulted on every dial and every new connection, so allowlist edits apply at once. */
  isAllowed: (peerId: string) => boolean
  /** Gossipsub scores peers that are not (yet) members below its graylist: their RPCs are
   *  ignored and nothing is published to them (a peer on probation, mesh/introductions.ts). */
  isMember?: (peerId: string) => boolean
  /** Told of each connection refused because the remote peer is not allowed (mesh/index.ts logs
   *  it, throttled). */
  onRefused?: (refusal: Refusal) => void
}

export interface Refusal { peerId: string, addr: string, direction: 'inbound' | 'outbound' }

/** The DHT protocol of a mesh: nodes of different meshes never answer each other's queries. */
export const dhtProtocol = (mesh: string): string => `/akmesh/${mesh}/kad/1.0.0`

/** Denies dials to, and connections from or to, peers the allowlist does not name. The check
 *  runs once the remote peer is authenticated (after Noise), so a peer cannot claim an ID. */
export function allowlistGater (isAllowed: (peerId: string) => boolean, onRefused?: (r: Refusal) => void): ConnectionGater {
  const deny = (peerId: PeerId): boolean => !isAllowed(peerId.toString())
  const denyConnection = (direction: Refusal['direction']) => (peerId: PeerId, conn: MultiaddrConnection): boolean => {
    if (!deny(peerId)) return false
    onRefused?.({ peerId: peerId.toString(), addr: conn.remoteAddr.toString(), direction })
    return true
  }
  return {
    denyDialPeer: deny,
    denyInboundEncryptedConnection: denyConnection('inbound'),
    denyOutboundEncryptedConnection: denyConnection('outbound'),
    denyInboundUpgradedConnection: deny,
    denyOutboundUpgradedConnection: deny
  }
}

export async function createMeshLibp2p (init: MeshLibp2pInit): Promise<MeshLibp2p> {
  return await createLibp2p({
    privateKey: init.privateKey,
    addresses: { listen: init.listen },
    transports: [tcp()],
    connectionEncrypters: [noise({ crypto: noiseCrypto })],
    streamMuxers: [yamux()],
    ...(init.psk != null ? { connectionProtector: preSharedKey({ psk: init.psk }) } : {}),
    connectionGater: allowlistGater(init.isAllowed, init.onRefused),
    services: {
      identify: identify(),
      // More than one at a time per connection: the bootstrap check and RTT profiling
      // (mesh/profiles.ts) may ping a peer at once; the default of one refuses the second.
      ping: ping({ maxOutboundStreams: 4, maxInboundStreams: 4 }),
      // A mesh of known peers on private networks: every member is a full DHT server, and
      // private addresses are kept (the default mapper for the public DHT would drop them).
      dht: kadDHT({ protocol: dhtProtocol(init.mesh), clientMode: false, peerInfoMapper: passthroughMapper }),
      // Manifests carry their origin's signature, so pubsub messages are unsigned and identified
      // by content: the same envelope published by two members is one message (no loops, no
      // duplicates when a node re-publishes what it caught up). A few known peers: the default
      // D=6/Dlo=4 just means every subscribed peer is in the mesh; floodPublish (default on)
      // sends our own manifests to every subscribed peer directly.
      pubsub: gossipsub({
        allowPublishToZeroTopicPeers: true,
        emitSelf: false,
        ignoreDuplicatePublishError: true,
        globalSignaturePolicy: StrictNoSign,
        msgIdFn: (msg) => createHash('sha256').update(msg.data).digest(),
        // × appSpecificWeight 10: -1000, far below the graylist threshold (-80).
        ...(init.isMember != null ? { scoreParams: { appSpecificScore: (peer: string) => init.isMember?.(peer) === false ? -100 : 0 } } : {})
      })
    }
  })
}
