// Mesh membership by certificate, through the real CLI: `akmesh mesh init` (root key outside the
// data dir), `mesh invite` (signed certificate), `mesh join` (installed, root recorded), and the
// membership service deciding whose manifests count (grants per repository, allowlist migration).
import test from 'ava'
import * as dagCbor from '@ipld/dag-cbor'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { decodeCertificate, issueCertificate, rootOf } from '../mesh/certificates.ts'
import { KNOWN_CERTIFICATES_FILE, Membership, OWN_CERTIFICATE_FILE } from '../mesh/membership.ts'
import { adminGet, connectedTo, hasVersion, identity, rawPublish } from './helpers/mesh.ts'
import { exportBundle, importBundle } from './helpers/bundle.ts'
import { akmesh, makeTempDir, startTestNode, waitFor } from './helpers/node.ts'

test('mesh init, invite and join: the certificate is installed and the peering file names the root', async t => {
  const dir = await makeTempDir(t)
  const key = join(dir, 'offline', 'root.key')
  const data = join(dir, 'data')
  await mkdir(join(dir, 'offline'))
  const init = await akmesh(['mesh', 'init', '--name', 'acme', '--key', key])
  t.is(init.code, 0, init.stderr)
  const root = /^root (\S+)$/m.exec(init.stdout)?.[1]
  t.truthy(root)
  t.regex(init.stdout, new RegExp(key.replaceAll('/', '\\/')))
  t.is((await akmesh(['mesh', 'init', '--name', 'acme', '--key', key])).code, 2) // never overwritten
  const id = await akmesh(['id', '--data', data])
  const peer = id.stdout.split('\n')[0]
  const out = join(dir, 'a.cert')
  const invite = await akmesh(['mesh', 'invite', '--name', 'acme', '--key', key, '--peer', peer, '--site', 'a', '--publish', 'team-a', '--expires', '90d', '-o', out])
  t.is(invite.code, 0, invite.stderr)
  t.regex(invite.stdout, /may change team-a/)
  const join1 = await akmesh(['mesh', 'join', out, '--data', data])
  t.is(join1.code, 0, join1.stderr)
  const peering = JSON.parse(await readFile(join(data, 'peering.json'), 'utf8'))
  t.is(peering.mesh, 'acme')
  t.is(peering.meshRoot, root)
  t.is(peering.node.site, 'a')
  t.deepEqual(await readFile(join(data, OWN_CERTIFICATE_FILE)), await readFile(out))
  // Another node cannot install a's certificate as its own.
  const other = await akmesh(['mesh', 'join', out, '--data', join(dir, 'other')])
  t.is(other.code, 2)
  t.regex(other.stderr, /not of this node/)
})

