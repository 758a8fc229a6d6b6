// Replication between nodes as separate processes over real TCP: gossip of signed manifests,
// forwarding across hops, catch-up after downtime, rejection of bad manifests, conflicts.
import test from 'ava'
import { adminGet, connectedTo, hasVersion, identity, packument, queryIndex, rawPublish } from './helpers/mesh.ts'
import { makeTempDir, startTestNode, waitFor } from './helpers/node.ts'
import { npmClient, writePackage } from './helpers/npm-client.ts'

test.serial('npm publish on A shows in B’s packument; the blob is known on B but not present', async t => {
  const a = await identity(t)
  const b = await identity(t)
  const nodeA = await startTestNode(t, { dataDir: a.dataDir, peering: { allow: [b.peerId] } })
  const nodeB = await startTestNode(t, { dataDir: b.dataDir, peering: { allow: [a.peerId], bootstrap: [nodeA.meshAddr] } })
  await waitFor(async () => await connectedTo(nodeB, a.peerId) && await connectedTo(nodeA, b.peerId), 'A and B connected')
  const npm = await npmClient(t, nodeA)
  if (npm == null) return
  const dir = await writePackage(await makeTempDir(t), { name: 'replicated', version: '1.0.0', source: 'module.exports = 1\n' })
  const published = await npm.run(['publish'], { cwd: dir })
  t.is(published.code, 0, published.stderr)
  const started = Date.now()
  await waitFor(async () => await hasVersion(nodeB, 'replicated', '1.0.0'), 'B to show replicated@1.0.0')
  t.log(`A → B: ${Date.now() - started} ms from the end of npm publish to B's packument`)

  const onA = await packument(nodeA, 'replicated')
  const onB = await packument(nodeB, 'replicated')
  t.deepEqual(onB['dist-tags'], { latest: '1.0.0' })
  t.is(onB.versions['1.0.0'].dist.integrity, onA.versions['1.0.0'].dist.integrity)

  const status = await adminGet(nodeB, '/-/mesh/status')
  t.is(status.peerId, b.peerId)
  t.true(status.watermarks[a.peerId] >= 1, JSON.stringify(status))

  const blobs = await queryIndex(nodeB.dataDir, 'SELECT present FROM blobs') as Array<{ present: number }>
  t.true(blobs.length >= 1 && blobs.every(r => r.present === 0), JSON.stringify(blobs))
})

test.serial('line A–B–C: B forwards A’s manifests to C, which never connects to A', async t => {
  const a = await identity(t)
  const b = await identity(t)
  const c = await identity(t)
  const nodeB = await startTestNode(t, { dataDir: b.dataDir, peering: { allow: [a.peerId, c.peerId] } })
  const nodeA = await startTestNode(t, { dataDir: a.dataDir, peering: { allow: [b.peerId], bootstrap: [nodeB.meshAddr] } })
  // The allowlist is also the membership list: C accepts A's manifests, but A refuses any
  // connection with C, so everything A signs reaches C through B.
  const nodeC = await startTestNode(t, { dataDir: c.dataDir, peering: { allow: [b.peerId, a.peerId], bootstrap: [nodeB.meshAddr] } })
  await waitFor(async () => await connectedTo(nodeB, a.peerId) && await connectedTo(nodeB, c.peerId), 'A and C connected to B')
  const root = await makeTempDir(t)

  const started = Date.now()
  await rawPublish(nodeA, root, 'two-hops', '1.0.0')
  await waitFor(async () => await hasVersion(nodeC, 'two-hops', '1.0.0'), 'C to show two-hops@1.0.0')
  t.log(`A → B → C: ${Date.now() - started} ms`)
  // A's side decides: C may briefly see a connection it dialled before A's gater closes it.
  t.false(await connectedTo(nodeA, c.peerId))
  // Manifests are members' signed records: C holds A's, with A as origin.
  t.true((await adminGet(nodeC, '/-/mesh/status')).watermarks[a.peerId] >= 1)
})

/** name@version of every live npm artifact in a node's index (read beside the running node). */
async function versionsIn (dataDir: string): Promise<string[]> {
  return (await queryIndex(dataDir, "SELECT name || '@' || version AS v FROM artifacts WHERE repo = 'npm' ORDER BY v") as Array<{ v: string }>).map(r => r.v)
}

test.serial('catch-up: C, stopped while A publishes 100 packages, ends with exactly A’s set', async t => {
  const a = await identity(t)
  const c = await identity(t)
  const nodeA = await startTestNode(t, { dataDir: a.dataDir, peering: { allow: [c.peerId] } })
  const nodeC = await startTestNode(t, { dataDir: c.dataDir, peering: { allow: [a.peerId], bootstrap: [nodeA.meshAddr] } })
  await waitFor(async () => await connectedTo(nodeC, a.peerId), 'C connected to A')
  const root = await makeTempDir(t)
  await rawPublish(nodeA, root, 'before-stop', '1.0.0')
  await waitFor(async () => await hasVersion(nodeC, 'before-stop', '1.0.0'), 'C to show before-stop')

  await nodeC.stop()
  for (let i = 0; i < 100; i++) await rawPublish(nodeA, root, `offline-${i}`, `1.0.${i % 3}`)
  const expected = await versionsIn(nodeA.dataDir)
  t.is(expected.length, 101)

  const started = Date.now()
  await nodeC.restart()
  await waitFor(async () => (await versionsIn(nodeC.dataDir)).length >= expected.length, 'C to catch up on 100 packages', 60_000)
  t.log(`catch-up of 100 manifests after restart: ${Date.now() - started} ms (including process start)`)
  t.deepEqual(await versionsIn(nodeC.dataDir), expected)
  t.regex(nodeC.output(), /"msg":"caught up"/)
})

