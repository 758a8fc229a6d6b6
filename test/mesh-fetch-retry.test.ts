// A blob whose only holder is offline: the client's 503 comes within the peering file's
// blobWaitMs (not after a relay's 20 s search) and says why; the failed fetch is logged with its
// cause; when the holder comes back the fetch is retried: a mirrored blob arrives by itself, a
// later request for an on-demand one succeeds. Three node processes:
//   A holds the blobs;  C learned the manifests from A (and relays, holding nothing);
//   B joins after A stopped and catches the manifests up from C.
import { randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import test from 'ava'
import { connectedTo, hasVersion, identity, queryIndex, rawPublish } from './helpers/mesh.ts'
import { makeTempDir, startTestNode, waitFor, type TestNode } from './helpers/node.ts'

const WAIT_MS = 2000

const logLines = (node: TestNode, msg: string): any[] =>
  node.output().split('\n').filter(l => l.startsWith('{')).map(l => JSON.parse(l)).filter(l => l.msg === msg)

async function hasFile (node: TestNode, path: string): Promise<boolean> {
  return (await queryIndex(node.dataDir, `SELECT 1 FROM artifacts WHERE repo = 'files' AND name = '${path}'`)).length > 0
}

test('a blob whose holder is offline: 503 within blobWaitMs, logged; retried when the holder is back', async t => {
  const [a, b, c] = await Promise.all([identity(t), identity(t), identity(t)])
  const nodeA = await startTestNode(t, { dataDir: a.dataDir, peering: { allow: [b.peerId, c.peerId] } })
  const nodeC = await startTestNode(t, { dataDir: c.dataDir, peering: { allow: [a.peerId, b.peerId], bootstrap: [nodeA.meshAddr] } })
  await waitFor(async () => await connectedTo(nodeC, a.peerId), 'C connected to A')

  const bytes = randomBytes(3 * 1024 * 1024 + 5)
  const put = await fetch(`${nodeA.url}/files/dir/f.bin`, { method: 'PUT', headers: { authorization: `Bearer ${nodeA.adminToken}` }, body: bytes })
  t.is(put.status, 201)
  await rawPublish(nodeA, await makeTempDir(t), 'mirrored', '1.0.0')
  await waitFor(async () => await hasFile(nodeC, 'dir/f.bin') && await hasVersion(nodeC, 'mirrored', '1.0.0'), 'C to learn both manifests')
  const [{ cid: tarball }] = await queryIndex(nodeA.dataDir, "SELECT f.cid FROM artifacts a JOIN files f ON f.artifact_id = a.id WHERE a.repo = 'npm'")
  await nodeA.stop()

  const nodeB = await startTestNode(t, {
    dataDir: b.dataDir,
    peering: { allow: [a.peerId, c.peerId], bootstrap: [nodeC.meshAddr], replication: { npm: 'mirror', '*': 'on-demand' }, blobWaitMs: WAIT_MS }
  })
  await waitFor(async () => await hasFile(nodeB, 'dir/f.bin') && await hasVersion(nodeB, 'mirrored', '1.0.0'), 'B to catch up from C')

  const started = Date.now()
  const res = await fetch(`${nodeB.url}/files/dir/f.bin`)
  const ms = Date.now() - started
  const body = await res.text()
  t.is(res.status, 503, body)
  t.is(res.headers.get('retry-after'), '30')
  t.regex(body, /no reachable peer offered it within 2000 ms/)
  t.regex(body, /Retry after 30 s/)
  t.log(`503 after ${ms} ms (blobWaitMs ${WAIT_MS})`)
  // Bounded by the setting, well below the 20 s a relay's search took (slack for a loaded machine).
  t.true(ms < WAIT_MS + 8000, `${ms} ms`)
  // The background fetches end (the relay's search, the mirror) and say why.
  const failed = await waitFor(() => logLines(nodeB, 'blob fetch failed').find(l => typeof l.error === 'string' && l.error !== ''), 'B to log the failed fetch', 60_000)
  t.regex(failed.error, /no reachable peer|no source|retry later/)

  // A comes back and dials B: B retries without being asked (the mirrored tarball arrives) and
  // the next request for the on-demand file succeeds.
  const peering = JSON.parse(await readFile(nodeA.peeringFile, 'utf8'))
  await writeFile(nodeA.peeringFile, JSON.stringify({ ...peering, bootstrap: [nodeB.meshAddr] }))
  await nodeA.restart()
  await waitFor(async () => (await queryIndex(nodeB.dataDir, `SELECT 1 FROM blobs WHERE cid = '${tarball as string}' AND present = 1`)).length > 0,
    'B to mirror the tarball once A is back', 60_000)
  t.true(logLines(nodeB, 'a peer connected: retrying failed fetches').length > 0)
  const again = await fetch(`${nodeB.url}/files/dir/f.bin`)
  t.is(again.status, 200)
  t.true(Buffer.from(await again.arrayBuffer()).equals(bytes))
})