test('membership: grants decide per repository; expired, other-root and unknown origins are refused with their reason; allowlist still counts', async t => {
  const dir = await makeTempDir(t)
  const rootKey = await generateKeyPair('Ed25519')
  const otherRoot = await generateKeyPair('Ed25519')
  const id = async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
  const [self, teamA, old, stranger, listed, unknown] = await Promise.all([id(), id(), id(), id(), id(), id()])
  const peering = { mesh: 'acme', allow: [listed], meshRoot: rootOf(rootKey) }
  const m = await Membership.open({ dataDir: dir, self, peering: () => peering })
  const YEAR = 365 * 86_400_000
  t.truthy(await m.learn(await issueCertificate(rootKey, { mesh: 'acme', peer: teamA, site: 'a', publish: ['team-a'], validForMs: YEAR })))
  t.truthy(await m.learn(await issueCertificate(rootKey, { mesh: 'acme', peer: old, site: 'old', validForMs: 1000 })))
  t.is(await m.learn(await issueCertificate(otherRoot, { mesh: 'acme', peer: stranger, site: 's', validForMs: YEAR })), undefined)

  t.is(m.admit(teamA, 'team-a'), undefined)
  t.is(m.admit(teamA, 'team-b')?.reason, 'outside-grants')
  t.is(m.admit(self, 'team-b'), undefined)
  t.is(m.admit(listed, 'team-b'), undefined)
  t.is(m.admit(old, 'team-a', { now: Date.now() + 5000 })?.reason, 'certificate-expired')
  t.is(m.admit(stranger, 'team-a')?.reason, 'wrong-root')
  t.is(m.admit(unknown, 'team-a')?.reason, 'not-allowed')
  t.true(m.isMember(teamA))
  t.false(m.isMember(unknown))

  // Connection policy is separate: a member may connect unless the connect rules say otherwise.
  t.true(m.mayConnect(teamA))
  t.false(m.mayConnect(unknown))
  Object.assign(peering, { connect: { deny: ['site:a'] } })
  t.false(m.mayConnect(teamA))
  t.is(m.admit(teamA, 'team-a'), undefined, 'connect rules do not change whose manifests count')
  Object.assign(peering, { connect: { only: [listed], deny: [] } })
  t.true(m.mayConnect(listed))
  t.false(m.mayConnect(teamA))
  Object.assign(peering, { connect: undefined })

  // Learned certificates persist in the data directory.
  const again = await Membership.open({ dataDir: dir, self, peering: () => peering })
  t.is(again.admit(teamA, 'team-a'), undefined)
  t.is(again.certificate(teamA)?.site, 'a')
})

test('line A–B–C, each letting only its neighbours connect: C accepts A\'s publish by certificate alone (learned through B); B\'s publish outside its grants is refused', async t => {
  const rootKey = await generateKeyPair('Ed25519')
  const [a, b, c] = [await identity(t), await identity(t), await identity(t)]
  const YEAR = 365 * 86_400_000
  const grants: Array<[typeof a, string, string[] | undefined]> = [[a, 'a', ['npm']], [b, 'b', ['other']], [c, 'c', undefined]]
  for (const [node, site, publish] of grants) {
    await writeFile(join(node.dataDir, OWN_CERTIFICATE_FILE), await issueCertificate(rootKey, { mesh: 'default', peer: node.peerId, site, publish, validForMs: YEAR }))
  }
  const meshRoot = rootOf(rootKey)
  // Any member may connect by default (certificates are presented at connect): `connect.only`
  // keeps the line.
  const nodeB = await startTestNode(t, { dataDir: b.dataDir, peering: { meshRoot, allow: [a.peerId, c.peerId], connect: { only: [a.peerId, c.peerId] } } })
  const nodeA = await startTestNode(t, { dataDir: a.dataDir, peering: { meshRoot, allow: [b.peerId], connect: { only: [b.peerId] }, bootstrap: [nodeB.meshAddr] } })
  const nodeC = await startTestNode(t, { dataDir: c.dataDir, peering: { meshRoot, allow: [b.peerId], connect: { only: [b.peerId] }, bootstrap: [nodeB.meshAddr] } })
  await waitFor(async () => await connectedTo(nodeB, a.peerId) && await connectedTo(nodeB, c.peerId), 'B connected to A and C')

  await rawPublish(nodeA, await makeTempDir(t), 'far-away', '1.0.0')
  await waitFor(async () => await hasVersion(nodeC, 'far-away', '1.0.0'), 'C to accept A\'s publish')
  t.false(await connectedTo(nodeC, a.peerId), 'C never connected to A')
  const members = (await adminGet(nodeC, '/-/mesh/status')).members
  t.like(members.find((m: any) => m.peer === a.peerId), { site: 'a', publish: ['npm'], expired: false, expiring: false })

  // B may change only repository "other": its npm publish stays on B, refused on A and C (once
  // they hold B's certificate, passed at catch-up; before, B's allow entries would admit it).
  await waitFor(async () => (await knownCertificates(nodeA.dataDir)).includes(b.peerId) && (await knownCertificates(nodeC.dataDir)).includes(b.peerId), 'A and C to hold B\'s certificate')
  await rawPublish(nodeB, await makeTempDir(t), 'from-b', '1.0.0')
  for (const node of [nodeA, nodeC]) {
    const refused = await waitFor(async () => (await adminGet(node, '/-/mesh/status')).rejections
      .find((r: any) => r.origin === b.peerId && r.reason === 'outside-grants'), 'B\'s manifest refused as outside its grants')
    t.regex(refused.message, /may change other, not repository npm/)
    t.false(await hasVersion(node, 'from-b', '1.0.0'))
  }
})

