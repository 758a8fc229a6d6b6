// Blob transfer: `/akmesh/<mesh>/blob/1.0.0`. One request per stream (streams are cheap on a
// yamux connection, and several in flight keep a bandwidth-delay product moving per source).
// Request and response heads are small length-prefixed JSON; a table or chunk follows its head
// as one length-prefixed frame. Present blobs are served whole; a blob this node is still
// fetching is served chunk by chunk as its chunks verify (`have` says which), so downloaders of
// the same blob feed each other. The gater already limits who may open a stream; the upload cap
// (peering `uploadBandwidth`) paces every chunk and probe sent.
import { open } from 'node:fs/promises'
import type { Connection, PeerId, Stream, StreamHandler } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import type { Logger } from 'pino'
import type { FileBlobStore } from '../store/blobs.ts'
import type { TokenBucket } from './bandwidth.ts'
import type { MeshLibp2p } from './libp2p.ts'
import type { PeerProfiles } from './profiles.ts'
import { describeError } from './errors.ts'

export const blobProtocol = (mesh: string): string => `/akmesh/${mesh}/blob/1.0.0`

const HASH_BYTES = 32
const MAX_HEAD = 4096
/** Chunk tables up to 1 M chunks (1 TiB at 1 MiB chunks). */
const MAX_TABLE = HASH_BYTES * 1024 * 1024
const MAX_CHUNK = 16 * 1024 * 1024
/** Relay hops a request may ask for (a line of MAX_RELAY_HOPS + 2 nodes). */
export const MAX_RELAY_HOPS = 4
/** Largest idle-link probe (mesh/profiles.ts measures throughput with it). */
export const MAX_PROBE = 1024 * 1024

export type BlobRequest =
  | { op: 'have', cid: string, relay?: number }
  | { op: 'table', cid: string }
  | { op: 'chunk', cid: string, index: number }
  | { op: 'probe', bytes: number }

export type BlobResponseHead =
  | { ok: true, chunks?: number, bitfield?: string, size?: number, chunkSize?: number, fetching?: boolean }
  | { ok: false, error: string }

const enc = (v: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(v))
const dec = (b: Uint8Array): any => JSON.parse(new TextDecoder().decode(b))

/** A bitfield (MSB first) with the first `n` bits set: a node holds a blob whole or not at all,
 *  but the message keeps room for partial holders. */
export function fullBitfield (n: number): Uint8Array {
  const b = new Uint8Array(Math.ceil(n / 8))
  for (let i = 0; i < n; i++) b[i >> 3] |= 0x80 >> (i & 7)
  return b
}
export const hasBit = (b: Uint8Array, i: number): boolean => ((b[i >> 3] ?? 0) & (0x80 >> (i & 7))) !== 0

const chunkCount = (size: number, chunkSize: number): number => Math.max(1, Math.ceil(size / chunkSize))

/** A blob being fetched here, whose verified chunks can be served (store/partial.ts fits). */
export interface PartialChunks {
  size: number
  chunkSize: number
  table: Uint8Array[]
  has (i: number): boolean
  bits (): Uint8Array
  read (i: number): Promise<Uint8Array>
}

export interface TransferServerInit {
  libp2p: MeshLibp2p
  store: FileBlobStore
  mesh: string
  log: Logger
  /** Blobs in flight here (the fetcher's partial files). */
  partial?: (cid: string) => PartialChunks | undefined
  /** Asked to relay (`have` with `relay`: a peer found no holder it can reach) a blob it knows
   *  from a manifest but does not hold, this node fetches it (itself relaying at most `hops`
   *  further) and says so (`fetching`): a node in the middle of a line relays blobs as it relays
   *  manifests. True if a fetch is running. */
  relay?: (cid: string, hops: number) => boolean
  /** The upload cap. */
  bucket?: TokenBucket
  profiles?: PeerProfiles
  /** Only members are served (mesh/membership.ts); the gater and mesh/introductions.ts keep
   *  others out already, this is the last check. */
  isMember?: (peer: string) => boolean
  /** Wraps the handler so a peer on probation waits for its certificate (Introductions.membersOnly). */
  guard?: (handler: StreamHandler) => StreamHandler
}

