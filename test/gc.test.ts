// Blob garbage collection on real nodes: `akmesh gc` (dry run and real, through the running node
// and directly), what it must keep (bytes another repository still names, blob links, uploads in
// progress), orphan files a kill -9 leaves, `akmesh verify`'s orphan report and the sweep after
// a restart.
import test from 'ava'
import { createHash } from 'node:crypto'
import { readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { allSigned } from './helpers/bundle.ts'
import { connectedTo, identity, queryIndex } from './helpers/mesh.ts'
import { akmesh, makeTempDir, startTestNode, waitFor, type TestNode } from './helpers/node.ts'
import { digestOf, oci, pushBlob } from './helpers/oci-http.ts'
import { deterministicBytes, rawRequest, sha256Hex } from './helpers/streams.ts'

const GRACE = '2s'
const config = (extra = '') => `
gc:
  interval: "off"
  grace: ${GRACE}
repositories:
  - name: files
    format: generic
  - name: other
    format: generic
  - name: docker
    format: oci
${extra}`

interface Report {
  dryRun: boolean
  orphans: { count: number, bytes: number }
  unreferenced: { count: number, bytes: number }
  blobs: Array<{ cid: string, size: number, kind: string }>
  spared: { young: number, inUse: number, manifest: number, unsigned: number }
}

async function gc (node: TestNode, args: string[] = []): Promise<Report> {
  const r = await akmesh(['gc', '--data', node.dataDir, '--url', node.url, '--token', node.adminToken, '--json', ...args])
  if (r.code !== 0) throw new Error(`gc: ${r.code} ${r.stderr}`)
  return JSON.parse(r.stdout) as Report
}

async function verify (dataDir: string): Promise<{ code: number, report: { problems: unknown[], orphans: Array<{ cid: string, size: number }>, orphanBytes: number, checked: number } }> {
  const r = await akmesh(['verify', '--data', dataDir, '--json'])
  return { code: r.code, report: JSON.parse(r.stdout) }
}

async function blobFiles (dataDir: string): Promise<string[]> {
  const out: string[] = []
  for (const sub of await readdir(join(dataDir, 'blobs'))) out.push(...await readdir(join(dataDir, 'blobs', sub)))
  return out.sort()
}

const cidOf = async (node: TestNode, sha256: string): Promise<string> =>
  (await queryIndex(node.dataDir, `SELECT cid FROM blobs WHERE sha256 = '${sha256}'`) as Array<{ cid: string }>)[0]?.cid

async function put (node: TestNode, path: string, body: Buffer): Promise<void> {
  const r = await rawRequest('PUT', `${node.url}/${path}`, { body, headers: { Authorization: `Bearer ${node.adminToken}` } })
  if (r.status !== 201 && r.status !== 200) throw new Error(`PUT ${path}: ${r.status} ${r.body.toString()}`)
}

async function del (node: TestNode, path: string): Promise<void> {
  const r = await rawRequest('DELETE', `${node.url}/${path}`, { headers: { Authorization: `Bearer ${node.adminToken}` } })
  if (r.status !== 204) throw new Error(`DELETE ${path}: ${r.status} ${r.body.toString()}`)
}

test('gc deletes the blobs of deleted and replaced artifacts and unlinked OCI blobs, and keeps shared bytes, blob links and uploads in progress', async t => {
  const node = await startTestNode(t, { config: config() })
  const deleted = deterministicBytes(300_000, 'deleted')
  const replaced = deterministicBytes(200_000, 'replaced')
  const replacement = deterministicBytes(100_000, 'replacement')
  const shared = deterministicBytes(250_000, 'shared')
  const kept = deterministicBytes(50_000, 'kept')
  await put(node, 'files/a/deleted.bin', deleted)
  await put(node, 'files/a/replaced.bin', replaced)
  await put(node, 'files/a/replaced.bin', replacement)
  await put(node, 'files/a/kept.bin', kept)
  // Identical bytes in two repositories are one blob: deleting one artifact must not take it.
  await put(node, 'files/a/shared.bin', shared)
  await put(node, 'other/b/shared.bin', shared)
  await del(node, 'files/a/shared.bin')
  await del(node, 'files/a/deleted.bin')
  // OCI: a linked blob no manifest names is kept (readable by digest); a deleted one is garbage.
  const linkedDigest = await pushBlob(node, 'docker/app', 'linked layer')
  const unlinkedDigest = await pushBlob(node, 'docker/app', 'unlinked layer')
  t.is((await oci(node, 'DELETE', `/v2/docker/app/blobs/${unlinkedDigest}`)).status, 202)
  await allSigned(node)

  const garbage = new Set([await cidOf(node, sha256Hex(deleted)), await cidOf(node, sha256Hex(replaced)), await cidOf(node, digestOf('unlinked layer').slice(7))])
  const keep = new Set([await cidOf(node, sha256Hex(shared)), await cidOf(node, sha256Hex(replacement)), await cidOf(node, sha256Hex(kept)), await cidOf(node, digestOf('linked layer').slice(7))])
  t.is(garbage.size, 3)
  t.is(keep.size, 4)

  // Within the grace period nothing goes; then the dry run lists exactly the garbage.
  const young = await gc(node, ['--dry-run'])
  t.true(young.blobs.every(b => !keep.has(b.cid)))
  const dry = await waitFor(async () => { const r = await gc(node, ['--dry-run']); return r.spared.young === 0 ? r : undefined }, 'every blob to pass the grace period') as Report
  t.true(dry.dryRun)
  t.deepEqual(new Set(dry.blobs.map(b => b.cid)), garbage)
  t.is(dry.unreferenced.count, 3)
  t.is(dry.unreferenced.bytes, deleted.length + replaced.length + 'unlinked layer'.length)
  t.is(dry.orphans.count, 0)
  for (const cid of garbage) t.true((await blobFiles(node.dataDir)).includes(cid), 'a dry run deletes nothing')

  // The admin API wants an admin token.
  t.is((await rawRequest('POST', `${node.url}/-/gc?dry-run=1`)).status, 401)
  // Without --url, beside the running node, gc refuses and says what to do.
  const refused = await akmesh(['gc', '--data', node.dataDir])
  t.is(refused.code, 2)
  t.regex(refused.stderr, /running node.*--url/)

  // An upload in progress (its bytes are those of a garbage blob) survives the collection.
  const start = await oci(node, 'POST', '/v2/docker/app/blobs/uploads/')
  t.is(start.status, 202)
  const location = start.headers.get('location') as string
  const patch = await oci(node, 'PATCH', location, { body: deleted, headers: { 'Content-Type': 'application/octet-stream' } })
  t.is(patch.status, 202)

  const real = await gc(node)
  t.false(real.dryRun)
  t.deepEqual(new Set(real.blobs.map(b => b.cid)), garbage)
  const files = await blobFiles(node.dataDir)
  for (const cid of garbage) t.false(files.includes(cid), `${cid} deleted`)
  for (const cid of keep) t.true(files.includes(cid), `${cid} kept`)
  t.deepEqual(await queryIndex(node.dataDir, `SELECT cid FROM blobs WHERE cid IN (${[...garbage].map(c => `'${c}'`).join(',')})`), [], 'rows deleted with the files')

  const finish = await oci(node, 'PUT', `${patch.headers.get('location') as string}${(patch.headers.get('location') as string).includes('?') ? '&' : '?'}digest=${digestOf(deleted)}`)
  t.is(finish.status, 201, await finish.text())
  const got = await oci(node, 'GET', `/v2/docker/app/blobs/${digestOf(deleted)}`)
  t.is(got.status, 200)
  t.is(sha256Hex(Buffer.from(await got.arrayBuffer())), sha256Hex(deleted))
  for (const [path, bytes] of [['other/b/shared.bin', shared], ['files/a/replaced.bin', replacement], ['files/a/kept.bin', kept]] as const) {
    const r = await rawRequest('GET', `${node.url}/${path}`)
    t.is(r.status, 200, path)
    t.is(sha256Hex(r.body), sha256Hex(bytes), path)
  }
  t.is((await oci(node, 'GET', `/v2/docker/app/blobs/${linkedDigest}`)).status, 200)

  const after = await verify(node.dataDir)
  t.is(after.code, 0)
  t.deepEqual(after.report.problems, [])
  t.deepEqual(after.report.orphans, [])
  const again = await gc(node, ['--dry-run'])
  t.deepEqual(again.blobs, [], 'nothing left to collect')
})

test('gc without a running node opens the data directory itself', async t => {
  const node = await startTestNode(t, { config: config() })
  const bytes = deterministicBytes(123_456, 'offline')
  await put(node, 'files/x.bin', bytes)
  await put(node, 'other/x.bin', deterministicBytes(1000, 'stays'))
  await del(node, 'files/x.bin')
  await allSigned(node)
  const cid = await cidOf(node, sha256Hex(bytes))
  await node.stop()
  const configFile = join(node.dataDir, '..', `${node.dataDir.split('/').pop()}.yaml`)
  const run = async (args: string[]) => await akmesh(['gc', '--config', configFile, '--data', node.dataDir, '--json', ...args])
  const dry = await waitFor(async () => {
    const r = JSON.parse((await run(['--dry-run'])).stdout) as Report
    return r.spared.young === 0 ? r : undefined
  }, 'the grace period to pass') as Report
  t.deepEqual(dry.blobs.map(b => b.cid), [cid])
  const text = await akmesh(['gc', '--config', configFile, '--data', node.dataDir, '--dry-run'])
  t.is(text.code, 0, text.stderr)
  t.regex(text.stdout, new RegExp(`^would delete unreferenced +${cid} 123456 bytes$`, 'm'))
  t.regex(text.stdout, /would delete 0 orphan file\(s\) \(0 bytes\) and 1 unreferenced blob\(s\) \(123456 bytes\)/)
  t.true((await blobFiles(node.dataDir)).includes(cid))
  const r = await run([])
  t.is(r.code, 0, r.stderr)
  t.deepEqual((JSON.parse(r.stdout) as Report).blobs.map(b => b.cid), [cid])
  t.false((await blobFiles(node.dataDir)).includes(cid))
  t.deepEqual((await verify(node.dataDir)).report.orphans, [])
  // A bundle of everything still exports: the deleted version's blob is listed as absent.
  const exported = await akmesh(['export', join(await makeTempDir(t), 'all.car'), '--data', node.dataDir, '--json'])
  t.is(exported.code, 0, exported.stderr)
  t.is(JSON.parse(exported.stdout).absent, 1)
})

test('kill -9 during uploads leaves orphan files: verify lists them without failing, and the restarted node sweeps them after the grace period', async t => {
  const node = await startTestNode(t, { config: config() })
  const auth = { Authorization: `Bearer ${node.adminToken}` }
  let orphans: Array<{ cid: string, size: number }> = []
  const acknowledged: Array<{ path: string, sha256: string }> = []
  // A blob is an orphan only when the kill lands between its rename into blobs/ and its row:
  // many small concurrent uploads make that likely; a few rounds make it certain enough.
  for (let round = 0; round < 8 && orphans.length === 0; round++) {
    if (round > 0) await node.restart()
    let stop = false
    const uploads = Array.from({ length: 48 }, async (_, i) => {
      for (let n = 0; !stop; n++) {
        const body = deterministicBytes(64 * 1024 + i * 97 + n, `r${round}-${i}-${n}`)
        const path = `files/crash/${round}/${i}/${n}.bin`
        const r = await rawRequest('PUT', `${node.url}/${path}`, { body, headers: auth }).catch(() => undefined)
        if (r == null) return
        if (r.status === 201) acknowledged.push({ path, sha256: sha256Hex(body) })
      }
    })
    await waitFor(() => acknowledged.length >= (round + 1) * 150, 'uploads under way')
    await node.kill9()
    stop = true
    await Promise.all(uploads)
    const v = await verify(node.dataDir)
    t.is(v.code, 0, 'orphans alone do not fail verify')
    t.deepEqual(v.report.problems, [])
    orphans = v.report.orphans
    t.log(`round ${round}: ${orphans.length} orphan file(s) after the kill, ${acknowledged.length} uploads acknowledged`)
  }
  t.true(orphans.length > 0, 'a kill -9 under concurrent uploads left orphan files')
  const text = await akmesh(['verify', '--data', node.dataDir])
  t.is(text.code, 0)
  t.regex(text.stdout, /ORPHAN /)
  t.regex(text.stdout, new RegExp(`${orphans.length} orphan file\\(s\\)`))

  await node.restart()
  await waitFor(async () => (await verify(node.dataDir)).report.orphans.length === 0, 'the node to sweep the orphan files', 60_000)
  const files = new Set(await blobFiles(node.dataDir))
  for (const o of orphans) t.false(files.has(o.cid))
  t.regex(node.output(), /swept orphan blob files/)
  const v = await verify(node.dataDir)
  t.is(v.code, 0)
  t.deepEqual(v.report.problems, [])
  // Nothing acknowledged was lost.
  for (const a of acknowledged.filter((_, i) => i % 25 === 0)) {
    const r = await rawRequest('GET', `${node.url}/${a.path}`)
    t.is(r.status, 200, a.path)
    t.is(createHash('sha256').update(r.body).digest('hex'), a.sha256)
  }
  t.true((await stat(join(node.dataDir, 'tmp'))).isDirectory())
})

test('gc keeps blobs a held manifest still names (on-demand and not replicated), until a later delete manifest supersedes it', async t => {
  const a = await identity(t)
  const b = await identity(t)
  const nodeA = await startTestNode(t, { dataDir: a.dataDir, config: config(), peering: { allow: [b.peerId] } })
  const nodeB = await startTestNode(t, { dataDir: b.dataDir, config: config(), peering: { allow: [a.peerId], bootstrap: [nodeA.meshAddr], replication: { '*': 'on-demand', other: 'none' } } })
  await waitFor(async () => await connectedTo(nodeB, a.peerId), 'A and B connected')
  const heldFromA = async (): Promise<number> => (await queryIndex(nodeB.dataDir, `SELECT COUNT(*) AS n FROM manifests WHERE origin = '${a.peerId}'`) as Array<{ n: number }>)[0].n

  // On-demand: B applies A's manifest and knows the blob without its bytes.
  const onDemand = deterministicBytes(180_000, 'on-demand')
  await put(nodeA, 'files/od.bin', onDemand)
  // Not replicated (policy none): B keeps A's manifest for forwarding, applies nothing...
  const named = deterministicBytes(90_000, 'named by a held manifest')
  await put(nodeA, 'other/held.bin', named)
  await waitFor(async () => await heldFromA() >= 2, 'B to hold both manifests of A')
  // ... and holds the same bytes itself only through an artifact it deleted since.
  await put(nodeB, 'files/mine.bin', named)
  await del(nodeB, 'files/mine.bin')
  const garbage = deterministicBytes(70_000, 'garbage on B')
  await put(nodeB, 'files/garbage.bin', garbage)
  await del(nodeB, 'files/garbage.bin')
  await allSigned(nodeB)
  const odCid = await cidOf(nodeB, sha256Hex(onDemand))
  const namedCid = await cidOf(nodeB, sha256Hex(named))
  const garbageCid = await cidOf(nodeB, sha256Hex(garbage))
  t.deepEqual(await queryIndex(nodeB.dataDir, `SELECT present FROM blobs WHERE cid = '${odCid}'`), [{ present: 0 }])

  const first = await waitFor(async () => { const r = await gc(nodeB, ['--dry-run']); return r.spared.young === 0 ? r : undefined }, 'the grace period on B') as Report
  t.deepEqual(first.blobs.map(b => b.cid), [garbageCid])
  t.is(first.spared.manifest, 1)
  t.deepEqual((await gc(nodeB)).blobs.map(b => b.cid), [garbageCid])
  t.true((await blobFiles(nodeB.dataDir)).includes(namedCid), 'named by a held manifest of A: kept')
  t.deepEqual(await queryIndex(nodeB.dataDir, `SELECT present FROM blobs WHERE cid = '${odCid}'`), [{ present: 0 }], 'the on-demand blob is still known')
  const fetched = await rawRequest('GET', `${nodeB.url}/files/od.bin`)
  t.is(fetched.status, 200)
  t.is(sha256Hex(fetched.body), sha256Hex(onDemand), 'and B still serves it from the mesh')

  // A deletes the version: once B holds the delete manifest, the publish it supersedes names
  // nothing, and the bytes are garbage on B too.
  await del(nodeA, 'other/held.bin')
  await waitFor(async () => await heldFromA() >= 3, 'B to hold A\'s delete manifest')
  const second = await gc(nodeB)
  t.deepEqual(second.blobs.map(b => b.cid), [namedCid])
  t.false((await blobFiles(nodeB.dataDir)).includes(namedCid))
  t.true((await blobFiles(nodeB.dataDir)).includes(odCid), 'the fetched on-demand blob is an artifact\'s file: kept')
  const v = await verify(nodeB.dataDir)
  t.is(v.code, 0)
  t.deepEqual(v.report.problems, [])
  t.deepEqual(v.report.orphans, [])
})

test('the node collects by itself every gc.interval', async t => {
  const node = await startTestNode(t, { config: config().replace('interval: "off"', 'interval: 1s') })
  const bytes = deterministicBytes(77_000, 'periodic')
  await put(node, 'files/p.bin', bytes)
  const cid = await cidOf(node, sha256Hex(bytes))
  await del(node, 'files/p.bin')
  await waitFor(async () => !(await blobFiles(node.dataDir)).includes(cid), 'the periodic gc to delete the blob')
  t.regex(node.output(), /"msg":"blob gc"/)
  t.deepEqual(await queryIndex(node.dataDir, `SELECT cid FROM blobs WHERE cid = '${cid}'`), [])
})
