// The peering file (<dataDir>/peering.json): who this node meshes with. What each key means,
// its default, and how it is validated (multiaddrs and peer IDs are actually parsed).
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import bytes from 'bytes'
import { hostname } from 'node:os'
import { z } from 'zod'

const multiaddrString = z.string({ error: 'expected a multiaddr string such as /ip4/10.0.0.2/tcp/7071' })
  .superRefine((s, ctx) => {
    try { multiaddr(s) } catch (e: any) { ctx.addIssue({ code: 'custom', message: `expected a multiaddr such as /ip4/10.0.0.2/tcp/7071, got ${JSON.stringify(s)} (${e.message})` }) }
  })

/** The peer ID a multiaddr ends with (`.../p2p/<peerId>`), or undefined. */
export function peerIdOfMultiaddr (s: string): string | undefined {
  try {
    const last = multiaddr(s).getComponents().at(-1)
    return last?.name === 'p2p' ? last.value : undefined
  } catch { return undefined }
}

const peerIdString = z.string({ error: 'expected a peer ID string' }).superRefine((s, ctx) => {
  try { peerIdFromString(s) } catch { ctx.addIssue({ code: 'custom', message: `expected a peer ID such as 12D3KooW..., got ${JSON.stringify(s)}` }) }
})

const bootstrapAddr = multiaddrString.superRefine((s, ctx) => {
  let ok = false
  try { ok = peerIdOfMultiaddr(s) != null && peerIdFromString(peerIdOfMultiaddr(s) as string) != null } catch {}
  if (!ok) ctx.addIssue({ code: 'custom', message: `expected a multiaddr ending in /p2p/<peerId>, got ${JSON.stringify(s)}` })
})

export const PSK_HEADER = '/key/swarm/psk/1.0.0/'
/** go-ipfs swarm.key text: header, encoding, 32 bytes of key. */
export const PSK_PATTERN = /^\/key\/swarm\/psk\/1\.0\.0\/\r?\n\/base16\/\r?\n[0-9a-fA-F]{64}\s*$/

const replicationMode = z.enum(['mirror', 'on-demand', 'none'])

const bandwidth = z.union([z.number(), z.string(), z.null()], { error: 'expected bytes per second, a string such as 50MB, or null for unlimited' })
  .transform((v, ctx) => {
    if (v === null) return null
    const n = typeof v === 'number' ? v : bytes.parse(v)
    if (n == null || !Number.isSafeInteger(n) || n <= 0) {
      ctx.addIssue({ code: 'custom', message: `expected bytes per second such as 50MB, or null for unlimited; got ${JSON.stringify(v)}` })
      return z.NEVER
    }
    return n
  })

export const DEFAULT_LISTEN = ['/ip4/0.0.0.0/tcp/7071']

export const peeringSchema = z.object({
  /** Nodes only mesh with nodes of the same mesh name (DHT protocol and gossip topics carry it). */
  mesh: z.string().regex(/^[a-zA-Z0-9._-]{1,64}$/, 'expected 1-64 letters, digits, ".", "_" or "-"').default('default'),
  node: z.object({
    name: z.string().default(hostname()),
    site: z.string().optional(),
    region: z.string().optional()
  }).strict().default(() => ({ name: hostname() })),
  listen: z.array(multiaddrString).default(DEFAULT_LISTEN),
  /** Peers dialed at start and re-dialed when the connection drops. */
  bootstrap: z.array(bootstrapAddr).default([]),
  /** Peers allowed to connect (either way); bootstrap peers are not implicitly allowed. */
  allow: z.array(z.union([z.literal('*'), peerIdString])).default([]),
  /** The mesh root public key (as the Ed25519 peer ID it derives): members are the holders of
   *  certificates it signed (mesh/membership.ts); written by `akmesh mesh join`. */
  meshRoot: peerIdString.optional(),
  /** This node's member certificate file (`akmesh mesh invite` output), relative to this file:
   *  instead of the copy `akmesh mesh join` keeps in the data directory. Read at start. */
  certificate: z.string().min(1).optional(),
  /** Who may connect, apart from who is a member: `only` these / never these, each entry a peer ID
   *  or `site:<name>` (the site of the peer's certificate). Absent: every member may connect. */
  connect: z.object({
    only: z.array(z.string().min(1)).optional(),
    deny: z.array(z.string().min(1)).default([])
  }).strict().optional(),
  /** A swarm.key text (private network), or the path of such a file, relative to this file. */
  psk: z.string().optional(),
  replication: z.record(z.string(), replicationMode).default({ '*': 'on-demand' }),
  /** Upload cap for serving other peers, bytes per second; null is unlimited. */
  uploadBandwidth: bandwidth.default(null),
  /** How long a client asking for a blob that no reachable peer offers waits for its 503 (ms). */
  blobWaitMs: z.number({ error: 'expected milliseconds, e.g. 5000' }).int('expected whole milliseconds').min(100, 'expected at least 100 ms').max(600_000, 'expected at most 600000 ms (10 minutes)').default(5000)
}).strict()

export type PeeringFileContent = z.input<typeof peeringSchema>
export type Peering = z.output<typeof peeringSchema> & {
  /** The swarm key bytes (resolved from `psk`), given to @libp2p/pnet. */
  pskKey?: Uint8Array
  /** The bytes of `certificate`, read when the file was parsed. */
  certificateBytes?: Uint8Array
}
export type ReplicationMode = z.infer<typeof replicationMode>

/** What a new peering file holds: the defaults, spelled out so operators see every key. */
export function defaultPeeringFile (): PeeringFileContent {
  return {
    mesh: 'default',
    node: { name: hostname() },
    listen: DEFAULT_LISTEN,
    bootstrap: [],
    allow: [],
    replication: { '*': 'on-demand' },
    uploadBandwidth: null,
    blobWaitMs: 5000
  }
}

/** Whether the allowlist lets `peerId` connect. */
export function isAllowed (peering: Pick<Peering, 'allow'>, peerId: string): boolean {
  return peering.allow.includes('*') || peering.allow.includes(peerId)
}

/** The replication mode for a repository: its own entry, else "*", else on-demand. */
export function replicationFor (peering: Pick<Peering, 'replication'>, repo: string): ReplicationMode {
  return peering.replication[repo] ?? peering.replication['*'] ?? 'on-demand'
}
