// Issue 10, certificates presented at connect (mesh/introductions.ts), nodes as separate
// processes over real TCP: a new site joins an existing mesh with nothing but its certificate and
// one bootstrap address, no other node's files edited; a peer without a valid certificate is hung
// up on and served nothing.
import { generateKeyPair } from '@libp2p/crypto/keys'
import test from 'ava'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { lpStream } from '@libp2p/utils'
import { issueCertificate, rootOf } from '../mesh/certificates.ts'
import { introduceProtocol } from '../mesh/introductions.ts'
import { createMeshLibp2p } from '../mesh/libp2p.ts'
import { syncProtocol } from '../mesh/sync.ts'
import { OWN_CERTIFICATE_FILE } from '../mesh/membership.ts'
import { adminGet, connectedTo, hasVersion, identity, packument, rawPublish, type Identity } from './helpers/mesh.ts'
import { akmesh, makeTempDir, startTestNode, waitFor, type TestNode } from './helpers/node.ts'
import { npmClient, runNode, writePackage, writeProject } from './helpers/npm-client.ts'

const YEAR = 365 * 86_400_000

/** `akmesh mesh init` in an "offline" dir; returns the root key file and the root. */
async function meshInit (t: any): Promise<{ key: string, root: string }> {
  const key = join(await makeTempDir(t, 'akmesh-root-'), 'root.key')
  const r = await akmesh(['mesh', 'init', '--name', 'default', '--key', key])
  if (r.code !== 0) throw new Error(r.stderr)
  const root = /12D3KooW\w+/.exec(r.stdout)?.[0]
  if (root == null) throw new Error(`no root in: ${r.stdout}`)
  return { key, root }
}

/** `akmesh mesh invite` for a node, then `akmesh mesh join` on it. */
async function inviteAndJoin (t: any, key: string, node: Identity, site: string): Promise<void> {
  const file = join(await makeTempDir(t, 'akmesh-cert-'), `${site}.cert`)
  const invite = await akmesh(['mesh', 'invite', '--name', 'default', '--key', key, '--peer', node.peerId, '--site', site, '-o', file])
  if (invite.code !== 0) throw new Error(invite.stderr)
  const joined = await akmesh(['mesh', 'join', file, '--data', node.dataDir])
  if (joined.code !== 0) throw new Error(joined.stderr)
}

const peeringOf = async (node: TestNode): Promise<string> => await readFile(node.peeringFile, 'utf8')

test('a new site D joins a 3-node mesh with only its certificate and one bootstrap address, catches up every publish, and its publish is accepted; no file of A, B, C is edited', async t => {
  const { key, root } = await meshInit(t)
  const [a, b, c] = [await identity(t), await identity(t), await identity(t)]
  for (const [node, site] of [[a, 'a'], [b, 'b'], [c, 'c']] as const) await inviteAndJoin(t, key, node, site)
  // No allow lists: members by certificate only.
  const nodeA = await startTestNode(t, { dataDir: a.dataDir, peering: { meshRoot: root, node: { name: 'a', site: 'a' } } })
  const nodeB = await startTestNode(t, { dataDir: b.dataDir, peering: { meshRoot: root, node: { name: 'b', site: 'b' }, bootstrap: [nodeA.meshAddr] } })
  const nodeC = await startTestNode(t, { dataDir: c.dataDir, peering: { meshRoot: root, node: { name: 'c', site: 'c' }, bootstrap: [nodeA.meshAddr] } })
  await waitFor(async () => await connectedTo(nodeA, b.peerId) && await connectedTo(nodeA, c.peerId), 'A connected to B and C')
  await rawPublish(nodeA, await makeTempDir(t), 'from-a', '1.0.0')
  await rawPublish(nodeB, await makeTempDir(t), 'from-b', '1.0.0')
  await rawPublish(nodeC, await makeTempDir(t), 'from-c', '1.0.0')
  for (const [i, node] of [nodeA, nodeB, nodeC].entries()) {
    for (const name of ['from-a', 'from-b', 'from-c']) await waitFor(async () => await hasVersion(node, name, '1.0.0'), `${name} on ${'ABC'[i]}`)
  }
  const files = async (): Promise<string[]> => await Promise.all([nodeA, nodeB, nodeC].flatMap(n => [peeringOf(n), readFile(join(n.dataDir, OWN_CERTIFICATE_FILE), 'base64')]))
  const before = await files()

  // D: identity, invite, join, one bootstrap address, start. Nothing else, anywhere.
  const d = await identity(t)
  await inviteAndJoin(t, key, d, 'd')
  const added = await akmesh(['peers', 'add', nodeA.meshAddr, '--data', d.dataDir])
  t.is(added.code, 0, added.stderr)
  const peering = JSON.parse(await readFile(join(d.dataDir, 'peering.json'), 'utf8'))
  await writeFile(join(d.dataDir, 'peering.json'), JSON.stringify({ ...peering, listen: ['/ip4/127.0.0.1/tcp/0'] }))
  const nodeD = await startTestNode(t, { dataDir: d.dataDir })

  await waitFor(async () => await connectedTo(nodeA, d.peerId), 'A to keep D connected')
  for (const name of ['from-a', 'from-b', 'from-c']) await waitFor(async () => await hasVersion(nodeD, name, '1.0.0'), `D to catch up ${name}`)
  t.regex(nodeA.output(), new RegExp(`"peer":"${d.peerId}"[^\\n]*a new member presented its certificate`))
  const members = (await adminGet(nodeA, '/-/mesh/status')).members
  t.like(members.find((m: any) => m.peer === d.peerId), { site: 'd', expired: false })

  await rawPublish(nodeD, await makeTempDir(t), 'from-d', '1.0.0')
  for (const node of [nodeA, nodeB, nodeC]) await waitFor(async () => await hasVersion(node, 'from-d', '1.0.0'), 'A, B and C to accept D\'s publish')
  t.deepEqual(await files(), before, 'the peering files and certificates of A, B and C are unchanged')
})

