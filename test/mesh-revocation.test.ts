// Revocation of a member: `akmesh mesh revoke` signs it where the root key is, `akmesh mesh
// publish-revocation` gives it to one running node, and gossip, catch-up and bundles carry it to
// every other, each of which then refuses the revoked origin's manifests signed from the
// revocation time on (all of them with --all) and lists the revocation in /-/mesh/status.
import test from 'ava'
import * as dagCbor from '@ipld/dag-cbor'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { issueCertificate, loadRootKey, rootOf } from '../mesh/certificates.ts'
import { Membership, OWN_CERTIFICATE_FILE } from '../mesh/membership.ts'
import { REVOCATIONS_FILE } from '../mesh/revocation-store.ts'
import { decodeRevocation, isRevocationEnvelope, issueRevocation, RevocationError } from '../mesh/revocations.ts'
import { adminGet, hasVersion, identity, rawPublish, type Identity } from './helpers/mesh.ts'
import { exportBundle, importBundle } from './helpers/bundle.ts'
import { akmesh, makeTempDir, startTestNode, waitFor, type TestNode } from './helpers/node.ts'

const YEAR = 365 * 86_400_000

test('membership: a revocation refuses the manifests signed from its time on (all of them with --all); final for the peer, kept across restarts', async t => {
  const dir = await makeTempDir(t)
  const rootKey = await generateKeyPair('Ed25519')
  const id = async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
  const [self, d, e, listed] = await Promise.all([id(), id(), id(), id()])
  const peering = { mesh: 'acme', allow: [listed], meshRoot: rootOf(rootKey) }
  const m = await Membership.open({ dataDir: dir, self, peering: () => peering })
  for (const peer of [d, e]) await m.learn(await issueCertificate(rootKey, { mesh: 'acme', peer, site: peer === d ? 'd' : 'e', validForMs: YEAR }))
  const at = Date.UTC(2026, 0, 31, 12)

  const revocation = await issueRevocation(rootKey, { mesh: 'acme', peer: d, at })
  t.true(isRevocationEnvelope(revocation))
  t.like(await m.learnRevocation(revocation), { fresh: true, revocation: { peer: d, at, all: false } })
  t.is(m.admit(d, 'npm', { signedAt: at - 1 }), undefined, 'signed before the revocation: still valid')
  const refused = m.admit(d, 'npm', { signedAt: at })
  t.is(refused?.reason, 'revoked')
  t.regex(refused?.message ?? '', /2026-01-31T12:00:00\.000Z/)
  t.is(m.admit(d, 'npm')?.reason, 'revoked', 'without a signing time, a revoked origin is refused')
  t.is(m.admit(e, 'npm', { signedAt: at + 1 }), undefined, 'other members are not affected')
  t.like(m.members().find(x => x.peer === d), { revoked: { at: '2026-01-31T12:00:00.000Z', all: false } })
  t.is(m.members().find(x => x.peer === e)?.revoked, undefined)

  // Final: a later, milder revocation changes nothing; a newer certificate does not undo it.
  t.like(await m.learnRevocation(await issueRevocation(rootKey, { mesh: 'acme', peer: d, at: at + YEAR })), { fresh: false, revocation: { at } })
  await m.learn(await issueCertificate(rootKey, { mesh: 'acme', peer: d, site: 'd', validForMs: 2 * YEAR }))
  t.is(m.admit(d, 'npm', { signedAt: at + 1 })?.reason, 'revoked')
  // --all refuses what it signed before, too; an allow-listed peer is revoked like any other.
  t.like(await m.learnRevocation(await issueRevocation(rootKey, { mesh: 'acme', peer: d, at: at + YEAR, all: true })), { fresh: true })
  t.is(m.admit(d, 'npm', { signedAt: 0 })?.reason, 'revoked')
  await m.learnRevocation(await issueRevocation(rootKey, { mesh: 'acme', peer: listed, at }))
  t.is(m.admit(listed, 'npm', { signedAt: at })?.reason, 'revoked')
  t.is(m.admit(listed, 'npm', { signedAt: at - 1 }), undefined)

  // Only the mesh root revokes.
  const forged = await issueRevocation(await generateKeyPair('Ed25519'), { mesh: 'acme', peer: e, at: 0 })
  const err = await t.throwsAsync(m.learnRevocation(forged), { instanceOf: RevocationError })
  t.is(err?.reason, 'wrong-root')
  t.is(m.admit(e, 'npm', { signedAt: at }), undefined)

  // Kept in the data directory, re-verified at start.
  const again = await Membership.open({ dataDir: dir, self, peering: () => peering })
  t.is(again.admit(d, 'npm', { signedAt: 0 })?.reason, 'revoked')
  t.is(again.admit(listed, 'npm', { signedAt: at - 1 }), undefined)
  t.is(again.revoked().length, 2)
})

