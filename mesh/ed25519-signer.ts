// Ed25519 signing with a node:crypto key object made once. @libp2p/crypto's key.sign() builds a
// KeyObject from JWK on every call (createPrivateKey + base64url encodings, ~0.5 ms of the ~0.7 ms
// a manifest signature cost, bench/README.md "npm-remote"); the signature is the same bytes,
// Ed25519 being deterministic (RFC 8032 §5.1.6), and test/ed25519-signer.test.ts checks it.
import { createPrivateKey, sign, type KeyObject } from 'node:crypto'
import type { PrivateKey } from '@libp2p/interface'

/** What signs an envelope's payload: a libp2p PrivateKey, or the faster signer below. */
export interface PayloadSigner {
  sign (payload: Uint8Array): Uint8Array | Promise<Uint8Array>
}

export class Ed25519Signer implements PayloadSigner {
  readonly #key: KeyObject

  constructor (key: PrivateKey) {
    if (key.type !== 'Ed25519') throw new TypeError(`an Ed25519 key is needed, not ${key.type}`)
    // libp2p's raw Ed25519 private key is seed (32 bytes) followed by the public key (32 bytes).
    const raw = key.raw
    this.#key = createPrivateKey({
      format: 'jwk',
      key: { kty: 'OKP', crv: 'Ed25519', d: Buffer.from(raw.subarray(0, 32)).toString('base64url'), x: Buffer.from(key.publicKey.raw).toString('base64url') }
    })
  }

  sign (payload: Uint8Array): Uint8Array {
    return sign(null, payload, this.#key) // a Buffer, as libp2p's own signer returns
  }
}

/** An Ed25519Signer for an Ed25519 key; any other key signs through libp2p as before. */
export function payloadSigner (key: PrivateKey): PayloadSigner {
  return key.type === 'Ed25519' ? new Ed25519Signer(key) : key
}
