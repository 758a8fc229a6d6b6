// A bundle's index is signed by the node that exported it (issue 17, item 8): a carrier who drops
// a manifest and rewrites the index to match, strips the signature, signs with its own key, or a
// non-member's export, is refused; a version 1 (unsigned) bundle gets a clear error; import says
// who exported it and when, and warns when the exporter held an origin further than the bundle
// brought this node. And export never overwrites an existing bundle or volume without --force
// (item 16). Imports go straight into data directories where no node runs.
import test from 'ava'
import * as dagCbor from '@ipld/dag-cbor'
import { privateKeyFromProtobuf } from '@libp2p/crypto/keys'
import { readdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { signEnvelope } from '../mesh/manifest.ts'
import { allSigned, bundleIndex, exportBundle, importBundle, inventory, readBundle, visible, writeBundle } from './helpers/bundle.ts'
import { identity, rawPublish } from './helpers/mesh.ts'
import { makeTempDir, startTestNode } from './helpers/node.ts'
import { deterministicBytes, MiB } from './helpers/streams.ts'

test.serial('a bundle index that was altered, unsigned, re-signed or signed by a non-member is refused; import names the exporter and warns of a partial cover', async t => {
  const [a, b, x] = [await identity(t), await identity(t), await identity(t)]
  const nodeA = await startTestNode(t, { dataDir: a.dataDir, peering: { allow: [b.peerId, x.peerId], node: { name: 'site-a-1' } } })
  await writeFile(join(b.dataDir, 'peering.json'), JSON.stringify({ allow: [a.peerId] }))
  await writeFile(join(x.dataDir, 'peering.json'), JSON.stringify({ allow: [a.peerId] }))
  const root = await makeTempDir(t)
  await rawPublish(nodeA, root, 'signed-pkg', '1.0.0')
  const put = await fetch(`${nodeA.url}/files/signed/file.bin`, { method: 'PUT', body: deterministicBytes(100_000, 'signed'), headers: { authorization: `Bearer ${nodeA.adminToken}` } })
  t.is(put.status, 201)
  await allSigned(nodeA)
  const good = join(root, 'good.car')
  t.is((await exportBundle(a.dataDir, good)).code, 0)
  const idx = await bundleIndex(good)
  t.is(idx.exporter, a.peerId)
  t.is(idx.exporterName, 'site-a-1')
  t.true(idx.watermarks[a.peerId] >= 3)
  const bundle = await readBundle(good)

  const refused = async (file: string, pattern: RegExp) => {
    const r = await importBundle(b.dataDir, file)
    t.not(r.code, 0, r.stdout)
    t.regex(r.stderr, /bundle rejected, nothing imported/)
    t.regex(r.stderr, pattern)
    t.deepEqual(await visible(b.dataDir), { artifacts: [], present: 0 })
    t.deepEqual(await readdir(join(b.dataDir, 'imports')).catch(() => []), [], 'nothing staged')
  }

  // A carrier holds the generic file back: its manifest and blob dropped, the index rewritten
  // to match, the exporter's signature kept.
  const held = bundle.blocks.find(blk => blk.blob != null)?.blob as string
  const fileManifest = idx.manifests.findIndex((_m, i) => bundle.blocks[i].manifest != null &&
    dagCbor.decode<any>(dagCbor.decode<{ payload: Uint8Array }>(bundle.blocks[i].bytes).payload).repo === 'files')
  t.true(fileManifest >= 0)
  const dropped = {
    ...bundle.index,
    manifests: bundle.index.manifests.filter((_m: unknown, i: number) => i !== fileManifest),
    blobs: bundle.index.blobs.filter((bl: { cid: string }) => bl.cid !== held)
  }
  const kept = bundle.blocks.filter((blk, i) => i !== fileManifest && blk.blob !== held)
  const payload = dagCbor.encode(dropped)
  const tampered = join(root, 'tampered.car')
  await writeBundle(tampered, dagCbor.encode({ payload, signature: bundle.signature }), kept)
  await refused(tampered, new RegExp(`the bundle index's signature does not verify against its exporter ${a.peerId}: the index was altered`))

  // ...re-signed with the carrier's own key, still naming A as the exporter; or as itself.
  const xKey = privateKeyFromProtobuf(await readFile(join(x.dataDir, 'identity.key')))
  const forged = join(root, 'forged.car')
  await writeBundle(forged, await signEnvelope(payload, xKey), kept)
  await refused(forged, /signature does not verify against its exporter/)
  await writeBundle(forged, await signEnvelope(dagCbor.encode({ ...dropped, exporter: x.peerId }), xKey), kept)
  await refused(forged, new RegExp(`exported by ${x.peerId}, which is not a member of this mesh`))

  // The signature stripped: the bare index as the root, and a version 1 bundle.
  const bare = join(root, 'bare.car')
  await writeBundle(bare, dagCbor.encode(bundle.index), bundle.blocks)
  await refused(bare, /the bundle index is not signed: refused/)
  await writeBundle(bare, dagCbor.encode({ ...bundle.index, v: 1 }), bundle.blocks)
  await refused(bare, /format version 1, whose index is unsigned.*export it again with this version/)

  // A real export by a non-member: X holds A's manifests (A is in X's allowlist), B lacks X.
  const taken = await importBundle(x.dataDir, good)
  t.is(taken.code, 0, taken.stderr)
  const fromX = join(root, 'from-x.car')
  t.is((await exportBundle(x.dataDir, fromX)).code, 0)
  await refused(fromX, new RegExp(`the bundle was exported by ${x.peerId}, which is not a member of this mesh`))

  // Only the npm repository: B then holds A only up to below what A held, and is told so.
  const npmOnly = join(root, 'npm-only.car')
  t.is((await exportBundle(a.dataDir, npmOnly, ['--repo', 'npm'])).code, 0)
  const partial = await importBundle(b.dataDir, npmOnly)
  t.is(partial.code, 0, partial.stderr)
  t.regex(partial.stdout, new RegExp(`^bundle \\w+, exported by site-a-1 \\(${a.peerId}\\) at \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z \\(signed\\)$`, 'm'))
  t.regex(partial.stderr, new RegExp(`warning: the bundle covers ${a.peerId} only up to seq \\d+, but its exporter held it up to seq ${idx.watermarks[a.peerId]}: ` +
    'this node holds it up to seq \\d+ \\(the export selected only repositories npm\\)'))
  // The whole bundle: no warning.
  const whole = await importBundle(b.dataDir, good)
  t.is(whole.code, 0, whole.stderr)
  t.notRegex(whole.stderr, /warning/)
  t.deepEqual((await inventory(b.dataDir)).manifests, (await inventory(a.dataDir)).manifests)
})

test.serial('export refuses to overwrite an existing bundle or volume unless --force; --force leaves no stale volume', async t => {
  const a = await identity(t)
  const nodeA = await startTestNode(t, { dataDir: a.dataDir })
  const put = await fetch(`${nodeA.url}/files/vol/file.bin`, { method: 'PUT', body: deterministicBytes(2 * MiB + 500, 'vol'), headers: { authorization: `Bearer ${nodeA.adminToken}` } })
  t.is(put.status, 201)
  await allSigned(nodeA)
  const root = await makeTempDir(t)

  const file = join(root, 'out.car')
  await writeFile(file, 'precious')
  const r = await exportBundle(a.dataDir, file)
  t.not(r.code, 0)
  t.regex(r.stderr, new RegExp(`${file} already exists: pass --force to overwrite it`))
  t.is(await readFile(file, 'utf8'), 'precious')
  const forced = await exportBundle(a.dataDir, file, ['--force'])
  t.is(forced.code, 0, forced.stderr)
  t.is((await bundleIndex(file)).exporter, a.peerId)

  // Volumes: an existing one is refused, naming it; forced, the old extra volume is gone, so
  // the new volumes alone are the bundle.
  const base = join(root, 'vol.car')
  await writeFile(`${base}.004`, 'old volume')
  const v = await exportBundle(a.dataDir, base, ['--volume-size', '1MB'])
  t.not(v.code, 0)
  t.regex(v.stderr, new RegExp(`${base}\\.004 already exists: pass --force`))
  t.is(await readFile(`${base}.004`, 'utf8'), 'old volume')
  t.deepEqual((await readdir(root)).filter(n => n.startsWith('vol.car')), ['vol.car.004'])
  const vf = await exportBundle(a.dataDir, base, ['--volume-size', '1MB', '--force'])
  t.is(vf.code, 0, vf.stderr)
  t.deepEqual((await readdir(root)).filter(n => n.startsWith('vol.car')).sort(), ['vol.car.001', 'vol.car.002', 'vol.car.003'])
  t.true((await stat(`${base}.003`)).size > 0)
  const b = await identity(t)
  await writeFile(join(b.dataDir, 'peering.json'), JSON.stringify({ allow: [a.peerId] }))
  const imported = await importBundle(b.dataDir, `${base}.001`)
  t.is(imported.code, 0, imported.stderr)
  t.deepEqual((await visible(b.dataDir)).artifacts, ['files vol/file.bin@'])
})
