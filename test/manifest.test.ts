// Manifest envelopes: signed with real Ed25519 keys, and every way a peer could send a bad one
// rejected with its reason.
import test from 'ava'
import * as dagCbor from '@ipld/dag-cbor'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { MAX_ENVELOPE_BYTES, ManifestError, encodeManifest, openEnvelope, signManifest, type Manifest, type ManifestRejection, type OpenOptions } from '../mesh/manifest.ts'
import type { ExecutionContext } from 'ava'

const MESH = 'm1'
const CID = 'bafkr4ibrtu4wqgw7yy3swufkm3ltbmsouldzjwtagdqeqdwg5jogyf6ltm'

async function keyAndManifest (): Promise<{ key: Awaited<ReturnType<typeof generateKeyPair>>, m: Manifest }> {
  const key = await generateKeyPair('Ed25519')
  const m: Manifest = {
    v: 1, mesh: MESH, origin: peerIdFromPrivateKey(key).toString(), seq: 7, prev: 3, timestamp: 1_700_000_000_000,
    kind: 'publish', repo: 'npm', format: 'npm', name: 'left-pad', version: '1.0.0',
    files: [{
      filename: 'left-pad-1.0.0.tgz', cid: CID, size: 1234, sha256: 'a'.repeat(64), sha512: 'b'.repeat(128),
      sha1: 'c'.repeat(40), md5: 'd'.repeat(32), chunkSize: 1048576, chunkRoot: 'e'.repeat(64)
    }],
    metadata: { name: 'left-pad', version: '1.0.0', dist: { shasum: 'c'.repeat(40) }, nested: [1, 'two', null, true, 2.5] }
  }
  return { key, m }
}

const anyone = { mesh: MESH, isAllowed: () => true }

async function rejects (t: ExecutionContext, bytes: Uint8Array, reason: ManifestRejection, opts: OpenOptions = anyone): Promise<void> {
  const err = await t.throwsAsync(openEnvelope(bytes, opts), { instanceOf: ManifestError })
  t.is(err?.reason, reason, err?.message)
}

test('sign then open round-trips the manifest, and encoding is deterministic', async t => {
  const { key, m } = await keyAndManifest()
  const envelope = await signManifest(m, key)
  t.deepEqual(await openEnvelope(envelope, { mesh: MESH, isAllowed: o => o === m.origin }), m)
  // Same manifest with keys inserted in another order: same bytes.
  const shuffled = Object.fromEntries(Object.entries(m).reverse()) as unknown as Manifest
  t.deepEqual(encodeManifest(shuffled), encodeManifest(m))
})

test('a tampered payload fails the signature check', async t => {
  const { key, m } = await keyAndManifest()
  const { signature } = dagCbor.decode<{ signature: Uint8Array }>(await signManifest(m, key))
  const forged = dagCbor.encode({ payload: encodeManifest({ ...m, version: '1.0.1' }), signature })
  await rejects(t, forged, 'bad-signature')
})

test('a manifest signed by another key than its origin is rejected', async t => {
  const { m } = await keyAndManifest()
  const other = await generateKeyPair('Ed25519')
  await rejects(t, await signManifest(m, other), 'bad-signature')
})

test('a manifest of another mesh is rejected', async t => {
  const { key, m } = await keyAndManifest()
  await rejects(t, await signManifest({ ...m, mesh: 'm2' }, key), 'wrong-mesh')
})

test('a manifest from an origin that is not a member is rejected', async t => {
  const { key, m } = await keyAndManifest()
  await rejects(t, await signManifest(m, key), 'not-allowed', { mesh: MESH, isAllowed: () => false })
})