/** A mesh root key made by `akmesh mesh init`, and members with certificates it signed. */
async function meshWithRoot (t: any, sites: string[]): Promise<{ key: string, rootKey: PrivateKey, meshRoot: string, members: Identity[], allow: string[] }> {
  const dir = await makeTempDir(t)
  const key = join(dir, 'root.key')
  const init = await akmesh(['mesh', 'init', '--name', 'default', '--key', key])
  if (init.code !== 0) throw new Error(init.stderr)
  const rootKey = await loadRootKey(key)
  const members: Identity[] = []
  for (const site of sites) {
    const m = await identity(t)
    await writeFile(join(m.dataDir, OWN_CERTIFICATE_FILE), await issueCertificate(rootKey, { mesh: 'default', peer: m.peerId, site, validForMs: YEAR }))
    members.push(m)
  }
  // Until certificates are exchanged at connect, a member must be allow-listed to connect; the
  // certificates, held, still decide whose manifests count.
  return { key, rootKey, meshRoot: rootOf(rootKey), members, allow: members.map(m => m.peerId) }
}

const status = async (node: TestNode): Promise<any> => await adminGet(node, '/-/mesh/status')
const holdsRevocationOf = async (node: TestNode, peer: string): Promise<any> => (await status(node)).revocations?.find((r: any) => r.peer === peer)
const refusedAsRevoked = async (node: TestNode, origin: string): Promise<any> =>
  (await status(node)).rejections.find((r: any) => r.origin === origin && r.reason === 'revoked')

async function revoke (t: any, key: string, peer: string, args: string[] = []): Promise<string> {
  const file = join(await makeTempDir(t), 'd.revoke')
  const r = await akmesh(['mesh', 'revoke', peer, '--name', 'default', '--key', key, '-o', file, ...args])
  t.is(r.code, 0, r.stderr)
  t.regex(r.stdout, new RegExp(`wrote ${file}: ${peer} revoked`))
  return file
}

test('after revoke D, D\'s new manifests are refused on every node, also on one that was offline during the revocation and catches up later', async t => {
  const { key, meshRoot, allow, members: [a, b, c, d] } = await meshWithRoot(t, ['a', 'b', 'c', 'd'])
  const nodeA = await startTestNode(t, { dataDir: a.dataDir, peering: { meshRoot, allow } })
  const nodeB = await startTestNode(t, { dataDir: b.dataDir, peering: { meshRoot, allow, bootstrap: [nodeA.meshAddr] } })
  const nodeD = await startTestNode(t, { dataDir: d.dataDir, peering: { meshRoot, allow, bootstrap: [nodeA.meshAddr, nodeB.meshAddr] } })
  const nodeC = await startTestNode(t, { dataDir: c.dataDir, peering: { meshRoot, allow, bootstrap: [nodeA.meshAddr, nodeD.meshAddr] } })
  await rawPublish(nodeD, await makeTempDir(t), 'd-first', '1.0.0')
  for (const node of [nodeA, nodeB, nodeC]) await waitFor(async () => await hasVersion(node, 'd-first', '1.0.0'), 'D\'s first publish everywhere')

  // C goes offline; D publishes once more before it is revoked, once after.
  await nodeC.stop()
  await rawPublish(nodeD, await makeTempDir(t), 'd-before', '1.0.0')
  for (const node of [nodeA, nodeB]) await waitFor(async () => await hasVersion(node, 'd-before', '1.0.0'), 'D\'s pre-revocation publish on A and B')
  const file = await revoke(t, key, d.peerId)
  const published = await akmesh(['mesh', 'publish-revocation', file, '--url', nodeA.url, '--token', nodeA.adminToken])
  t.is(published.code, 0, published.stderr)
  t.regex(published.stdout, /keeps the revocation of/)
  for (const node of [nodeA, nodeB, nodeD]) await waitFor(async () => await holdsRevocationOf(node, d.peerId), 'the revocation gossiped to A, B and D')

  await rawPublish(nodeD, await makeTempDir(t), 'd-after', '1.0.0')
  for (const node of [nodeA, nodeB]) {
    const refused = await waitFor(async () => await refusedAsRevoked(node, d.peerId), 'D\'s post-revocation manifest refused as revoked')
    t.regex(refused.message, /revoked from \d{4}-\d\d-\d\dT/)
    t.false(await hasVersion(node, 'd-after', '1.0.0'))
    t.like((await status(node)).members.find((m: any) => m.peer === d.peerId), { site: 'd', revoked: { all: false } })
  }
  t.true(await hasVersion(nodeA, 'd-before', '1.0.0'), 'manifests signed before the revocation stay')

  // C comes back: catch-up brings the revocation before the manifests it missed. D's manifest
  // signed before the revocation is applied; the one after is refused, and so is a later one.
  await nodeC.restart()
  const held = await waitFor(async () => await holdsRevocationOf(nodeC, d.peerId), 'C to learn the revocation by catch-up')
  t.like(held, { site: 'd', all: false })
  await waitFor(async () => await hasVersion(nodeC, 'd-before', '1.0.0'), 'C to catch up on D\'s pre-revocation manifest')
  await rawPublish(nodeD, await makeTempDir(t), 'd-later', '1.0.0')
  await waitFor(async () => await refusedAsRevoked(nodeC, d.peerId), 'C to refuse D\'s manifests as revoked')
  await waitFor(async () => (await refusedAsRevoked(nodeC, d.peerId)).count >= 2, 'C to refuse both of D\'s post-revocation manifests')
  for (const node of [nodeA, nodeB, nodeC]) {
    t.false(await hasVersion(node, 'd-after', '1.0.0'))
    t.false(await hasVersion(node, 'd-later', '1.0.0'))
  }
  t.true(await hasVersion(nodeD, 'd-later', '1.0.0'), 'D itself still serves what it published (it is only refused elsewhere)')
  // Kept across a restart.
  await nodeB.restart()
  t.truthy(await holdsRevocationOf(nodeB, d.peerId))
})

