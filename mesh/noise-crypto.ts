// Noise transport encryption (ChaCha20-Poly1305 per message of at most 64 KiB, the Noise
// spec's limit) with the session key imported once. @chainsafe/libp2p-noise's node crypto
// passes the raw 32-byte key to createCipheriv for every message, which imports it again each
// time: measured at a third of Noise's CPU on a mesh transfer (bench/README.md, "mesh data path").
// Everything else (handshake: X25519, SHA-256, HKDF) is the library's own.
import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject } from 'node:crypto'
import type { ICryptoInterface } from '@chainsafe/libp2p-noise'
import { defaultCrypto } from '@chainsafe/libp2p-noise/crypto'

const ALGORITHM = 'chacha20-poly1305'
const TAG = 16
/** Below this the library's WebAssembly implementation is faster than node:crypto (its own figure). */
const SMALL = 1200

/** The cipher state's key array stays the same object for a session; its bytes are compared
 *  too, so a key changed in place is never used with a stale import. */
const keys = new WeakMap<Uint8Array, { bytes: Buffer, key: KeyObject }>()
function keyOf (k: Uint8Array): KeyObject {
  const hit = keys.get(k)
  if (hit != null && hit.bytes.equals(k)) return hit.key
  const bytes = Buffer.from(k)
  const key = createSecretKey(bytes)
  keys.set(k, { bytes, key })
  return key
}

export const noiseCrypto: ICryptoInterface = {
  ...defaultCrypto,
  chaCha20Poly1305Encrypt (plaintext, nonce, ad, k) {
    if (plaintext.byteLength < SMALL) return defaultCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, k)
    const cipher = createCipheriv(ALGORITHM, keyOf(k), nonce, { authTagLength: TAG })
    cipher.setAAD(ad, { plaintextLength: plaintext.byteLength })
    // One buffer, not a list: @libp2p/tcp writes each piece of a list to the socket separately,
    // and a 64 KiB copy costs less than a write of its own for the 16-byte tag.
    const pieces: Uint8Array[] = []
    if (plaintext instanceof Uint8Array) pieces.push(cipher.update(plaintext))
    else for (const piece of plaintext) pieces.push(cipher.update(piece))
    const final = cipher.final()
    if (final.byteLength > 0) pieces.push(final)
    pieces.push(cipher.getAuthTag())
    return Buffer.concat(pieces, plaintext.byteLength + TAG)
  },
  chaCha20Poly1305Decrypt (ciphertext, nonce, ad, k, dst) {
    if (ciphertext.byteLength < SMALL) return defaultCrypto.chaCha20Poly1305Decrypt(ciphertext, nonce, ad, k, dst)
    const decipher = createDecipheriv(ALGORITHM, keyOf(k), nonce, { authTagLength: TAG })
    const textLength = ciphertext.byteLength - TAG
    decipher.setAAD(ad, { plaintextLength: textLength })
    decipher.setAuthTag(ciphertext.subarray(textLength))
    const text = ciphertext instanceof Uint8Array ? ciphertext.subarray(0, textLength) : ciphertext.sublist(0, textLength)
    const pieces: Uint8Array[] = []
    if (text instanceof Uint8Array) pieces.push(decipher.update(text))
    else for (const piece of text) pieces.push(decipher.update(piece))
    const final = decipher.final() // throws if the tag does not verify
    if (final.byteLength > 0) pieces.push(final)
    return pieces.length === 1 ? pieces[0] : Buffer.concat(pieces)
  }
}
