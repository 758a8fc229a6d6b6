// Issue 4 with the real npm client, nodes as separate processes over real TCP on 127.0.0.1:
// npm publish on A, npm install from C in a line A–B–C where A and C never connect and neither B
// nor C mirrors: C learns the package from manifests forwarded by B and streams the tarball
// through B from A while npm waits.
import test from 'ava'
import { connectedTo, identity, queryIndex } from './helpers/mesh.ts'
import { makeTempDir, startTestNode, waitFor } from './helpers/node.ts'
import { npmClient, runNode, writePackage, writeProject } from './helpers/npm-client.ts'

test.serial('npm publish on A, npm install from C (line A–B–C, on-demand): the tarball streams through B and C', async t => {
  const [a, b, c] = [await identity(t), await identity(t), await identity(t)]
  const nodeB = await startTestNode(t, { dataDir: b.dataDir, peering: { allow: [a.peerId, c.peerId] } })
  const nodeA = await startTestNode(t, { dataDir: a.dataDir, peering: { allow: [b.peerId], bootstrap: [nodeB.meshAddr] } })
  // C counts A as a member (it accepts A's manifests), but A refuses C: they cannot connect.
  const nodeC = await startTestNode(t, { dataDir: c.dataDir, peering: { allow: [b.peerId, a.peerId], bootstrap: [nodeB.meshAddr] } })
  await waitFor(async () => await connectedTo(nodeB, a.peerId) && await connectedTo(nodeB, c.peerId), 'B connected to A and C')

  const publisher = await npmClient(t, nodeA)
  const consumer = await npmClient(t, nodeC, null)
  if (publisher == null || consumer == null) return
  const dir = await writePackage(await makeTempDir(t), { name: '@mesh/far-away', version: '1.2.3', source: 'module.exports = "published on A"\n' })
  const published = await publisher.run(['publish'], { cwd: dir })
  t.is(published.code, 0, published.stderr)

  // C knows the version from B's forwarding before any client asks, but holds no bytes.
  await waitFor(async () => (await fetch(`${nodeC.url}/npm/@mesh%2ffar-away`)).status === 200, 'C to know @mesh/far-away')
  const before = await queryIndex(nodeC.dataDir, 'SELECT present FROM blobs') as Array<{ present: number }>
  t.true(before.length >= 1 && before.every(r => r.present === 0), JSON.stringify(before))

  const project = await writeProject(t)
  const installed = await consumer.run(['install', '@mesh/far-away@1.2.3'], { cwd: project })
  t.is(installed.code, 0, installed.stderr)
  const ran = await runNode(project, 'console.log(require("@mesh/far-away"))')
  t.is(ran.stdout.trim(), 'published on A')

  t.false(await connectedTo(nodeC, a.peerId), 'C never connected to A')
  const after = await queryIndex(nodeC.dataDir, 'SELECT present FROM blobs') as Array<{ present: number }>
  t.true(after.every(r => r.present === 1), 'C kept the tarball it streamed')
  const onB = await queryIndex(nodeB.dataDir, 'SELECT present FROM blobs') as Array<{ present: number }>
  t.true(onB.every(r => r.present === 1), 'B fetched it from A to serve C')
})
