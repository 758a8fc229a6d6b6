// One streaming pass computes every digest a blob needs: BLAKE3 (its identity), the per-chunk
// BLAKE3 table, and the sha256/sha512/sha1(/md5) digests package formats speak.
import { createHash, type Hash } from 'node:crypto'
import { createRequire } from 'node:module'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { create as createDigest } from 'multiformats/hashes/digest'
import { CHUNK_SIZE } from './types.ts'

export const BLAKE3_CODE = 0x1e

/** A resettable BLAKE3 hasher: digest() then reset() starts a fresh hash without allocating. */
export interface Blake3 { update (data: Uint8Array): void, digest (): Uint8Array, reset (): void }
export type Blake3Factory = () => Promise<Blake3>

/** Native BLAKE3 (~3 GiB/s here) where its prebuilt binary loads, else WebAssembly (~0.6 GiB/s). */
async function loadBlake3 (): Promise<{ create: Blake3Factory, implementation: string }> {
  try {
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
  sha512: string
  sha1: string
  md5: string | null
  chunks: Uint8Array[]
}

export class MultiHasher {
  readonly #whole: Blake3
  readonly #chunk: Blake3
  readonly #sha: Hash[]
  readonly #md5: Hash | undefined
  #chunkFill = 0
  #size = 0
  readonly #chunks: Uint8Array[] = []

  static async create (opts: { md5?: boolean } = {}): Promise<MultiHasher> {
    const { create } = await blake3Implementation()
    return new MultiHasher(await create(), await create(), opts)
  }

  private constructor (whole: Blake3, chunk: Blake3, opts: { md5?: boolean }) {
    this.#whole = whole
    this.#chunk = chunk
    this.#sha = [createHash('sha256'), createHash('sha512'), createHash('sha1')]
    this.#md5 = opts.md5 === true ? createHash('md5') : undefined
  }

  get size (): number { return this.#size }

  update (data: Uint8Array): void {
    this.#size += data.byteLength
    this.#whole.update(data)
    for (const h of this.#sha) h.update(data)
    this.#md5?.update(data)
    // Split across chunk boundaries so each chunk hash covers exactly CHUNK_SIZE bytes.
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
  }

  digest (): Digests {
    if (this.#chunkFill > 0 || this.#size === 0) this.#chunks.push(this.#chunk.digest())
    return {
      cid: cidFromBlake3(this.#whole.digest()),
      size: this.#size,
      sha256: this.#sha[0].digest('hex'),
      sha512: this.#sha[1].digest('hex'),
      sha1: this.#sha[2].digest('hex'),
      md5: this.#md5?.digest('hex') ?? null,
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