async function knownCertificates (dataDir: string): Promise<string[]> {
  const bytes = await readFile(join(dataDir, KNOWN_CERTIFICATES_FILE)).catch(() => undefined)
  return bytes == null ? [] : dagCbor.decode<Uint8Array[]>(bytes).map(c => decodeCertificate(c).peer)
}

test('an air-gapped site with only the mesh root imports a bundle: the bundle carries the certificates of its exporter and origins', async t => {
  const rootKey = await generateKeyPair('Ed25519')
  const meshRoot = rootOf(rootKey)
  const [a, x] = [await identity(t), await identity(t)]
  await writeFile(join(a.dataDir, OWN_CERTIFICATE_FILE), await issueCertificate(rootKey, { mesh: 'default', peer: a.peerId, site: 'a', publish: ['npm'], validForMs: 86_400_000 }))
  await writeFile(join(x.dataDir, 'peering.json'), JSON.stringify({ meshRoot, listen: ['/ip4/127.0.0.1/tcp/0'] }))
  const nodeA = await startTestNode(t, { dataDir: a.dataDir, peering: { meshRoot } })
  await rawPublish(nodeA, await makeTempDir(t), 'carried', '1.0.0')
  const file = join(await makeTempDir(t), 'a.car')
  const exported = await exportBundle(a.dataDir, file)
  t.is(exported.code, 0, exported.stderr)
  const imported = await importBundle(x.dataDir, file)
  t.is(imported.code, 0, imported.stderr)
  t.true((await knownCertificates(x.dataDir)).includes(a.peerId))
  const nodeX = await startTestNode(t, { dataDir: x.dataDir })
  t.true(await hasVersion(nodeX, 'carried', '1.0.0'))
})

test('the peering file may name this node\'s certificate file instead of mesh join\'s copy; a missing one stops the node with the file named', async t => {
  const dir = await makeTempDir(t)
  const key = join(dir, 'root.key')
  const data = join(dir, 'data')
  const root = /^root (\S+)$/m.exec((await akmesh(['mesh', 'init', '--name', 'acme', '--key', key])).stdout)?.[1]
  const peer = (await akmesh(['id', '--data', data])).stdout.split('\n')[0]
  const invite = await akmesh(['mesh', 'invite', '--name', 'acme', '--key', key, '--peer', peer, '--site', 'north', '-o', join(dir, 'north.cert')])
  t.is(invite.code, 0, invite.stderr)
  await writeFile(join(data, 'peering.json'), JSON.stringify({ mesh: 'acme', meshRoot: root, certificate: '../north.cert' }))
  const list = await akmesh(['peers', 'list', '--data', data, '--json'])
  t.is(list.code, 0, list.stderr)
  const self = (JSON.parse(list.stdout).members as Array<{ peer: string, site: string, state: string }>).find(m => m.peer === peer)
  t.is(self?.site, 'north')
  t.is(self?.state, 'member')
  await writeFile(join(data, 'peering.json'), JSON.stringify({ mesh: 'acme', meshRoot: root, certificate: 'nowhere.cert' }))
  const start = await akmesh(['start', '--data', data])
  t.not(start.code, 0)
  t.regex(start.stderr, /certificate: cannot read this node's member certificate .*nowhere\.cert \(ENOENT\)/)
})