test('a peer that presents no certificate, one of another root, and a member of a site the connect rules exclude are hung up on with their reason, logged once, and get no manifest', async t => {
  const rootKey = await generateKeyPair('Ed25519')
  const a = await identity(t)
  await writeFile(join(a.dataDir, OWN_CERTIFICATE_FILE), await issueCertificate(rootKey, { mesh: 'default', peer: a.peerId, site: 'a', validForMs: YEAR }))
  const nodeA = await startTestNode(t, { dataDir: a.dataDir, peering: { meshRoot: rootOf(rootKey), connect: { deny: ['site:x'] } } })
  await rawPublish(nodeA, await makeTempDir(t), 'secret', '1.0.0')

  // A valid member of a site A's connect rules exclude (known only once it presents its certificate).
  const excluded = await identity(t)
  await writeFile(join(excluded.dataDir, OWN_CERTIFICATE_FILE), await issueCertificate(rootKey, { mesh: 'default', peer: excluded.peerId, site: 'x', validForMs: YEAR }))
  const nodeExcluded = await startTestNode(t, { dataDir: excluded.dataDir, peering: { meshRoot: rootOf(rootKey), bootstrap: [nodeA.meshAddr] } })
  // No certificate at all: it allow-lists A (its own file) and dials it.
  const bare = await identity(t)
  const nodeBare = await startTestNode(t, { dataDir: bare.dataDir, peering: { allow: [a.peerId], bootstrap: [nodeA.meshAddr] } })
  // A certificate of another mesh root (same mesh name).
  const otherKey = await generateKeyPair('Ed25519')
  const forged = await identity(t)
  await writeFile(join(forged.dataDir, OWN_CERTIFICATE_FILE), await issueCertificate(otherKey, { mesh: 'default', peer: forged.peerId, site: 'x', validForMs: YEAR }))
  const nodeForged = await startTestNode(t, { dataDir: forged.dataDir, peering: { meshRoot: rootOf(otherKey), allow: [a.peerId], bootstrap: [nodeA.meshAddr] } })

  const hungUp = (peer: string, reason: string): RegExp => new RegExp(`"peer":"${peer}"[^\\n]*"reason":"${reason}"[^\\n]*hung up on a peer on probation`)
  await waitFor(() => hungUp(bare.peerId, 'no-certificate').test(nodeA.output()), 'A to hang up on the peer without a certificate')
  await waitFor(() => hungUp(forged.peerId, 'wrong-root').test(nodeA.output()), 'A to hang up on the peer of another root')
  await waitFor(() => hungUp(excluded.peerId, 'connect-rules').test(nodeA.output()), 'A to hang up on the member of an excluded site')
  // Each is logged once, though the peers keep redialing.
  await new Promise(resolve => setTimeout(resolve, 3000))
  for (const peer of [bare.peerId, forged.peerId, excluded.peerId]) {
    t.is(nodeA.output().split('\n').filter(l => l.includes(peer) && l.includes('hung up on a peer on probation')).length, 1)
    t.false(await connectedTo(nodeA, peer))
  }
  for (const node of [nodeBare, nodeForged, nodeExcluded]) {
    t.false(await hasVersion(node, 'secret', '1.0.0'), 'no manifest reached a non-member')
  }
})

