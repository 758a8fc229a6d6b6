// Bundles and partial trust (issue 10): a bundle holding manifests of an origin the importer does
// not accept imports the rest and lists each refused manifest with its origin and reason; their
// blobs are not stored; `--strict` refuses the bundle whole; damage (a bad signature) still fails
// it whole. An origin whose certificate grants only team-a cannot change team-b through a bundle,
// and incremental bundles continue past its refused manifests until the importer trusts them,
// when the bundle that carried them must be (and can be) imported again. `export --origin`
// selects by origin. Imports go straight into data directories where no node runs, or through a
// running node (--url, POST /-/mesh/import).
import test from 'ava'
import * as dagCbor from '@ipld/dag-cbor'
import { generateKeyPair, privateKeyFromProtobuf } from '@libp2p/crypto/keys'
import { readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { issueCertificate, rootOf } from '../mesh/certificates.ts'
import { signEnvelope } from '../mesh/manifest.ts'
import { OWN_CERTIFICATE_FILE } from '../mesh/membership.ts'
import { blake3Cid } from '../node/bundle/format.ts'
import { encodeFrames } from '../node/bundle/frames.ts'
import { REFUSALS_FILE } from '../node/bundle/refusals.ts'
import { allSigned, bundleIndex, exportBundle, importBundle, readBundle, visible, writeBundle } from './helpers/bundle.ts'
import { adminGet, identity, queryIndex, rawPublish } from './helpers/mesh.ts'
import { makeTempDir, startTestNode, waitFor } from './helpers/node.ts'
import { deterministicBytes } from './helpers/streams.ts'

async function putFile (node: { url: string, adminToken: string }, path: string, body: Buffer): Promise<void> {
  const res = await fetch(`${node.url}/${path}`, { method: 'PUT', body, headers: { authorization: `Bearer ${node.adminToken}` } })
  if (res.status !== 201) throw new Error(`PUT ${path}: ${res.status} ${await res.text()}`)
}

const peeringOf = (p: Record<string, unknown>): string => JSON.stringify({ listen: ['/ip4/127.0.0.1/tcp/0'], ...p })
const staged = async (dataDir: string): Promise<string[]> => await readdir(join(dataDir, 'imports')).catch(() => [])
const watermark = async (dataDir: string, origin: string): Promise<number> =>
  ((await queryIndex(dataDir, `SELECT seq FROM manifest_origins WHERE origin = '${origin}'`))[0]?.seq as number | undefined) ?? 0
const refusalRecord = async (dataDir: string): Promise<Record<string, unknown>> =>
  JSON.parse(await readFile(join(dataDir, REFUSALS_FILE), 'utf8').catch(() => '{}'))

test.serial('a bundle with manifests from one unknown origin imports everything else and lists the refused ones; trusted later, the same bundle applies them', async t => {
  const [a, u, b] = [await identity(t), await identity(t), await identity(t)]
  const root = await makeTempDir(t)
  const shared = deterministicBytes(150_000, 'shared')

  // U: an origin A accepts and B does not. Its manifests reach A by a bundle.
  const nodeU = await startTestNode(t, { dataDir: u.dataDir, peering: { allow: [a.peerId] } })
  await rawPublish(nodeU, root, 'from-u', '1.0.0')
  await putFile(nodeU, 'files/u/shared.bin', shared)
  await putFile(nodeU, 'files/u/only.bin', deterministicBytes(120_000, 'only-u'))
  await allSigned(nodeU)
  const uCar = join(root, 'u.car')
  t.is((await exportBundle(u.dataDir, uCar)).code, 0)
  await nodeU.stop()
  await writeFile(join(a.dataDir, 'peering.json'), peeringOf({ allow: [u.peerId, b.peerId] }))
  const intoA = await importBundle(a.dataDir, uCar)
  t.is(intoA.code, 0, intoA.stderr)

  const nodeA = await startTestNode(t, { dataDir: a.dataDir })
  await rawPublish(nodeA, root, 'from-a', '1.0.0')
  await putFile(nodeA, 'files/a/shared.bin', shared) // the same bytes as U's: one blob
  await putFile(nodeA, 'files/a/own.bin', deterministicBytes(90_000, 'own-a'))
  await allSigned(nodeA)
  const aCar = join(root, 'a.car')
  t.is((await exportBundle(a.dataDir, aCar)).code, 0)
  await nodeA.stop()
  const idx = await bundleIndex(aCar)
  const fromU = idx.manifests.filter(m => m.origin === u.peerId)
  const fromA = idx.manifests.filter(m => m.origin === a.peerId)
  t.true(fromU.length >= 3 && fromA.length >= 3)
  t.is(idx.blobs.length, 5) // two tarballs, shared, only, own

  // B accepts A, not U.
  await writeFile(join(b.dataDir, 'peering.json'), peeringOf({ allow: [a.peerId] }))
  const nothing = { artifacts: [], present: 0 }

  // --strict: refused whole, naming U's manifests; nothing applied or staged.
  const strict = await importBundle(b.dataDir, aCar, { args: ['--strict'] })
  t.is(strict.code, 2, strict.stdout)
  t.regex(strict.stderr, new RegExp(`bundle refused \\(--strict\\), nothing imported: ${fromU.length} manifest\\(s\\) from 1 origin\\(s\\) this node does not accept`))
  t.regex(strict.stderr, new RegExp(`manifest ${u.peerId}/\\d+ \\(block \\w+\\) rejected \\(not-allowed\\): origin ${u.peerId} is not a member of this mesh`))
  t.deepEqual(await visible(b.dataDir), nothing)
  t.deepEqual(await staged(b.dataDir), [])

  // Damage is not a refusal: U's manifest with a broken signature (the index re-signed by A to
  // match) fails the whole bundle, though B would only have refused U's manifests.
  const blocks = await readBundle(aCar)
  const victim = blocks.blocks.findIndex(blk => blk.manifest?.origin === u.peerId)
  const env = dagCbor.decode<{ payload: Uint8Array, signature: Uint8Array }>(blocks.blocks[victim].bytes)
  const signature = Uint8Array.from(env.signature)
  signature[0] ^= 1
  const broken = dagCbor.encode({ payload: env.payload, signature })
  const brokenCid = await blake3Cid(dagCbor.code, broken)
  const index = { ...blocks.index, manifests: blocks.index.manifests.map((m: any, i: number) => i === victim ? { ...m, cid: brokenCid } : m) }
  const aKey = privateKeyFromProtobuf(await readFile(join(a.dataDir, 'identity.key')))
  const damaged = join(root, 'damaged.car')
  await writeBundle(damaged, await signEnvelope(dagCbor.encode(index), aKey), blocks.blocks.map((blk, i) => i === victim ? { cid: brokenCid, bytes: broken } : blk))
  const bad = await importBundle(b.dataDir, damaged)
  t.is(bad.code, 2)
  t.regex(bad.stderr, new RegExp(`bundle rejected, nothing imported: manifest ${u.peerId}/\\d+ \\(block \\w+\\) rejected \\(bad-signature\\)`))
  t.deepEqual(await visible(b.dataDir), nothing)

  // Partial: A's manifests applied, U's listed with origin and reason; U's own blobs not stored,
  // the blob it shares with A stored; exit code 0 with a summary line.
  const partial = await importBundle(b.dataDir, aCar)
  t.is(partial.code, 0, partial.stderr)
  t.regex(partial.stdout, new RegExp(`imported ${fromA.length} manifests, refused ${fromU.length} from 1 origin: ${u.peerId} ${fromU.length} \\(not-allowed\\)`))
  t.regex(partial.stdout, new RegExp(`refused +${u.peerId}/\\d+ publish npm from-u@1\\.0\\.0: not-allowed: origin ${u.peerId} is not a member of this mesh`))
  t.regex(partial.stdout, new RegExp(`refused +${u.peerId}/\\d+ publish files u/only\\.bin: not-allowed`))
  t.regex(partial.stdout, /blobs: 3 added \(\d+ bytes\), 0 skipped, 2 left out \(named only by refused manifests\)/)
  t.notRegex(partial.stderr, /warning/, 'no coverage warning for the refused origin')
  t.deepEqual(await visible(b.dataDir), { artifacts: ['files a/own.bin@', 'files a/shared.bin@', 'npm from-a@1.0.0'], present: 3 })
  t.deepEqual(await queryIndex(b.dataDir, `SELECT cid FROM blobs WHERE cid NOT IN (SELECT cid FROM blobs WHERE present = 1)`), [], 'no trace of U\'s blobs')
  t.is((await queryIndex(b.dataDir, `SELECT COUNT(*) AS n FROM manifests WHERE origin = '${u.peerId}'`))[0].n, 0, 'refused manifests are not stored')
  t.is(await watermark(b.dataDir, u.peerId), 0)
  t.deepEqual(await staged(b.dataDir), [])

  // Again, as JSON: A's are held now, U's refused again with every field.
  const json = await importBundle(b.dataDir, aCar, { args: ['--json'] })
  t.is(json.code, 0, json.stderr)
  const report = JSON.parse(json.stdout)
  t.true(report.manifests.every((m: any) => m.outcome === 'skipped'))
  t.is(report.refused.length, fromU.length)
  t.like(report.refused.find((r: any) => r.name === 'from-u'), { origin: u.peerId, repo: 'npm', version: '1.0.0', kind: 'publish', reason: 'not-allowed' })
  t.true(report.refused.every((r: any) => r.origin === u.peerId && Number.isSafeInteger(r.seq) && /not a member/.test(r.message)))
  t.is(report.blobs.withheld, 2)

  // Through the running node: POST /-/mesh/import lists the refused ones as JSON (and counts
  // them in the rejection report); with strict=1 it refuses everything (403).
  const nodeB = await startTestNode(t, { dataDir: b.dataDir })
  const envelopes = blocks.blocks.filter(blk => blk.manifest != null).map(blk => blk.bytes)
  const post = async (query: string) => await fetch(`${nodeB.url}/-/mesh/import${query}`, {
    method: 'POST', body: encodeFrames(envelopes), headers: { authorization: `Bearer ${nodeB.adminToken}`, 'content-type': 'application/octet-stream' }
  })
  const strictly = await post('?strict=1')
  t.is(strictly.status, 403)
  const refusedBody = await strictly.json() as { error: string, refused: unknown[] }
  t.regex(refusedBody.error, /this node does not accept, and strict: .*rejected \(not-allowed\).*nothing was applied/)
  t.is(refusedBody.refused.length, fromU.length)
  const res = await post('')
  t.is(res.status, 200)
  const body = await res.json() as { outcomes: string[], refused: any[] }
  t.deepEqual(body.outcomes, blocks.blocks.filter(blk => blk.manifest != null).map(blk => blk.manifest?.origin === u.peerId ? 'refused' : 'held'))
  t.like(body.refused.find(r => r.name === 'u/only.bin'), { origin: u.peerId, repo: 'files', version: '', reason: 'not-allowed' })
  t.true(body.refused.every(r => Number.isSafeInteger(r.index) && Number.isSafeInteger(r.seq) && typeof r.message === 'string'))
  const rejections = (await adminGet(nodeB, '/-/mesh/status')).rejections
  t.truthy(rejections.find((r: any) => r.origin === u.peerId && r.reason === 'not-allowed' && r.via === 'bundle'))
  const viaNode = await importBundle(b.dataDir, aCar, { node: nodeB })
  t.is(viaNode.code, 0, viaNode.stderr)
  t.regex(viaNode.stdout, new RegExp(`imported ${fromA.length} manifests, refused ${fromU.length} from 1 origin`))
  t.is((await (await fetch(`${nodeB.url}/npm/from-u`, { headers: { authorization: `Bearer ${nodeB.adminToken}` } })).status), 404)
  await nodeB.stop()

  // B trusts U now: the same bundle applies U's manifests and stores their blobs.
  await writeFile(join(b.dataDir, 'peering.json'), peeringOf({ allow: [a.peerId, u.peerId] }))
  const trusted = await importBundle(b.dataDir, aCar)
  t.is(trusted.code, 0, trusted.stderr)
  t.notRegex(trusted.stdout, /refused/)
  t.regex(trusted.stdout, new RegExp(`${fromU.length} added, ${fromA.length} skipped, 0 not applied; blobs: 2 added`))
  t.deepEqual(await visible(b.dataDir), {
    artifacts: ['files a/own.bin@', 'files a/shared.bin@', 'files u/only.bin@', 'files u/shared.bin@', 'npm from-a@1.0.0', 'npm from-u@1.0.0'], present: 5
  })
  t.is(await watermark(b.dataDir, u.peerId), Math.max(...fromU.map(m => m.seq)))
  t.deepEqual(await refusalRecord(b.dataDir), {}, 'the refusal record forgets what is now held')

  // export --origin: only U's manifests and the blobs they name, recorded in the index.
  const onlyU = join(root, 'only-u.car')
  const e = await exportBundle(a.dataDir, onlyU, ['--origin', u.peerId, '--to', 'x'])
  t.is(e.code, 0, e.stderr)
  const ui = await bundleIndex(onlyU)
  t.deepEqual(ui.manifests, fromU)
  t.like(ui.selection, { mode: 'origins', origins: [u.peerId], destination: 'x' })
  t.deepEqual(Object.keys(ui.watermarks), [u.peerId])
  t.is(ui.blobs.length, 3)
  const both = await exportBundle(a.dataDir, join(root, 'both.car'), ['--origin', `${u.peerId},${a.peerId}`])
  t.is(both.code, 0, both.stderr)
  t.is((await bundleIndex(join(root, 'both.car'))).manifests.length, idx.manifests.length)
  // Incremental with the same selection: nothing new; another selection is refused.
  const next = await exportBundle(a.dataDir, join(root, 'next.car'), ['--origin', u.peerId, '--to', 'x', '--since-last'])
  t.is(next.code, 0, next.stderr)
  t.deepEqual((await bundleIndex(join(root, 'next.car'))).manifests, [])
  const other = await exportBundle(a.dataDir, join(root, 'other.car'), ['--to', 'x', '--since-last'])
  t.is(other.code, 2)
  t.regex(other.stderr, /selected origins .* this one \(all\)/)
  const typo = await exportBundle(a.dataDir, join(root, 'typo.car'), ['--origin', b.peerId])
  t.is(typo.code, 2)
  t.regex(typo.stderr, /holds no manifest of that origin/)
})

const TEAMS = `repositories:
  - name: team-a
    format: generic
  - name: team-b
    format: generic
`

test.serial('an origin whose certificate grants only team-a cannot change team-b through a bundle; incremental bundles continue past the refusal until it is trusted', async t => {
  const rootKey = await generateKeyPair('Ed25519')
  const meshRoot = rootOf(rootKey)
  const [o, b] = [await identity(t), await identity(t)]
  const DAY = 86_400_000
  await writeFile(join(o.dataDir, OWN_CERTIFICATE_FILE), await issueCertificate(rootKey, { mesh: 'default', peer: o.peerId, site: 'o', publish: ['team-a'], validForMs: DAY }))
  await writeFile(join(b.dataDir, 'peering.json'), peeringOf({ meshRoot }))
  const root = await makeTempDir(t)
  const config = join(root, 'b.yaml')
  await writeFile(config, TEAMS)
  const intoB = async (file: string) => await importBundle(b.dataDir, file, { args: ['--config', config] })

  const nodeO = await startTestNode(t, { dataDir: o.dataDir, config: TEAMS, peering: { meshRoot } })
  await putFile(nodeO, 'team-a/x/1.bin', deterministicBytes(1000, 'x1'))
  await allSigned(nodeO)
  await putFile(nodeO, 'team-b/y/1.bin', deterministicBytes(1000, 'y1'))
  await putFile(nodeO, 'team-a/x/2.bin', deterministicBytes(1000, 'x2'))
  const seqs = async () => (await queryIndex(o.dataDir, `SELECT seq, repo FROM manifests WHERE origin = '${o.peerId}' ORDER BY seq`)) as Array<{ seq: number, repo: string }>
  await waitFor(async () => (await seqs()).length === 3, 'O to sign its three changes')
  const first = join(root, 'o1.car')
  t.is((await exportBundle(o.dataDir, first, ['--to', 'b'])).code, 0)

  // The first one through B's running node, which knows no certificate yet: the CLI hands it the
  // bundle's (else it would refuse all of O's manifests as not-allowed).
  const nodeB = await startTestNode(t, { dataDir: b.dataDir, config: TEAMS })
  const r1 = await importBundle(b.dataDir, first, { node: nodeB, args: ['--config', config] })
  await nodeB.stop()
  t.is(r1.code, 0, r1.stderr)
  t.regex(r1.stdout, new RegExp(`refused +${o.peerId}/\\d+ publish team-b y/1\\.bin: outside-grants: origin ${o.peerId} \\(site o\\) may change team-a, not repository team-b`))
  t.regex(r1.stdout, new RegExp(`imported 2 manifests, refused 1 from 1 origin: ${o.peerId} 1 \\(outside-grants\\)`))
  t.notRegex(r1.stderr, /warning/)
  t.deepEqual((await visible(b.dataDir)).artifacts, ['team-a x/1.bin@', 'team-a x/2.bin@'])
  const [s1] = await seqs()
  t.is(await watermark(b.dataDir, o.peerId), s1.seq, 'the refused manifest leaves a hole: the watermark stops before it')

  // The next incremental bundle continues after the refused manifest: accepted, no warning.
  await putFile(nodeO, 'team-a/x/3.bin', deterministicBytes(1000, 'x3'))
  await waitFor(async () => (await seqs()).length === 4, 'O to sign x/3')
  const second = join(root, 'o2.car')
  t.is((await exportBundle(o.dataDir, second, ['--to', 'b', '--since-last'])).code, 0)
  t.true(Object.values((await bundleIndex(second)).base).some(s => s > s1.seq))
  const r2 = await intoB(second)
  t.is(r2.code, 0, r2.stderr)
  t.notRegex(r2.stderr, /warning/)
  t.notRegex(r2.stdout, /refused/)
  t.deepEqual((await visible(b.dataDir)).artifacts, ['team-a x/1.bin@', 'team-a x/2.bin@', 'team-a x/3.bin@'])

  // The mesh grants O team-b too (a new certificate, carried by the next bundle). B now accepts
  // the manifest it refused, which it does not hold: the next bundle says so, naming the bundle
  // that carried it; imported again, that bundle applies it; then the next one goes in.
  await writeFile(join(o.dataDir, OWN_CERTIFICATE_FILE), await issueCertificate(rootKey, { mesh: 'default', peer: o.peerId, site: 'o', publish: ['team-a', 'team-b'], validForMs: 2 * DAY }))
  await putFile(nodeO, 'team-a/x/4.bin', deterministicBytes(1000, 'x4'))
  await waitFor(async () => (await seqs()).length === 5, 'O to sign x/4')
  const third = join(root, 'o3.car')
  t.is((await exportBundle(o.dataDir, third, ['--to', 'b', '--since-last'])).code, 0)
  const r3 = await intoB(third)
  t.is(r3.code, 2, r3.stdout)
  t.regex(r3.stderr, new RegExp(`refused manifests of ${o.peerId} in bundle ${(await readBundleRoot(first))} and would now accept them: import that bundle again first`))
  t.deepEqual((await visible(b.dataDir)).artifacts, ['team-a x/1.bin@', 'team-a x/2.bin@', 'team-a x/3.bin@'])
  const again = await intoB(first)
  t.is(again.code, 0, again.stderr)
  t.regex(again.stdout, /1 added, 2 skipped, 0 not applied/)
  t.notRegex(again.stdout, /refused/)
  const r4 = await intoB(third)
  t.is(r4.code, 0, r4.stderr)
  t.deepEqual((await visible(b.dataDir)).artifacts, ['team-a x/1.bin@', 'team-a x/2.bin@', 'team-a x/3.bin@', 'team-a x/4.bin@', 'team-b y/1.bin@'])
  t.is(await watermark(b.dataDir, o.peerId), (await seqs()).at(-1)?.seq ?? -1)
  t.deepEqual(await refusalRecord(b.dataDir), {})
})

async function readBundleRoot (file: string): Promise<string> {
  const { CarReader } = await import('@ipld/car/reader')
  const [root] = await (await CarReader.fromBytes(await readFile(file))).getRoots()
  return root.toString()
}