test('an air-gapped site refuses the revoked origin\'s manifests that a bundle carries, having learned the revocation from the bundle', async t => {
  const { key, meshRoot, allow, members: [a, d] } = await meshWithRoot(t, ['a', 'd'])
  const x = await identity(t)
  await writeFile(join(x.dataDir, 'peering.json'), JSON.stringify({ meshRoot, listen: ['/ip4/127.0.0.1/tcp/0'] }))
  const nodeA = await startTestNode(t, { dataDir: a.dataDir, peering: { meshRoot, allow } })
  const nodeD = await startTestNode(t, { dataDir: d.dataDir, peering: { meshRoot, allow, bootstrap: [nodeA.meshAddr] } })
  await rawPublish(nodeD, await makeTempDir(t), 'd-old', '1.0.0')
  await waitFor(async () => await hasVersion(nodeA, 'd-old', '1.0.0'), 'A to hold d-old')
  // D's key was compromised from `since` on: the root revokes it from then, after A applied d-new.
  const since = Date.now() + 1
  await new Promise(resolve => setTimeout(resolve, 20))
  await rawPublish(nodeD, await makeTempDir(t), 'd-new', '1.0.0')
  await waitFor(async () => await hasVersion(nodeA, 'd-new', '1.0.0'), 'A to hold d-new')
  const file = await revoke(t, key, d.peerId, ['--at', new Date(since).toISOString()])
  t.is((await akmesh(['mesh', 'publish-revocation', file, '--url', nodeA.url, '--token', nodeA.adminToken])).code, 0)
  await waitFor(async () => await holdsRevocationOf(nodeA, d.peerId), 'A to hold the revocation')
  // A revocation signed by another key is refused, and changes nothing.
  const otherKey = join(await makeTempDir(t), 'other.key')
  t.is((await akmesh(['mesh', 'init', '--name', 'default', '--key', otherKey])).code, 0)
  const forged = await akmesh(['mesh', 'publish-revocation', await revoke(t, otherKey, a.peerId), '--url', nodeA.url, '--token', nodeA.adminToken])
  t.is(forged.code, 2)
  t.regex(forged.stderr, /refused the revocation: 400 .*wrong-root/)
  t.is(await holdsRevocationOf(nodeA, a.peerId), undefined)

  const bundle = join(await makeTempDir(t), 'a.car')
  const exported = await exportBundle(a.dataDir, bundle, ['--allow-missing']) // A replicates on demand: it holds no blobs of D's
  t.is(exported.code, 0, exported.stderr)
  const imported = await importBundle(x.dataDir, bundle)
  const said = imported.stdout + imported.stderr
  t.regex(said, new RegExp(`${d.peerId}/\\d+[^\\n]*revoked from ${new Date(since).toISOString()}`), 'the import names the refused manifest and why')
  const kept = dagCbor.decode<Uint8Array[]>(await readFile(join(x.dataDir, REVOCATIONS_FILE))).map(b => decodeRevocation(b))
  t.like(kept, [{ peer: d.peerId, at: since, all: false }])

  const nodeX = await startTestNode(t, { dataDir: x.dataDir })
  t.like(await holdsRevocationOf(nodeX, d.peerId), { at: new Date(since).toISOString(), all: false })
  t.false(await hasVersion(nodeX, 'd-new', '1.0.0'))
  // Where the import skips refused manifests rather than refusing the bundle, d-old (signed
  // before the revocation) is applied.
  if (imported.code === 0) t.true(await hasVersion(nodeX, 'd-old', '1.0.0'))
})
