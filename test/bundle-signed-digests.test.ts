// The trust rule of bundle import (mesh/README.md, "Verify once at the origin"): an import checks
// BLAKE3 (every chunk, the blob, the chunk root) and records the SHA digests the origin signed
// without recomputing them. A member that signs a wrong digest is caught by the real client:
// here the origin's own key re-signs its npm manifest with a wrong sha512 (and the integrity
// that goes with it); the import takes it (the bytes match their CID), the node serves exactly
// the bytes it got, npm refuses them, and the import names the origin that signed the lie.
import test from 'ava'
import * as dagCbor from '@ipld/dag-cbor'
import { privateKeyFromProtobuf } from '@libp2p/crypto/keys'
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { signEnvelope, signManifest, type Manifest } from '../mesh/manifest.ts'
import { blake3Cid } from '../node/bundle/format.ts'
import { allSigned, exportBundle, importBundle, readBundle, writeBundle } from './helpers/bundle.ts'
import { identity, rawPublish } from './helpers/mesh.ts'
import { npmClient, writeProject } from './helpers/npm-client.ts'
import { makeTempDir, startTestNode } from './helpers/node.ts'

test.serial('an imported manifest whose signed sha512 is wrong: the bytes are served as received, npm refuses them, the origin is named', async t => {
  const [a, b] = [await identity(t), await identity(t)]
  const nodeA = await startTestNode(t, { dataDir: a.dataDir, peering: { allow: [b.peerId] } })
  const nodeB = await startTestNode(t, { dataDir: b.dataDir, peering: { allow: [a.peerId] } })
  const root = await makeTempDir(t)
  const tgz = await rawPublish(nodeA, root, 'lying-lib', '1.0.0')
  await allSigned(nodeA)
  const good = join(root, 'good.car')
  t.is((await exportBundle(a.dataDir, good)).code, 0)

  // The origin (a member) re-signs its manifest with the sha512 of other bytes.
  const aKey = privateKeyFromProtobuf(await readFile(join(a.dataDir, 'identity.key')))
  const bundle = await readBundle(good)
  const i = bundle.blocks.findIndex(blk => blk.manifest != null &&
    dagCbor.decode<any>(dagCbor.decode<{ payload: Uint8Array }>(blk.bytes).payload).name === 'lying-lib')
  t.true(i >= 0)
  const m = dagCbor.decode<Manifest>(dagCbor.decode<{ payload: Uint8Array }>(bundle.blocks[i].bytes).payload)
  const wrong = createHash('sha512').update('not the tarball').digest()
  const trueSha512 = m.files[0].sha512
  t.is(trueSha512, createHash('sha512').update(tgz).digest('hex'))
  m.files[0].sha512 = wrong.toString('hex')
  const dist = (m.metadata as { dist: { integrity: string } }).dist
  dist.integrity = `sha512-${wrong.toString('base64')}`
  const envelope = await signManifest(m, aKey)
  const cid = await blake3Cid(dagCbor.code, envelope)
  const index = { ...bundle.index, manifests: bundle.index.manifests.map((e: any, j: number) => j === i ? { ...e, cid } : e) }
  const blocks = bundle.blocks.map((blk, j) => j === i ? { ...blk, cid, bytes: envelope } : blk)
  const forged = join(root, 'forged.car')
  await writeBundle(forged, await signEnvelope(dagCbor.encode(index), aKey), blocks)

  // Imported: every BLAKE3 check passes; the report names the origin of the manifest.
  const imported = await importBundle(b.dataDir, forged, { node: nodeB })
  t.is(imported.code, 0, imported.stderr)
  t.regex(imported.stdout, new RegExp(`^added +${a.peerId}/\\d+ publish npm lying-lib@1\\.0\\.0$`, 'm'))

  // The node serves the bytes it received, under the integrity the origin signed.
  const auth = { authorization: `Bearer ${nodeB.adminToken}` }
  const doc = await (await fetch(`${nodeB.url}/npm/lying-lib`, { headers: auth })).json() as { versions: Record<string, { dist: { tarball: string, integrity: string } }> }
  const served = doc.versions['1.0.0'].dist
  t.is(served.integrity, dist.integrity)
  const body = Buffer.from(await (await fetch(served.tarball, { headers: auth })).arrayBuffer())
  t.true(body.equals(tgz), 'the tarball bytes are the ones the origin published')

  // npm checks the bytes against the signed integrity, and refuses them.
  const npm = await npmClient(t, nodeB)
  if (npm == null) return
  const project = await writeProject(t)
  const install = await npm.run(['install', 'lying-lib@1.0.0'], { cwd: project })
  t.not(install.code, 0, install.stdout)
  t.regex(install.stderr, /EINTEGRITY|integrity checksum failed/)
})
