// The node's persistent Ed25519 identity: <dataDir>/identity.key, libp2p protobuf encoding.
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PeerId, PrivateKey } from '@libp2p/interface'
import { mkdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { writeFileAtomic } from '../config/atomic-file.ts'

export const IDENTITY_FILE = 'identity.key'

export interface Identity {
  privateKey: PrivateKey
  peerId: PeerId
  file: string
  /** True when this call generated the key (first start). */
  created: boolean
}

/** Loads the identity from the data directory, generating and storing one on first use. */
export async function loadIdentity (dataDir: string): Promise<Identity> {
  const file = join(dataDir, IDENTITY_FILE)
  let bytes: Uint8Array | undefined
  try {
    bytes = await readFile(file)
  } catch (e: any) {
    if (e.code !== 'ENOENT') throw new Error(`${file}: cannot read the node identity (${e.code ?? e.message})`)
  }
  if (bytes != null) {
    let privateKey: PrivateKey
    try {
      privateKey = privateKeyFromProtobuf(bytes)
    } catch (e: any) {
      throw new Error(`${file}: not a libp2p private key (${e.message}); move it away to generate a new identity`)
    }
    if (privateKey.type !== 'Ed25519') throw new Error(`${file}: expected an Ed25519 key, got ${privateKey.type}`)
    // A key readable by others is a stolen identity waiting to happen; refuse loudly rather than fix silently.
    const { mode } = await stat(file)
    if ((mode & 0o077) !== 0) throw new Error(`${file}: mode ${(mode & 0o777).toString(8)} lets other users read the node's private key; run chmod 600 ${file}`)
    return { privateKey, peerId: peerIdFromPrivateKey(privateKey), file, created: false }
  }
  await mkdir(dataDir, { recursive: true })
  const privateKey = await generateKeyPair('Ed25519')
  await writeFileAtomic(file, privateKeyToProtobuf(privateKey), 0o600)
  return { privateKey, peerId: peerIdFromPrivateKey(privateKey), file, created: true }
}