test.serial('the same name@version published on disconnected A and B resolves to one winner on both, reported as a conflict', async t => {
  const a = await identity(t)
  const b = await identity(t)
  const nodeA = await startTestNode(t, { dataDir: a.dataDir, peering: { allow: [b.peerId] } })
  const nodeB = await startTestNode(t, { dataDir: b.dataDir, peering: { allow: [a.peerId] } })
  const root = await makeTempDir(t)
  await rawPublish(nodeA, root, 'contested', '1.0.0', { description: 'from A' })
  await rawPublish(nodeB, root, 'contested', '1.0.0', { description: 'from B' })
  const integrityA = (await packument(nodeA, 'contested')).versions['1.0.0'].dist.integrity
  const integrityB = (await packument(nodeB, 'contested')).versions['1.0.0'].dist.integrity
  t.not(integrityA, integrityB)

  // Connect them by a live edit of B's peering file: catch-up on connect exchanges the two.
  const { writeFile } = await import('node:fs/promises')
  await writeFile(nodeB.peeringFile, JSON.stringify({ listen: ['/ip4/127.0.0.1/tcp/0'], allow: [a.peerId], bootstrap: [nodeA.meshAddr] }))
  await waitFor(async () => await connectedTo(nodeB, a.peerId), 'B connected to A')
  const conflicts = async (node: typeof nodeA) => (await adminGet<{ conflicts: any[] }>(node, '/-/mesh/conflicts')).conflicts
  await waitFor(async () => (await conflicts(nodeA)).length > 0 && (await conflicts(nodeB)).length > 0, 'both nodes to report the conflict')

  const onA = (await packument(nodeA, 'contested')).versions['1.0.0'].dist.integrity
  const onB = (await packument(nodeB, 'contested')).versions['1.0.0'].dist.integrity
  t.is(onA, onB)
  t.true(onA === integrityA || onA === integrityB)
  const [ca] = await conflicts(nodeA)
  const [cb] = await conflicts(nodeB)
  t.like(ca, { repo: 'npm', name: 'contested', version: '1.0.0' })
  t.deepEqual([ca.winner, ca.loser], [cb.winner, cb.loser])
  t.is(onA === integrityA ? a.peerId : b.peerId, ca.winner.origin)

  const res = await fetch(`${nodeA.url}/-/mesh/conflicts`)
  t.is(res.status, 401)
})

test.serial('manifests that are garbage, of another mesh, from a non-member or badly signed are rejected; the node stays up', async t => {
  const { generateKeyPair } = await import('@libp2p/crypto/keys')
  const { peerIdFromPrivateKey } = await import('@libp2p/peer-id')
  const { multiaddr } = await import('@multiformats/multiaddr')
  const dagCbor = await import('@ipld/dag-cbor')
  const { createMeshLibp2p } = await import('../mesh/libp2p.ts')
  const { encodeManifest, signManifest } = await import('../mesh/manifest.ts')
  const { manifestTopic } = await import('../mesh/gossip.ts')

  // X: a member, running in this process; F: a key no node allows.
  const xKey = await generateKeyPair('Ed25519')
  const fKey = await generateKeyPair('Ed25519')
  const x = peerIdFromPrivateKey(xKey).toString()
  const f = peerIdFromPrivateKey(fKey).toString()
  const b = await identity(t)
  const nodeB = await startTestNode(t, { dataDir: b.dataDir, peering: { allow: [x] } })
  const libp2p = await createMeshLibp2p({ privateKey: xKey, mesh: 'default', listen: ['/ip4/127.0.0.1/tcp/0'], isAllowed: () => true })
  t.teardown(async () => { await libp2p.stop() })
  const topic = manifestTopic('default')
  libp2p.services.pubsub.subscribe(topic)
  await libp2p.dial(multiaddr(nodeB.meshAddr))
  await waitFor(() => libp2p.services.pubsub.getSubscribers(topic).some(p => p.toString() === b.peerId), 'B subscribed, as seen from X')

  const manifest = (origin: string, seq: number, mesh = 'default') => ({
    v: 1, mesh, origin, seq, prev: seq - 1, timestamp: Date.now(), kind: 'publish', repo: 'not-a-repo', format: 'npm', name: `n${seq}`, version: '1.0.0', files: [], metadata: {}
  }) as any
  const status = async () => await adminGet(nodeB, '/-/mesh/status')

  // A good one first: the channel works (kept for forwarding, its repository is not here).
  await libp2p.services.pubsub.publish(topic, await signManifest(manifest(x, 1), xKey))
  await waitFor(async () => (await status()).watermarks[x] === 1, 'B to hold X’s manifest 1')

  const payload = encodeManifest(manifest(x, 2))
  const bad = [
    new TextEncoder().encode('not cbor at all'),
    await signManifest(manifest(f, 1), fKey), // non-member
    dagCbor.encode({ payload, signature: await fKey.sign(payload) }), // X's manifest signed by F
    await signManifest(manifest(x, 3, 'other-mesh'), xKey)
  ]
  for (const envelope of bad) await libp2p.services.pubsub.publish(topic, envelope)
  await waitFor(async () => (await status()).rejected >= 4, 'B to reject the 4 bad manifests')

  const after = await status()
  t.deepEqual(after.watermarks, { [x]: 1 })
  t.is(nodeB.proc.exitCode, null)
  for (const reason of ['undecodable', 'not-allowed', 'bad-signature', 'wrong-mesh']) {
    t.regex(nodeB.output(), new RegExp(`"reason":"${reason}".*"msg":"manifest rejected"`), reason)
  }
})
