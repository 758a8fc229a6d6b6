// The trust rule of mesh transfers (mesh/README.md, "Verify once at the origin"): a replica
// checks every chunk against the origin-signed chunk table and the whole blob against its BLAKE3
// CID, and records the SHA digests the origin signed without recomputing them. A member that
// signs a wrong digest is caught by the real client: here the origin's own key re-signs its
// manifest of a generic file with the sha256 of other bytes, B receives only that manifest, pulls
// the bytes from A over TCP, serves exactly the bytes it got under the signed sha256, curl plus
// sha256sum (the client's own check of the checksum it was given) refuses them, and B names the
// origin whose manifest the digest came from.
import test from 'ava'
import * as dagCbor from '@ipld/dag-cbor'
import { privateKeyFromProtobuf } from '@libp2p/crypto/keys'
import { execFile } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { signManifest, type Manifest } from '../mesh/manifest.ts'
import { allSigned } from './helpers/bundle.ts'
import { adminGet, connectedTo, identity, queryIndex } from './helpers/mesh.ts'
import { makeTempDir, startTestNode, waitFor } from './helpers/node.ts'
import { importEnvelopes } from './helpers/signed-manifests.ts'

const run = promisify(execFile)

test.serial('a replica that received a manifest whose signed sha256 is wrong serves the bytes it got, the client refuses them, the origin is named', async t => {
  const [a, b] = [await identity(t), await identity(t)]
  // Not connected yet: B must learn the file from the forged manifest only.
  const nodeA = await startTestNode(t, { dataDir: a.dataDir, peering: { allow: [b.peerId] } })
  const nodeB = await startTestNode(t, { dataDir: b.dataDir, peering: { allow: [a.peerId] } })

  // Three chunks and a bit: the transfer goes chunk by chunk, each verified with BLAKE3.
  const bytes = randomBytes(3 * 1024 * 1024 + 4321)
  const put = await fetch(`${nodeA.url}/files/lies/f.bin`, { method: 'PUT', body: bytes, headers: { authorization: `Bearer ${nodeA.adminToken}` } })
  t.is(put.status, 201, await put.text())
  await allSigned(nodeA)

  // The origin (a member) re-signs its manifest, same seq, with the sha256 of other bytes.
  const [row] = await queryIndex(a.dataDir, `SELECT seq, hex(envelope) AS envelope FROM manifests WHERE origin = '${a.peerId}' AND repo = 'files' AND name = 'lies/f.bin'`)
  t.truthy(row, 'A holds its own manifest of the file')
  const m = dagCbor.decode<Manifest>(dagCbor.decode<{ payload: Uint8Array }>(Buffer.from(row.envelope, 'hex')).payload)
  const trueSha256 = createHash('sha256').update(bytes).digest('hex')
  t.is(m.files[0].sha256, trueSha256)
  const wrongSha256 = createHash('sha256').update('not the file').digest('hex')
  m.files[0].sha256 = wrongSha256
  const aKey = privateKeyFromProtobuf(await readFile(join(a.dataDir, 'identity.key')))
  t.deepEqual(await importEnvelopes(nodeB, [await signManifest(m, aKey)]), ['new'])

  // Now B meets A, and pulls the bytes from it over the mesh.
  await writeFile(nodeB.peeringFile, JSON.stringify({ listen: ['/ip4/127.0.0.1/tcp/0'], allow: [a.peerId], bootstrap: [nodeA.meshAddr] }))
  await waitFor(async () => await connectedTo(nodeB, a.peerId), 'B to connect to A')

  // The real client: curl downloads from B and checks the bytes against the sha256 the registry
  // states for them (its X-Checksum-Sha256), as a deployment script does with sha256sum.
  const dir = await makeTempDir(t)
  const file = join(dir, 'f.bin')
  const headers = join(dir, 'headers')
  await run('curl', ['-sS', '-f', '--max-time', '60', '-D', headers, '-o', file, `${nodeB.url}/files/lies/f.bin`])
  t.true((await readFile(file)).equals(bytes), 'B serves exactly the bytes the origin published')
  const stated = /^x-checksum-sha256: *([0-9a-f]{64})/im.exec(await readFile(headers, 'utf8'))?.[1]
  t.is(stated, wrongSha256, 'B states the sha256 the origin signed, not one it recomputed')
  await writeFile(join(dir, 'SHA256SUMS'), `${stated}  f.bin\n`)
  const check = await run('sha256sum', ['-c', 'SHA256SUMS'], { cwd: dir }).then(() => 0, (err: { code: number }) => err.code)
  t.not(check, 0, 'the client refuses the bytes')

  // B kept the blob (it did not recompute the sha256 and throw the bytes away), and names the
  // manifest (origin and seq) the digest came from.
  const cid = m.files[0].cid
  type Transfers = { transfers: Array<{ cid: string, status: string, error?: string, digestsSignedBy?: string }> }
  const record = await waitFor(async () => (await adminGet<Transfers>(nodeB, '/-/mesh/transfers')).transfers.find(x => x.cid === cid && x.status !== 'running'), 'the transfer to end') as Transfers['transfers'][number]
  t.is(record.status, 'done', record.error)
  t.is(record.digestsSignedBy, `${a.peerId}/${row.seq as number}`)
  const again = Buffer.from(await (await fetch(`${nodeB.url}/files/lies/f.bin`)).arrayBuffer())
  t.true(again.equals(bytes), 'served from B\'s store now')
  t.true(nodeB.output().split('\n').some(l => l.includes('"msg":"blob fetched from the mesh"') && l.includes(`"digestsSignedBy":"${a.peerId}/${row.seq as number}"`)))
})
