// Member certificates: issued by a real root key, and every certificate a node must not trust
// (expired, another mesh's root, forged, tampered, malformed) refused with its reason.
import test from 'ava'
import * as dagCbor from '@ipld/dag-cbor'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  CertificateError, createRootKey, decodeCertificate, grantsCover, issueCertificate, loadRootKey, parseValidity,
  rootOf, verifyCertificate, type CertificateRejection
} from '../mesh/certificates.ts'
import { decodeEnvelope, signEnvelope } from '../mesh/manifest.ts'
import type { ExecutionContext } from 'ava'

const MESH = 'm1'
const YEAR = parseValidity('1y')
const NOW = 1_800_000_000_000

async function refused (t: ExecutionContext, p: Promise<unknown>, reason: CertificateRejection): Promise<void> {
  const err = await t.throwsAsync(p, { instanceOf: CertificateError })
  t.is(err?.reason, reason, err?.message)
}

const peerId = async (): Promise<string> => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()

test('a certificate issued by the root verifies and names its grants; encoding is deterministic', async t => {
  const root = await generateKeyPair('Ed25519')
  const peer = await peerId()
  const opts = { mesh: MESH, peer, site: 'a', publish: ['team-b', 'team-a', 'team-a'], validForMs: YEAR, now: NOW }
  const bytes = await issueCertificate(root, opts)
  const cert = await verifyCertificate(bytes, { mesh: MESH, root: rootOf(root) }, NOW + 1000)
  t.like(cert, { peer, site: 'a', mesh: MESH, root: rootOf(root), issued: NOW, expires: NOW + YEAR })
  t.deepEqual(cert.publish, ['team-a', 'team-b'])
  t.true(grantsCover(cert, 'team-a'))
  t.false(grantsCover(cert, 'team-c'))
  t.deepEqual(await issueCertificate(root, opts), bytes) // Ed25519 is deterministic, dag-cbor too
  const all = await verifyCertificate(await issueCertificate(root, { ...opts, publish: undefined }), { mesh: MESH, root: rootOf(root) }, NOW)
  t.deepEqual(all.publish, ['*'])
  t.true(grantsCover(all, 'anything'))
})

test('an expired certificate is refused', async t => {
  const root = await generateKeyPair('Ed25519')
  const bytes = await issueCertificate(root, { mesh: MESH, peer: await peerId(), site: 'a', validForMs: 60_000, now: NOW })
  await refused(t, verifyCertificate(bytes, { mesh: MESH, root: rootOf(root) }, NOW + 60_000), 'expired')
})

test('a certificate of another mesh root (same mesh name) is refused', async t => {
  const root = await generateKeyPair('Ed25519')
  const other = await generateKeyPair('Ed25519')
  const bytes = await issueCertificate(other, { mesh: MESH, peer: await peerId(), site: 'a', validForMs: YEAR, now: NOW })
  await refused(t, verifyCertificate(bytes, { mesh: MESH, root: rootOf(root) }, NOW), 'wrong-root')
})

test('a certificate of another mesh name is refused', async t => {
  const root = await generateKeyPair('Ed25519')
  const bytes = await issueCertificate(root, { mesh: 'other', peer: await peerId(), site: 'a', validForMs: YEAR, now: NOW })
  await refused(t, verifyCertificate(bytes, { mesh: MESH, root: rootOf(root) }, NOW), 'wrong-mesh')
})

test('a forged certificate (naming the root, signed by another key) is refused', async t => {
  const root = await generateKeyPair('Ed25519')
  const forger = await generateKeyPair('Ed25519')
  const payload = dagCbor.encode({ v: 1, type: 'akmesh/member', mesh: MESH, root: rootOf(root), peer: await peerId(), site: 'x', publish: ['*'], issued: NOW, expires: NOW + YEAR })
  await refused(t, verifyCertificate(await signEnvelope(payload, forger), { mesh: MESH, root: rootOf(root) }, NOW), 'bad-signature')
})

test('a tampered certificate (grants widened after signing) is refused', async t => {
  const root = await generateKeyPair('Ed25519')
  const bytes = await issueCertificate(root, { mesh: MESH, peer: await peerId(), site: 'a', publish: ['team-a'], validForMs: YEAR, now: NOW })
  const { payload, signature } = decodeEnvelope(bytes)
  const cert = dagCbor.decode<Record<string, unknown>>(payload)
  const widened = dagCbor.encode({ payload: dagCbor.encode({ ...cert, publish: ['*'] }), signature })
  await refused(t, verifyCertificate(widened, { mesh: MESH, root: rootOf(root) }, NOW), 'bad-signature')
})

test('malformed and undecodable certificates are refused with their reason', async t => {
  const root = await generateKeyPair('Ed25519')
  const id = { mesh: MESH, root: rootOf(root) }
  await refused(t, verifyCertificate(new Uint8Array([1, 2, 3]), id, NOW), 'undecodable')
  const extra = dagCbor.encode({ v: 1, type: 'akmesh/member', mesh: MESH, root: rootOf(root), peer: await peerId(), site: 'x', publish: ['*'], issued: NOW, expires: NOW + YEAR, admin: true })
  await refused(t, verifyCertificate(await signEnvelope(extra, root), id, NOW), 'malformed')
  const noGrants = dagCbor.encode({ v: 1, type: 'akmesh/member', mesh: MESH, root: rootOf(root), peer: await peerId(), site: 'x', publish: [], issued: NOW, expires: NOW + YEAR })
  t.throws(() => decodeCertificate(dagCbor.encode({ payload: noGrants, signature: new Uint8Array(64) })), { instanceOf: CertificateError })
  await refused(t, verifyCertificate(new Uint8Array(20_000), id, NOW), 'undecodable')
})

test('the root key file is written 0600, never overwritten, and loads back to the same root', async t => {
  const dir = await mkdtemp(join(tmpdir(), 'akmesh-root-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const file = join(dir, 'mesh-root.key')
  const created = await createRootKey(file, MESH)
  t.is((await stat(file)).mode & 0o777, 0o600)
  t.is(rootOf(await loadRootKey(file)), created.root)
  await t.throwsAsync(createRootKey(file, MESH), { message: /already exists/ })
})

test('validity strings', t => {
  t.is(parseValidity('90d'), 90 * 86_400_000)
  t.is(parseValidity('12h'), 12 * 3_600_000)
  t.throws(() => parseValidity('forever'))
  t.throws(() => parseValidity('0d'))
})
