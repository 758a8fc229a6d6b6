// Air-gap bundles that must not be trusted or must carry exactly the right things: incremental and
// inventory-diff selection, volumes, one flipped byte, truncation, a non-member's manifest.
// Imports here go straight into data directories where no node runs (the direct path).
import test from 'ava'
import { copyFile, open, readdir, readFile, rename, truncate, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { allSigned, blockOffsets, bundleIndex, exportBundle, importBundle, inventory, visible } from './helpers/bundle.ts'
import { identity, rawPublish } from './helpers/mesh.ts'
import { makeTempDir, startTestNode } from './helpers/node.ts'
import { deterministicBytes, MiB } from './helpers/streams.ts'

async function putFile (node: { url: string, adminToken: string }, path: string, body: Buffer): Promise<string> {
  const res = await fetch(`${node.url}/files/${path}`, { method: 'PUT', body, headers: { authorization: `Bearer ${node.adminToken}` } })
  if (res.status !== 201) throw new Error(`PUT ${path}: ${res.status} ${await res.text()}`)
  return (await res.json() as { cid: string }).cid
}

/** The CIDs of blobs whose sha256 is one of these tarballs/files, from a node's index. */
const cidOf = async (dataDir: string, sha256: string): Promise<string> => {
  const { queryIndex } = await import('./helpers/mesh.ts')
  const [r] = await queryIndex(dataDir, `SELECT cid FROM blobs WHERE sha256 = '${sha256}'`) as Array<{ cid: string }>
  return r.cid
}
const sha256 = async (b: Buffer) => (await import('node:crypto')).createHash('sha256').update(b).digest('hex')

test.serial('a second export --since-last holds only what is new; it is refused where its base is missing, then resumes from what it staged', async t => {
  const a = await identity(t)
  const b = await identity(t)
  const c = await identity(t)
  const nodeA = await startTestNode(t, { dataDir: a.dataDir, peering: { allow: [b.peerId, c.peerId] } })
  for (const id of [b, c]) await writeFile(join(id.dataDir, 'peering.json'), JSON.stringify({ allow: [a.peerId] }))
  const root = await makeTempDir(t)
  await rawPublish(nodeA, root, 'inc-one', '1.0.0')
  await putFile(nodeA, 'inc/one.bin', deterministicBytes(100_000, 'one'))
  await allSigned(nodeA)
  const first = join(root, 'first.car')
  const e1 = await exportBundle(a.dataDir, first, ['--to', 'site-b'])
  t.is(e1.code, 0, e1.stderr)
  const i1 = await bundleIndex(first)
  t.is(i1.manifests.length, 3) // npm publish, its latest tag, the generic file
  t.is(i1.blobs.length, 2)

  const tgz = await rawPublish(nodeA, root, 'inc-two', '2.0.0')
  await allSigned(nodeA)
  const second = join(root, 'second.car')
  const e2 = await exportBundle(a.dataDir, second, ['--to', 'site-b', '--since-last'])
  t.is(e2.code, 0, e2.stderr)
  const i2 = await bundleIndex(second)
  t.is(i2.selection.mode, 'since')
  const before = new Set(i1.manifests.map(m => `${m.origin}/${m.seq}`))
  t.is(i2.manifests.length, 2, JSON.stringify(i2.manifests)) // publish + tag of inc-two
  t.true(i2.manifests.every(m => !before.has(`${m.origin}/${m.seq}`) && m.origin === a.peerId))
  t.deepEqual(i2.blobs.map(x => x.cid), [await cidOf(a.dataDir, await sha256(tgz))])
  t.true(i2.base[a.peerId] >= Math.max(...i1.manifests.map(m => m.seq)))

  // Nothing new: an empty bundle.
  const third = join(root, 'third.car')
  t.is((await exportBundle(a.dataDir, third, ['--to', 'site-b', '--since-last'])).code, 0)
  t.deepEqual([(await bundleIndex(third)).manifests.length, (await bundleIndex(third)).blobs.length], [0, 0])

  // B takes both in order; C, which never got the first, refuses the second.
  for (const f of [first, second]) {
    const r = await importBundle(b.dataDir, f)
    t.is(r.code, 0, r.stderr)
  }
  t.deepEqual((await visible(b.dataDir)).artifacts, ['files inc/one.bin@', 'npm inc-one@1.0.0', 'npm inc-two@2.0.0'])
  const refused = await importBundle(c.dataDir, second)
  t.not(refused.code, 0)
  t.regex(refused.stderr, /continues an earlier export to "site-b".*Import the earlier bundle first/s)
  t.deepEqual(await visible(c.dataDir), { artifacts: [], present: 0 })
  // What it verified stays staged (invisible): once the base is in, the import resumes from it.
  const staged = await readdir(join(c.dataDir, 'imports'))
  t.is(staged.length, 1)
  t.is((await importBundle(c.dataDir, first)).code, 0)
  const resumed = await importBundle(c.dataDir, second)
  t.is(resumed.code, 0, resumed.stderr)
  t.regex(resumed.stdout, /2 added, 0 skipped, 0 not applied; blobs: 1 added \(\d+ bytes, 1 staged by an earlier run\)/)
  t.deepEqual(await readdir(join(c.dataDir, 'imports')), [])
  t.deepEqual((await visible(c.dataDir)).artifacts, ['files inc/one.bin@', 'npm inc-one@1.0.0', 'npm inc-two@2.0.0'])
})

test.serial('export --lacks <inventory> holds exactly what the other site lacks; volumes import from the first one', async t => {
  const a = await identity(t)
  const b = await identity(t)
  const nodeA = await startTestNode(t, { dataDir: a.dataDir, peering: { allow: [b.peerId] } })
  await writeFile(join(b.dataDir, 'peering.json'), JSON.stringify({ allow: [a.peerId] }))
  const root = await makeTempDir(t)
  await rawPublish(nodeA, root, 'diff-one', '1.0.0')
  await allSigned(nodeA)
  const base = join(root, 'base.car')
  t.is((await exportBundle(a.dataDir, base)).code, 0)
  t.is((await importBundle(b.dataDir, base)).code, 0)
  const had = await inventory(b.dataDir)

  const two = await rawPublish(nodeA, root, 'diff-two', '1.0.0')
  const big = deterministicBytes(3 * MiB + 123, 'diff-big')
  await putFile(nodeA, 'diff/big.bin', big)
  await allSigned(nodeA)
  const invFile = join(root, 'b-inventory.json')
  const inv = await (await import('./helpers/node.ts')).akmesh(['inventory', invFile, '--data', b.dataDir])
  t.is(inv.code, 0, inv.stderr)
  const out = join(root, 'diff.car')
  const e = await exportBundle(a.dataDir, out, ['--lacks', invFile, '--volume-size', '1MB'])
  t.is(e.code, 0, e.stderr)
  const volumes = (await readdir(root)).filter(f => f.startsWith('diff.car.')).sort()
  t.deepEqual(volumes, ['diff.car.001', 'diff.car.002', 'diff.car.003', 'diff.car.004'])
  // Joined, the volumes are the CAR: read its index.
  const joined = join(root, 'joined.car')
  await writeFile(joined, Buffer.concat(await Promise.all(volumes.map(async v => await readFile(join(root, v))))))
  const idx = await bundleIndex(joined)
  t.is(idx.selection.mode, 'lacks')
  const held = new Set(Object.entries(had.manifests).flatMap(([o, seqs]) => seqs.map(s => `${o}/${s}`)))
  t.is(idx.manifests.length, 3) // diff-two publish + tag, the generic file
  t.true(idx.manifests.every(m => !held.has(`${m.origin}/${m.seq}`)))
  t.deepEqual(idx.blobs.map(x => x.cid).sort(), [await cidOf(a.dataDir, await sha256(two)), await cidOf(a.dataDir, await sha256(big))].sort())
  t.true(idx.blobs.every(x => !had.blobs.includes(x.cid)))

  // A missing volume is named as the likely cause.
  await rename(join(root, 'diff.car.004'), join(root, 'away'))
  const missing = await importBundle(b.dataDir, join(root, 'diff.car.001'))
  t.not(missing.code, 0)
  t.regex(missing.stderr, /truncated.*is a volume missing\?/)
  await rename(join(root, 'away'), join(root, 'diff.car.004'))
  const r = await importBundle(b.dataDir, join(root, 'diff.car.001'))
  t.is(r.code, 0, r.stderr)
  t.regex(r.stdout, /3 added, 0 skipped, 0 not applied; blobs: 2 added/)
  t.deepEqual(await inventory(b.dataDir).then(i => i.manifests), (await inventory(a.dataDir)).manifests)
})

test.serial('one flipped byte in a blob or a manifest, or a truncated bundle: import fails naming the block, nothing is visible', async t => {
  const a = await identity(t)
  const b = await identity(t)
  const nodeA = await startTestNode(t, { dataDir: a.dataDir, peering: { allow: [b.peerId] } })
  await writeFile(join(b.dataDir, 'peering.json'), JSON.stringify({ allow: [a.peerId] }))
  const root = await makeTempDir(t)
  await rawPublish(nodeA, root, 'tamper-target', '1.0.0')
  const content = deterministicBytes(2 * MiB + 5000, 'tamper')
  const fileCid = await putFile(nodeA, 'tamper/file.bin', content)
  await allSigned(nodeA)
  const good = join(root, 'good.car')
  t.is((await exportBundle(a.dataDir, good)).code, 0)
  const bytes = await readFile(good)
  const sections = await blockOffsets(good)

  const expectRejected = async (file: string, pattern: RegExp) => {
    const r = await importBundle(b.dataDir, file)
    t.not(r.code, 0, r.stdout)
    t.regex(r.stderr, /bundle rejected, nothing imported/)
    t.regex(r.stderr, pattern)
    t.deepEqual(await visible(b.dataDir), { artifacts: [], present: 0 })
    t.deepEqual(await readdir(join(b.dataDir, 'imports')).catch(() => []), [], 'nothing left staged')
  }

  // A byte in the middle of the file's second chunk.
  const blob = join(root, 'flipped-blob.car')
  const at = bytes.indexOf(content.subarray(MiB + 1000, MiB + 1064))
  t.true(at > 0)
  await copyFile(good, blob)
  const fh = await open(blob, 'r+')
  await fh.write(Buffer.from([bytes[at + 10] ^ 0x01]), 0, 1, at + 10)
  await fh.close()
  const chunk = sections.find(s => s.blockOffset <= at + 10 && at + 10 < s.blockOffset + s.blockLength)
  await expectRejected(blob, new RegExp(`chunk 1 of blob ${fileCid}: block ${chunk?.cid} does not match its CID`))

  // A byte inside a manifest envelope (its package name, in the signed payload).
  const manifest = join(root, 'flipped-manifest.car')
  const m = bytes.indexOf(Buffer.from('tamper-target'))
  const out = Buffer.from(bytes)
  out[m] ^= 0x20
  await writeFile(manifest, out)
  await expectRejected(manifest, /manifest 12D3KooW\w+\/\d+ \(block \w+\): block \w+ does not match its CID/)

  // Cut in the middle, and cut exactly at a block boundary (the last chunk missing).
  const half = join(root, 'half.car')
  await copyFile(good, half)
  await truncate(half, Math.floor(bytes.byteLength / 2))
  await expectRejected(half, /truncated/)
  const boundary = join(root, 'boundary.car')
  await copyFile(good, boundary)
  await truncate(boundary, sections[sections.length - 1].offset)
  await expectRejected(boundary, /bundle truncated: chunk \d+ of blob \w+ is missing/)

  // The intact bundle still imports (the failures left nothing behind).
  const r = await importBundle(b.dataDir, good)
  t.is(r.code, 0, r.stderr)
  t.deepEqual((await visible(b.dataDir)).artifacts, ['files tamper/file.bin@', 'npm tamper-target@1.0.0'])
})

test.serial('with --strict, a bundle with a manifest signed by a non-member is rejected, naming it; nothing is visible', async t => {
  const a = await identity(t)
  const outsider = await identity(t)
  const b = await identity(t)
  // The outsider is a node of the same mesh name, but B's allowlist (membership) lacks it.
  const nodeX = await startTestNode(t, { dataDir: outsider.dataDir, peering: { allow: [a.peerId, b.peerId] } })
  await writeFile(join(b.dataDir, 'peering.json'), JSON.stringify({ allow: [a.peerId] }))
  const root = await makeTempDir(t)
  await rawPublish(nodeX, root, 'from-outside', '1.0.0')
  await allSigned(nodeX)
  const own = join(root, 'outsider-own.car')
  t.is((await exportBundle(outsider.dataDir, own)).code, 0)
  // A (whose allowlist has the outsider) takes its manifests and exports them: the bundle's
  // exporter is a member of B's mesh, but a manifest in it is not.
  await writeFile(join(a.dataDir, 'peering.json'), JSON.stringify({ allow: [outsider.peerId, b.peerId] }))
  const viaA = await importBundle(a.dataDir, own)
  t.is(viaA.code, 0, viaA.stderr)
  const file = join(root, 'outsider.car')
  t.is((await exportBundle(a.dataDir, file)).code, 0)

  // (Without --strict the rest would be imported and the outsider's manifests listed as refused:
  // test/bundle-trust.test.ts.)
  const r = await importBundle(b.dataDir, file, { args: ['--strict'] })
  t.not(r.code, 0)
  t.regex(r.stderr, new RegExp(`manifest ${outsider.peerId}/\\d+ \\(block \\w+\\) rejected \\(not-allowed\\): origin ${outsider.peerId} is not a member of this mesh`))
  t.deepEqual(await visible(b.dataDir), { artifacts: [], present: 0 })
  const nodeB = await startTestNode(t, { dataDir: b.dataDir })
  t.is((await fetch(`${nodeB.url}/npm/from-outside`)).status, 404)

  // The node's import endpoint checks again, with strict=1 all or nothing: the outsider's
  // envelopes, sent straight to it, are refused and nothing is applied.
  const { CarReader } = await import('@ipld/car/reader')
  const { encodeFrames } = await import('../node/bundle/frames.ts')
  const car = await CarReader.fromBytes(await readFile(file))
  const envelopes: Uint8Array[] = []
  for await (const block of car.blocks()) if (block.cid.code === 0x71 && !block.cid.equals((await car.getRoots())[0])) envelopes.push(block.bytes)
  t.true(envelopes.length >= 1)
  const res = await fetch(`${nodeB.url}/-/mesh/import?strict=1`, {
    method: 'POST', body: encodeFrames(envelopes), headers: { authorization: `Bearer ${nodeB.adminToken}`, 'content-type': 'application/octet-stream' }
  })
  t.is(res.status, 403)
  t.regex((await res.json() as { error: string }).error, /rejected \(not-allowed\).*nothing was applied/)
  t.is((await fetch(`${nodeB.url}/npm/from-outside`)).status, 404)
  t.is((await fetch(`${nodeB.url}/-/mesh/import`, { method: 'POST', body: encodeFrames(envelopes) })).status, 401)
})

test.serial('an import interrupted (Ctrl-C) after staging a blob resumes from it; nothing was visible in between', async t => {
  const { spawn } = await import('node:child_process')
  const { existsSync } = await import('node:fs')
  const { CLI, waitFor } = await import('./helpers/node.ts')
  const a = await identity(t)
  const b = await identity(t)
  const nodeA = await startTestNode(t, { dataDir: a.dataDir, peering: { allow: [b.peerId] } })
  await writeFile(join(b.dataDir, 'peering.json'), JSON.stringify({ allow: [a.peerId] }))
  const root = await makeTempDir(t)
  const parts = [0, 1, 2].map(i => deterministicBytes(32 * MiB, `resume-${i}`))
  for (const [i, p] of parts.entries()) await putFile(nodeA, `resume/${i}.bin`, p)
  await allSigned(nodeA)
  const file = join(root, 'resume.car')
  t.is((await exportBundle(a.dataDir, file)).code, 0)
  const idx = await bundleIndex(file)

  const child = spawn(process.execPath, [CLI, 'import', file, '--data', b.dataDir], { stdio: ['ignore', 'pipe', 'pipe'] })
  let err = ''
  child.stderr.on('data', (d) => { err += d })
  const exited = new Promise<number | null>(resolve => child.once('exit', (code) => resolve(code)))
  const firstStaged = async () => {
    const dirs = await readdir(join(b.dataDir, 'imports')).catch(() => [] as string[])
    return dirs.length === 1 && idx.blobs.some(x => existsSync(join(b.dataDir, 'imports', dirs[0], `${x.cid}.json`)))
  }
  await waitFor(async () => await firstStaged() || child.exitCode != null, 'a first blob staged', 60_000)
  child.kill('SIGINT')
  const code = await exited
  t.not(code, 0, 'the import finished before it could be interrupted; make the blobs larger')
  t.regex(err, /interrupted/)
  t.deepEqual(await visible(b.dataDir), { artifacts: [], present: 0 })

  const r = await importBundle(b.dataDir, file)
  t.is(r.code, 0, r.stderr)
  t.regex(r.stdout, /3 added, 0 skipped, 0 not applied; blobs: 3 added \(\d+ bytes, [123] staged by an earlier run\)/)
  t.deepEqual((await visible(b.dataDir)).artifacts, ['files resume/0.bin@', 'files resume/1.bin@', 'files resume/2.bin@'])
  t.deepEqual(await readdir(join(b.dataDir, 'imports')), [])
})