test('a peer that connects but never introduces itself is served nothing while on probation and hung up on when it ends', async t => {
  const rootKey = await generateKeyPair('Ed25519')
  const a = await identity(t)
  await writeFile(join(a.dataDir, OWN_CERTIFICATE_FILE), await issueCertificate(rootKey, { mesh: 'default', peer: a.peerId, site: 'a', validForMs: YEAR }))
  const nodeA = await startTestNode(t, { dataDir: a.dataDir, peering: { meshRoot: rootOf(rootKey) } })
  await rawPublish(nodeA, await makeTempDir(t), 'secret', '1.0.0')

  // A bare libp2p peer of the same mesh name: it speaks sync, not the introduction.
  const silent = await createMeshLibp2p({ privateKey: await generateKeyPair('Ed25519'), mesh: 'default', listen: [], isAllowed: () => true })
  t.teardown(async () => { await silent.stop() })
  const stream = await silent.dialProtocol(multiaddr(nodeA.meshAddr), syncProtocol('default'), { signal: AbortSignal.timeout(20_000) })
  const lp = lpStream(stream)
  await lp.write(new TextEncoder().encode(JSON.stringify({ have: {} })))
  const answer = await lp.read({ signal: AbortSignal.timeout(30_000) }).then(() => 'answered', (err: Error) => `refused: ${err.message}`)
  t.regex(answer, /^refused/, 'catch-up is not served to a peer on probation')
  const peer = silent.peerId.toString()
  await waitFor(() => new RegExp(`"peer":"${peer}"[^\\n]*"reason":"timeout"[^\\n]*hung up on a peer on probation`).test(nodeA.output()), 'A to hang up at the end of the probation')
  await waitFor(() => silent.getConnections().length === 0, 'the connection to be closed')

  // One that introduces itself with garbage is hung up on at once, and A keeps running.
  const garbler = await createMeshLibp2p({ privateKey: await generateKeyPair('Ed25519'), mesh: 'default', listen: [], isAllowed: () => true })
  t.teardown(async () => { await garbler.stop() })
  const intro = lpStream(await garbler.dialProtocol(multiaddr(nodeA.meshAddr), introduceProtocol('default'), { signal: AbortSignal.timeout(20_000) }))
  await intro.write(new TextEncoder().encode('not a certificate at all'))
  const g = garbler.peerId.toString()
  await waitFor(() => new RegExp(`"peer":"${g}"[^\\n]*"reason":"undecodable"[^\\n]*hung up on a peer on probation`).test(nodeA.output()), 'A to hang up on the garbage certificate')
  await waitFor(() => garbler.getConnections().length === 0, 'the connection to be closed')
  t.true(await hasVersion(nodeA, 'secret', '1.0.0'), 'A still serves')
})

test.serial('line A–B–C by certificates and connect rules only: npm publish on A, npm install on C through B, and npm deprecate on A reaches C', async t => {
  const rootKey = await generateKeyPair('Ed25519')
  const meshRoot = rootOf(rootKey)
  const [a, b, c] = [await identity(t), await identity(t), await identity(t)]
  for (const [node, site] of [[a, 'a'], [b, 'b'], [c, 'c']] as const) {
    await writeFile(join(node.dataDir, OWN_CERTIFICATE_FILE), await issueCertificate(rootKey, { mesh: 'default', peer: node.peerId, site, validForMs: YEAR }))
  }
  // No allow lists: B lets in sites a and c, A and C only site b.
  const nodeB = await startTestNode(t, { dataDir: b.dataDir, peering: { meshRoot, connect: { only: ['site:a', 'site:c'] } } })
  const nodeA = await startTestNode(t, { dataDir: a.dataDir, peering: { meshRoot, connect: { only: ['site:b'] }, bootstrap: [nodeB.meshAddr] } })
  const nodeC = await startTestNode(t, { dataDir: c.dataDir, peering: { meshRoot, connect: { only: ['site:b'] }, bootstrap: [nodeB.meshAddr] } })
  await waitFor(async () => await connectedTo(nodeB, a.peerId) && await connectedTo(nodeB, c.peerId), 'B connected to A and C')

  const publisher = await npmClient(t, nodeA)
  const consumer = await npmClient(t, nodeC, null)
  if (publisher == null || consumer == null) return
  const dir = await writePackage(await makeTempDir(t), { name: '@line/far-away', version: '1.0.0', source: 'module.exports = "published on A"\n' })
  const published = await publisher.run(['publish'], { cwd: dir })
  t.is(published.code, 0, published.stderr)
  await waitFor(async () => await hasVersion(nodeC, '@line/far-away', '1.0.0'), 'C to know @line/far-away@1.0.0')

  const project = await writeProject(t)
  const installed = await consumer.run(['install', '@line/far-away@1.0.0'], { cwd: project })
  t.is(installed.code, 0, installed.stderr)
  t.is((await runNode(project, 'console.log(require("@line/far-away"))')).stdout.trim(), 'published on A')

  const deprecated = await publisher.run(['deprecate', '@line/far-away@1.0.0', 'moved to @line/near'])
  t.is(deprecated.code, 0, deprecated.stderr)
  await waitFor(async () => (await packument(nodeC, '@line/far-away'))?.versions?.['1.0.0']?.deprecated === 'moved to @line/near', 'the deprecation to reach C')
  const viewed = await consumer.run(['view', '@line/far-away@1.0.0', 'deprecated'])
  t.is(viewed.code, 0, viewed.stderr)
  t.is(viewed.stdout.trim(), 'moved to @line/near')

  t.false(await connectedTo(nodeC, a.peerId), 'C never connected to A')
  t.false(await connectedTo(nodeA, c.peerId), 'A never connected to C')
})
