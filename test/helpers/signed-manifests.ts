// Manifests crafted and signed by a test key, as a member of the mesh (or a misbehaving one)
// would sign them; a test node takes them through POST /-/mesh/import, the path gossip and
// catch-up take (Replication.receiveMany).
import { createHash } from 'node:crypto'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { signManifest, type Manifest, type ManifestFile } from '../../mesh/manifest.ts'
import { blake3Of, cidFromBlake3 } from '../../store/hash.ts'
import { CHUNK_SIZE } from '../../store/types.ts'
import { encodeFrames } from '../../node/bundle/frames.ts'
import type { TestNode } from './node.ts'

export interface Signer { key: PrivateKey, peerId: string }

export async function testSigner (): Promise<Signer> {
  const key = await generateKeyPair('Ed25519')
  return { key, peerId: peerIdFromPrivateKey(key).toString() }
}

/** The signed facts of a small (one-chunk) blob, whose bytes need not be anywhere. */
export async function fileOf (filename: string, text: string): Promise<ManifestFile> {
  const bytes = Buffer.from(text)
  const hash = await blake3Of(bytes)
  const hex = (algo: string) => createHash(algo).update(bytes).digest('hex')
  return {
    filename, cid: cidFromBlake3(hash), size: bytes.length, sha256: hex('sha256'), sha512: hex('sha512'), sha1: hex('sha1'),
    chunkSize: CHUNK_SIZE, chunkRoot: Buffer.from(await blake3Of(hash)).toString('hex')
  }
}

export type Draft = Pick<Manifest, 'repo' | 'format' | 'name' | 'version'> & Partial<Manifest>

/** Signs `drafts` as seqs 1, 2, ... of `signer` (prev chained), dated now. */
export async function signAll (signer: Signer, mesh: string, drafts: Draft[], firstSeq = 1): Promise<Uint8Array[]> {
  return await Promise.all(drafts.map(async (d, i) => await signManifest({
    v: 1, mesh, origin: signer.peerId, seq: firstSeq + i, prev: i === 0 ? firstSeq - 1 : firstSeq + i - 1, timestamp: Date.now(),
    kind: 'publish', files: [], metadata: {}, ...d
  } as Manifest, signer.key)))
}

/** POST /-/mesh/import: the node verifies and applies them as it does what arrives by gossip. */
export async function importEnvelopes (node: TestNode, envelopes: Uint8Array[]): Promise<string[]> {
  const res = await fetch(`${node.url}/-/mesh/import`, {
    method: 'POST',
    headers: { authorization: `Bearer ${node.adminToken}`, 'content-type': 'application/octet-stream' },
    body: encodeFrames(envelopes)
  })
  const body = await res.json() as { outcomes?: string[], error?: string }
  if (res.status !== 200 || body.outcomes == null) throw new Error(`import: ${res.status} ${JSON.stringify(body)}`)
  return body.outcomes
}
