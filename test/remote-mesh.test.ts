// A file one node of the mesh cached from its upstream is an ordinary artifact row, so it
// replicates: another node with the same remote repository serves it from its peer's bytes,
// without going upstream (here: with the upstream stopped).
import test from 'ava'
import { createHash } from 'node:crypto'
import { connectedTo, identity, queryIndex } from './helpers/mesh.ts'
import { startTestNode, waitFor } from './helpers/node.ts'
import { startNginx } from './helpers/nginx.ts'
import { deterministicBytes } from './helpers/streams.ts'

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')

test('a file node A cached from upstream is served by node B from A, with the upstream down', async t => {
  const nginx = await startNginx(t)
  const body = deterministicBytes(3 * 1024 * 1024 + 17, 'mesh-cached')
  await nginx.put('tools/cli-2.1.tar.gz', body)
  const config = `repositories:\n  - { name: vendor, format: generic, type: remote, upstream: "${nginx.url}/" }\n`
  const a = await identity(t)
  const b = await identity(t)
  const nodeA = await startTestNode(t, { dataDir: a.dataDir, config, peering: { allow: [b.peerId] } })
  const nodeB = await startTestNode(t, { dataDir: b.dataDir, config, peering: { allow: [a.peerId], bootstrap: [nodeA.meshAddr] } })
  await waitFor(async () => await connectedTo(nodeB, a.peerId) && await connectedTo(nodeA, b.peerId), 'A and B connected')

  const viaA = await fetch(`${nodeA.url}/vendor/tools/cli-2.1.tar.gz`)
  t.is(viaA.status, 200)
  t.is(sha256(new Uint8Array(await viaA.arrayBuffer())), sha256(body))
  await waitFor(async () => (await queryIndex(nodeB.dataDir, "SELECT name FROM artifacts WHERE repo = 'vendor'")).length === 1, 'B to learn the cached file')

  await nginx.stop()
  const viaB = await fetch(`${nodeB.url}/vendor/tools/cli-2.1.tar.gz`)
  t.is(viaB.status, 200)
  t.is(sha256(new Uint8Array(await viaB.arrayBuffer())), sha256(body))
  t.is(await nginx.count('GET', '/tools/cli-2.1.tar.gz'), 1, 'only A went upstream')
})
