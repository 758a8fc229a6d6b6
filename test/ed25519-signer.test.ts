// The node:crypto signer of manifests: the same key bytes give the same signatures as
// @libp2p/crypto's key.sign() (what every earlier manifest was signed with), which peers verify.
import test from 'ava'
import { generateKeyPair, privateKeyFromRaw } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { Ed25519Signer, payloadSigner } from '../mesh/ed25519-signer.ts'
import { openEnvelope, signManifest, type Manifest } from '../mesh/manifest.ts'

test('signatures are byte for byte those of the libp2p key, and verify against its peer ID', async t => {
  const key = await generateKeyPair('Ed25519')
  const fast = new Ed25519Signer(key)
  for (const payload of [new Uint8Array(0), new TextEncoder().encode('a manifest'), crypto.getRandomValues(new Uint8Array(4096))]) {
    const sig = fast.sign(payload)
    t.deepEqual(sig, await key.sign(payload))
    t.true(await key.publicKey.verify(payload, sig))
  }
  // A flipped byte does not verify: the comparison above is of real signatures.
  const payload = new TextEncoder().encode('a manifest')
  const sig = fast.sign(payload)
  sig[0] ^= 1
  t.false(await key.publicKey.verify(payload, sig))
})

test('a key restored from its raw bytes signs the same; a manifest it signs opens at a peer', async t => {
  const key = await generateKeyPair('Ed25519')
  const restored = privateKeyFromRaw(key.raw)
  const payload = new TextEncoder().encode('same key bytes, same signature')
  t.deepEqual(new Ed25519Signer(restored).sign(payload), await key.sign(payload))

  const m: Manifest = {
    v: 1, mesh: 'm1', origin: peerIdFromPrivateKey(key).toString(), seq: 1, prev: 0, timestamp: 1_700_000_000_000,
    kind: 'publish', repo: 'npm', format: 'npm', name: 'left-pad', version: '1.0.0', files: [], metadata: { name: 'left-pad' }
  }
  const envelope = await signManifest(m, payloadSigner(restored))
  t.deepEqual(envelope, await signManifest(m, key))
  t.deepEqual(await openEnvelope(envelope, { mesh: 'm1', isAllowed: () => true }), m)
})

test('other key types keep signing through libp2p', async t => {
  const key = await generateKeyPair('secp256k1')
  t.is(payloadSigner(key), key)
  t.throws(() => new Ed25519Signer(key), { instanceOf: TypeError })
})