/** Serves present blobs, and the verified chunks of blobs being fetched, to peers. Returns an
 *  unregister function. */
export async function serveBlobs (init: TransferServerInit): Promise<() => Promise<void>> {
  const log = init.log.child({ component: 'mesh:transfer' })
  const protocol = blobProtocol(init.mesh)
  const handler: StreamHandler = async (stream: Stream, connection: Connection) => {
    const signal = AbortSignal.timeout(60_000)
    const lp = lpStream(stream, { maxDataLength: MAX_HEAD })
    const peer = connection.remotePeer
    const send = async (head: BlobResponseHead, body: Uint8Array): Promise<void> => {
      await init.bucket?.take(body.byteLength, signal)
      // lp.writeV waits for the stream to drain (backpressure) before resolving.
      await lp.writeV([enc(head), body], { signal })
      init.profiles?.recordSent(peer, body.byteLength)
    }
    try {
      if (init.isMember?.(peer.toString()) === false) throw new Error(`refused blob request: ${peer.toString()} is not a member of this mesh`)
      const req = dec((await lp.read({ signal })).subarray()) as BlobRequest
      if (req?.op === 'probe') {
        if (!Number.isInteger(req.bytes) || req.bytes < 0 || req.bytes > MAX_PROBE) await lp.write(enc({ ok: false, error: 'bad-request' }), { signal })
        else await send({ ok: true }, new Uint8Array(req.bytes))
        await stream.close({ signal })
        return
      }
      const blob = typeof req?.cid === 'string' ? init.store.stat(req.cid) : undefined
      const partial = blob == null && typeof req?.cid === 'string' ? init.partial?.(req.cid) : undefined
      const index = req?.op === 'chunk' ? req.index : -1
      const fetching = blob == null && req.op === 'have' && Number.isInteger(req.relay) && (req.relay as number) >= 0 &&
        init.relay?.(req.cid, Math.min(req.relay as number, MAX_RELAY_HOPS)) === true
      if (blob == null && partial == null && fetching) {
        // Fetching, but no chunk table yet: nothing to offer until the asker asks again.
        await lp.write(enc({ ok: true, fetching: true, bitfield: '' }), { signal })
      } else if (blob == null && partial == null) {
        await lp.write(enc({ ok: false, error: 'not-present' }), { signal })
      } else if (req.op === 'have') {
        const size = blob?.size ?? partial?.size as number
        const chunkSize = blob?.chunkSize ?? partial?.chunkSize as number
        const n = chunkCount(size, chunkSize)
        const bits = blob != null ? fullBitfield(n) : partial?.bits() as Uint8Array
        await lp.write(enc({ ok: true, chunks: n, size, chunkSize, bitfield: Buffer.from(bits).toString('base64'), ...(blob == null ? { fetching: true } : {}) }), { signal })
      } else if (req.op === 'table') {
        await lp.writeV([enc({ ok: true }), Buffer.concat(blob != null ? init.store.chunkHashes(blob.cid) : partial?.table as Uint8Array[])], { signal })
      } else if (req.op === 'chunk' && blob != null && Number.isInteger(index) && index >= 0 && index < chunkCount(blob.size, blob.chunkSize)) {
        const start = index * blob.chunkSize
        const length = Math.min(blob.chunkSize, blob.size - start)
        const bytes = Buffer.allocUnsafe(length)
        const fh = await open(init.store.pathOf(blob.cid), 'r')
        try { await fh.read(bytes, 0, length, start) } finally { await fh.close() }
        await send({ ok: true }, bytes)
      } else if (req.op === 'chunk' && partial != null && Number.isInteger(index) && index >= 0 && partial.has(index)) {
        await send({ ok: true }, await partial.read(index))
      } else if (req.op === 'chunk' && partial != null) {
        await lp.write(enc({ ok: false, error: 'not-present' }), { signal })
      } else {
        await lp.write(enc({ ok: false, error: 'bad-request' }), { signal })
      }
      await stream.close({ signal })
    } catch (err: any) {
      log.debug({ peer: connection.remotePeer.toString(), error: describeError(err) }, 'blob request failed')
      stream.abort(err)
    }
  }
  await init.libp2p.handle(protocol, init.guard?.(handler) ?? handler, { maxInboundStreams: 256, runOnLimitedConnection: false })
  return async () => { await init.libp2p.unhandle(protocol) }
}