test('oversized and garbage envelopes are rejected before any signature work', async t => {
  const { key, m } = await keyAndManifest()
  await rejects(t, new Uint8Array(MAX_ENVELOPE_BYTES + 1), 'too-large')
  await rejects(t, await signManifest({ ...m, metadata: { blob: 'x'.repeat(MAX_ENVELOPE_BYTES) } }, key), 'too-large')
  await rejects(t, new Uint8Array([0xff, 0x00, 0x13, 0x37]), 'undecodable')
  await rejects(t, new Uint8Array(), 'undecodable')
  await rejects(t, dagCbor.encode({ payload: 'not bytes', signature: new Uint8Array(64) }), 'undecodable')
  await rejects(t, dagCbor.encode({ payload: new Uint8Array([0xff]), signature: new Uint8Array(64) }), 'undecodable')
  await rejects(t, dagCbor.encode([1, 2, 3]), 'undecodable')
})

const malformed: Array<[string, (m: Manifest) => unknown]> = [
  ['version 2', m => ({ ...m, v: 2 })],
  ['unknown field', m => ({ ...m, extra: 1 })],
  ['missing field', ({ metadata, ...m }) => m],
  ['origin not a peer ID', m => ({ ...m, origin: 'not-a-peer' })],
  ['seq 0', m => ({ ...m, seq: 0 })],
  ['fractional seq', m => ({ ...m, seq: 1.5 })],
  ['prev not below seq', m => ({ ...m, prev: m.seq })],
  ['negative prev', m => ({ ...m, prev: -1 })],
  ['negative timestamp', m => ({ ...m, timestamp: -1 })],
  ['unknown kind', m => ({ ...m, kind: 'rename' })],
  ['empty repo', m => ({ ...m, repo: '' })],
  ['huge name', m => ({ ...m, name: 'n'.repeat(5000) })],
  ['tag kind without tag', m => ({ ...m, kind: 'tag' })],
  ['replace not true', m => ({ ...m, replace: false })],
  ['files not an array', m => ({ ...m, files: {} })],
  ['sha256 CID instead of BLAKE3', m => ({ ...m, files: [{ ...m.files[0], cid: 'bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku' }] })],
  ['cid garbage', m => ({ ...m, files: [{ ...m.files[0], cid: 'hello' }] })],
  ['uppercase hex digest', m => ({ ...m, files: [{ ...m.files[0], sha256: 'A'.repeat(64) }] })],
  ['short sha1', m => ({ ...m, files: [{ ...m.files[0], sha1: 'c'.repeat(39) }] })],
  ['negative size', m => ({ ...m, files: [{ ...m.files[0], size: -1 }] })],
  ['zero chunk size', m => ({ ...m, files: [{ ...m.files[0], chunkSize: 0 }] })],
  ['missing chunkRoot', m => ({ ...m, files: [{ ...m.files[0], chunkRoot: undefined }] })],
  ['duplicate filenames', m => ({ ...m, files: [m.files[0], m.files[0]] })],
  ['metadata with bytes', m => ({ ...m, metadata: { raw: new Uint8Array([1]) } })],
  ['metadata not a map', m => ({ ...m, metadata: [1] })]
]

for (const [what, mutate] of malformed) {
  test(`malformed manifest rejected: ${what}`, async t => {
    const { key, m } = await keyAndManifest()
    const bad = JSON.parse(JSON.stringify(mutate(m), (_k, v) => v instanceof Uint8Array ? { $bytes: [...v] } : v), (_k, v) => v?.$bytes != null ? new Uint8Array(v.$bytes) : v)
    const payload = dagCbor.encode(bad)
    const envelope = dagCbor.encode({ payload, signature: await key.sign(payload) })
    await rejects(t, envelope, 'malformed')
  })
}

test('a manifest dated beyond the allowed clock skew is refused for now', async t => {
  const { key, m } = await keyAndManifest()
  const envelope = await signManifest(m, key)
  await rejects(t, envelope, 'from-the-future', { ...anyone, now: m.timestamp - 11 * 60 * 1000 })
  t.deepEqual(await openEnvelope(envelope, { ...anyone, now: m.timestamp - 9 * 60 * 1000 }), m)
})
