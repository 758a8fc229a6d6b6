// One streaming pass computes every digest a blob needs: BLAKE3 (its identity), the per-chunk
// BLAKE3 table, and the sha256/sha512/sha1(/md5) digests package formats speak.
import { createRequire } from 'node:module'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { create as createDigest } from 'multiformats/hashes/digest'
import { CHUNK_SIZE, type OptionalDigest } from './types.ts'
import { DigestSession, sharedBuffer } from './digest-pool.ts'

export const BLAKE3_CODE = 0x1e
// 4 MiB stages: four times fewer messages to (and wake-ups of) the digest workers than 1 MiB.
export const STAGE_SIZE = 4 * CHUNK_SIZE

/** A resettable BLAKE3 hasher: digest() then reset() starts a fresh hash without allocating. */
export interface Blake3 { update (data: Uint8Array): void, digest (): Uint8Array, reset (): void }
export type Blake3Factory = () => Promise<Blake3>

/** Native BLAKE3 (~3 GiB/s here) where its prebuilt binary loads, else WebAssembly (~0.6 GiB/s).
 *  AKMESH_BLAKE3=wasm forces the fallback (to diagnose a suspect native binary, and to test it). */
async function loadBlake3 (): Promise<{ create: Blake3Factory, implementation: string }> {
  try {
    if (process.env.AKMESH_BLAKE3 === 'wasm') throw new Error('native BLAKE3 disabled by AKMESH_BLAKE3=wasm')
    const native = createRequire(import.meta.url)('@napi-rs/blake-hash') as {
      Blake3Hasher: new () => { update (b: Buffer): unknown, digestBuffer (): Buffer }
    }
    const make = (): Blake3 => {
      let h = new native.Blake3Hasher()
      return {
        update: (d) => { h.update(Buffer.isBuffer(d) ? d : Buffer.from(d.buffer, d.byteOffset, d.byteLength)) },
        digest: () => new Uint8Array(h.digestBuffer()),
        reset: () => { h = new native.Blake3Hasher() }
      }
    }
    make().digest() // proves the binding works, not just that the module resolved
    return { create: async () => make(), implementation: 'native' }
  } catch {
    const { createBLAKE3 } = await import('hash-wasm')
    const create = async (): Promise<Blake3> => {
      const h = await createBLAKE3()
      return { update: (d) => { h.update(d) }, digest: () => h.digest('binary'), reset: () => { h.init() } }
    }
    return { create, implementation: 'wasm' }
  }
}

let blake3: Promise<{ create: Blake3Factory, implementation: string }> | undefined
export function blake3Implementation (): Promise<{ create: Blake3Factory, implementation: string }> {
  blake3 ??= loadBlake3()
  return blake3
}

export function cidFromBlake3 (digest: Uint8Array): string {
  return CID.createV1(raw.code, createDigest(BLAKE3_CODE, digest)).toString()
}

/** Parses and checks a CID string: CIDv1, raw codec, BLAKE3. Returns undefined if it is not one. */
export function parseBlobCid (text: string): CID | undefined {
  try {
    const cid = CID.parse(text)
    if (cid.version !== 1 || cid.code !== raw.code || cid.multihash.code !== BLAKE3_CODE) return undefined
    return cid
  } catch { return undefined }
}

export interface Digests {
  cid: string
  size: number
  sha256: string
  /** '' when not computed (the format stores without it; store/blobs.ts completeDigests adds it). */
  sha512: string
  sha1: string
  md5: string | null
  chunks: Uint8Array[]
}

/** The digests uploads computed before formats declared theirs: sha512 and sha1 (npm's). */
export const DEFAULT_DIGESTS: readonly OptionalDigest[] = ['sha512', 'sha1']

/** Hashes a stream in one pass: BLAKE3 and the chunk table inline (native BLAKE3 is ~3 GiB/s),
 *  the SHA family in worker threads. Call `settle()` between writes to bound queued memory. */
export class MultiHasher {
  readonly #whole: Blake3
  readonly #chunk: Blake3
  readonly #sha: DigestSession
  #chunkFill = 0
  #size = 0
  readonly #chunks: Uint8Array[] = []
  #stage = sharedBuffer(STAGE_SIZE)
  #stageFill = 0

  /** sha256 always (digest-addressed lookups need it); `digests` says which others (default
   *  sha512 + sha1); `md5: true` adds md5. */
  static async create (opts: { md5?: boolean, digests?: readonly OptionalDigest[] } = {}): Promise<MultiHasher> {
    const { create } = await blake3Implementation()
    const names = new Set<string>(['sha256', ...(opts.digests ?? DEFAULT_DIGESTS)])
    if (opts.md5 === true) names.add('md5')
    return new MultiHasher(await create(), await create(), [...names])
  }

  private constructor (whole: Blake3, chunk: Blake3, algorithms: string[]) {
    this.#whole = whole
    this.#chunk = chunk
    this.#sha = new DigestSession(algorithms)
  }

  /** Bytes given to update() so far. */
  get size (): number { return this.#size + this.#stageFill }

  update (data: Uint8Array): void {
    // Stage into 1 MiB shared buffers: one copy that both digest workers read, and far fewer
    // (costly) SharedArrayBuffer allocations and native calls than per socket read.
    let offset = 0
    while (offset < data.byteLength) {
      const take = Math.min(STAGE_SIZE - this.#stageFill, data.byteLength - offset)
      this.#stage.set(data.subarray(offset, offset + take), this.#stageFill)
      this.#stageFill += take
      offset += take
      if (this.#stageFill === STAGE_SIZE) this.#flushStage()
    }
  }

  #flushStage (): void {
    if (this.#stageFill === 0) return
    const data = this.#stage.subarray(0, this.#stageFill)
    this.#size += data.byteLength
    this.#whole.update(data)
    this.#sha.update(data)
    // STAGE_SIZE is a multiple of CHUNK_SIZE, but a final partial stage is not: split at chunk
    // boundaries so each chunk hash covers exactly CHUNK_SIZE bytes.
    let offset = 0
    while (offset < data.byteLength) {
      const take = Math.min(CHUNK_SIZE - this.#chunkFill, data.byteLength - offset)
      this.#chunk.update(data.subarray(offset, offset + take))
      this.#chunkFill += take
      offset += take
      if (this.#chunkFill === CHUNK_SIZE) {
        this.#chunks.push(this.#chunk.digest())
        this.#chunk.reset()
        this.#chunkFill = 0
      }
    }
    this.#stage = sharedBuffer(STAGE_SIZE)
    this.#stageFill = 0
  }

  /** Waits while the digest workers are far behind (backpressure). */
  settle (): Promise<void> { return this.#sha.settle() }

  /** Stops the worker-side digests of an abandoned stream. */
  abandon (): void { this.#sha.abandon() }

  async digest (): Promise<Digests> {
    this.#flushStage()
    if (this.#chunkFill > 0 || this.#size === 0) this.#chunks.push(this.#chunk.digest())
    const sha = await this.#sha.digest()
    return {
      cid: cidFromBlake3(this.#whole.digest()),
      size: this.#size,
      sha256: sha.sha256,
      sha512: sha.sha512 ?? '',
      sha1: sha.sha1 ?? '',
      md5: sha.md5 ?? null,
      chunks: this.#chunks
    }
  }
}

/** BLAKE3 of one chunk, for verifying a chunk on its own. */
export async function blake3Of (data: Uint8Array): Promise<Uint8Array> {
  const { create } = await blake3Implementation()
  const h = await create()
  h.update(data)
  return h.digest()
}
