// Blob transfer: `/akmesh/<mesh>/blob/1.0.0`. One request per stream (streams are cheap on a
// yamux connection, and several in flight keep a bandwidth-delay product moving per source).
// Request and response heads are small length-prefixed JSON; a table or chunk follows its head
// as one length-prefixed frame. Only present blobs are served; the gater already limits peers.
import { open } from 'node:fs/promises'
import type { Connection, PeerId, Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import type { Logger } from 'pino'
import type { FileBlobStore } from '../store/blobs.ts'
import type { MeshLibp2p } from './libp2p.ts'

export const blobProtocol = (mesh: string): string => `/akmesh/${mesh}/blob/1.0.0`

const HASH_BYTES = 32
const MAX_HEAD = 4096
/** Chunk tables up to 1 M chunks (1 TiB at 1 MiB chunks). */
const MAX_TABLE = HASH_BYTES * 1024 * 1024
const MAX_CHUNK = 16 * 1024 * 1024

export type BlobRequest =
  | { op: 'have', cid: string }
  | { op: 'table', cid: string }
  | { op: 'chunk', cid: string, index: number }

export type BlobResponseHead =
  | { ok: true, chunks?: number, bitfield?: string, size?: number, chunkSize?: number }
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

export interface TransferServerInit { libp2p: MeshLibp2p, store: FileBlobStore, mesh: string, log: Logger }

/** Serves present blobs to peers. Returns an unregister function. */
export async function serveBlobs (init: TransferServerInit): Promise<() => Promise<void>> {
  const log = init.log.child({ component: 'mesh:transfer' })
  const protocol = blobProtocol(init.mesh)
  await init.libp2p.handle(protocol, async (stream: Stream, connection: Connection) => {
    const signal = AbortSignal.timeout(60_000)
    const lp = lpStream(stream, { maxDataLength: MAX_HEAD })
    try {
      const req = dec((await lp.read({ signal })).subarray()) as BlobRequest
      const blob = typeof req?.cid === 'string' ? init.store.stat(req.cid) : undefined
      if (blob == null) {
        await lp.write(enc({ ok: false, error: 'not-present' }), { signal })
      } else if (req.op === 'have') {
        const n = chunkCount(blob.size, blob.chunkSize)
        await lp.write(enc({ ok: true, chunks: n, size: blob.size, chunkSize: blob.chunkSize, bitfield: Buffer.from(fullBitfield(n)).toString('base64') }), { signal })
      } else if (req.op === 'table') {
        await lp.writeV([enc({ ok: true }), Buffer.concat(init.store.chunkHashes(blob.cid))], { signal })
      } else if (req.op === 'chunk' && Number.isInteger(req.index) && req.index >= 0 && req.index < chunkCount(blob.size, blob.chunkSize)) {
        const start = req.index * blob.chunkSize
        const length = Math.min(blob.chunkSize, blob.size - start)
        const bytes = Buffer.allocUnsafe(length)
        const fh = await open(init.store.pathOf(blob.cid), 'r')
        try { await fh.read(bytes, 0, length, start) } finally { await fh.close() }
        // lp.write waits for the stream to drain (backpressure) before resolving.
        await lp.writeV([enc({ ok: true }), bytes], { signal })
      } else {
        await lp.write(enc({ ok: false, error: 'bad-request' }), { signal })
      }
      await stream.close({ signal })
    } catch (err: any) {
      log.debug({ peer: connection.remotePeer.toString(), error: err?.message }, 'blob request failed')
      stream.abort(err)
    }
  }, { maxInboundStreams: 256, runOnLimitedConnection: false })
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
      throw new PeerError(peer.toString(), `${req.op} ${req.cid}: ${err?.message ?? err}`)
    }
  }

  /** Which chunks `peer` holds (undefined: none). */
  async have (peer: PeerId, cid: string, signal: AbortSignal): Promise<Uint8Array | undefined> {
    const { head } = await this.#request(peer, { op: 'have', cid }, undefined, signal)
    return head.ok && head.bitfield != null ? new Uint8Array(Buffer.from(head.bitfield, 'base64')) : undefined
  }

  /** The chunk hash table, unverified (the caller checks it against the signed chunk root). */
  async table (peer: PeerId, cid: string, signal: AbortSignal): Promise<Uint8Array[]> {
    const { head, body } = await this.#request(peer, { op: 'table', cid }, MAX_TABLE, signal)
    if (!head.ok || body == null || body.byteLength % HASH_BYTES !== 0) throw new PeerError(peer.toString(), `table ${cid}: ${head.ok ? 'malformed' : head.error}`)
    const out: Uint8Array[] = []
    for (let i = 0; i < body.byteLength; i += HASH_BYTES) out.push(body.subarray(i, i + HASH_BYTES))
    return out
  }

  /** The bytes of one chunk, unverified. */
  async chunk (peer: PeerId, cid: string, index: number, signal: AbortSignal): Promise<Uint8Array> {
    const { head, body } = await this.#request(peer, { op: 'chunk', cid, index }, MAX_CHUNK, signal)
    if (!head.ok || body == null) throw new PeerError(peer.toString(), `chunk ${index} of ${cid}: ${head.ok ? 'missing body' : head.error}`)
    return body
  }
}