export class PeerError extends Error {
  readonly peer: string
  constructor (peer: string, message: string) { super(message); this.peer = peer }
}

/** Client side: one request, one stream, closed or aborted on every path. */
export class BlobClient {
  readonly #libp2p: MeshLibp2p
  readonly #protocol: string

  constructor (libp2p: MeshLibp2p, mesh: string) {
    this.#libp2p = libp2p
    this.#protocol = blobProtocol(mesh)
  }

  async #request (peer: PeerId, req: BlobRequest, bodyMax: number | undefined, signal: AbortSignal): Promise<{ head: BlobResponseHead, body?: Uint8Array }> {
    const what = req.op === 'probe' ? `probe ${req.bytes}` : `${req.op} ${req.cid}`
    let stream: Stream | undefined
    try {
      stream = await this.#libp2p.dialProtocol(peer, this.#protocol, { signal })
      const lp = lpStream(stream, { maxDataLength: Math.max(MAX_HEAD, bodyMax ?? 0) })
      await lp.write(enc(req), { signal })
      const head = dec((await lp.read({ signal })).subarray()) as BlobResponseHead
      const body = head.ok && bodyMax != null ? (await lp.read({ signal })).subarray() : undefined
      await stream.close({ signal })
      return { head, body }
    } catch (err: any) {
      stream?.abort(err)
      throw new PeerError(peer.toString(), `${what}: ${describeError(err)}`)
    }
  }

  /** Which chunks `peer` holds (undefined: none). */
  async have (peer: PeerId, cid: string, signal: AbortSignal): Promise<Uint8Array | undefined> {
    return (await this.availability(peer, cid, signal)).bits
  }

  /** Which chunks `peer` holds, and whether it is fetching the rest (so more will come). With
   *  `relay` (hops), asks it to fetch the blob if it knows it but does not hold it. */
  async availability (peer: PeerId, cid: string, signal: AbortSignal, relay?: number): Promise<{ bits?: Uint8Array, fetching: boolean }> {
    const { head } = await this.#request(peer, { op: 'have', cid, ...(relay != null ? { relay } : {}) }, undefined, signal)
    if (!head.ok) return { fetching: false }
    return { bits: head.bitfield != null ? new Uint8Array(Buffer.from(head.bitfield, 'base64')) : undefined, fetching: head.fetching === true }
  }

  /** The chunk hash table, unverified (the caller checks it against the signed chunk root). */
  async table (peer: PeerId, cid: string, signal: AbortSignal): Promise<Uint8Array[]> {
    const { head, body } = await this.#request(peer, { op: 'table', cid }, MAX_TABLE, signal)
    if (!head.ok || body == null || body.byteLength % HASH_BYTES !== 0) throw new PeerError(peer.toString(), `table ${cid}: ${head.ok ? 'malformed' : head.error}`)
    const out: Uint8Array[] = []
    for (let i = 0; i < body.byteLength; i += HASH_BYTES) out.push(body.subarray(i, i + HASH_BYTES))
    return out
  }

  /** `bytes` zero bytes, to measure an idle link's throughput. */
  async probe (peer: PeerId, bytes: number, signal: AbortSignal): Promise<void> {
    const { head, body } = await this.#request(peer, { op: 'probe', bytes }, MAX_PROBE, signal)
    if (!head.ok || body?.byteLength !== bytes) throw new PeerError(peer.toString(), `probe: ${head.ok ? 'short body' : head.error}`)
  }

  /** The bytes of one chunk, unverified. */
  async chunk (peer: PeerId, cid: string, index: number, signal: AbortSignal): Promise<Uint8Array> {
    const { head, body } = await this.#request(peer, { op: 'chunk', cid, index }, MAX_CHUNK, signal)
    if (!head.ok || body == null) throw new PeerError(peer.toString(), `chunk ${index} of ${cid}: ${head.ok ? 'missing body' : head.error}`)
    return body
  }
}
