// A node whose data volume fills up (a real 32 MiB tmpfs): every upload path (generic, npm, OCI
// monolithic and chunked, PyPI) answers 507 with a message saying the node is out of space,
// nothing half-written is left (no temp files, no blob file without its row), what was stored
// before stays intact, and once the volume grows (or a file is deleted) uploads work again
// without a restart.
import test from 'ava'
import { createHash, randomBytes } from 'node:crypto'
import { open, mkdir, readdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { akmesh, startTestNode, type TestNode } from './helpers/node.ts'
import { npmTgz, zipBytes } from './helpers/archives.ts'
import { queryIndex } from './helpers/mesh.ts'
import { publishBody } from './helpers/npm-client.ts'
import { digestOf, oci } from './helpers/oci-http.ts'
import { coreMetadata, upload, uploadForm } from './helpers/pypi-dists.ts'
import { mountTmpfs } from './helpers/tmpfs.ts'

const MiB = 1024 * 1024
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')
const OUT_OF_SPACE = /out of storage space/

const auth = (node: TestNode) => ({ authorization: `Bearer ${node.adminToken}` })
const putFile = async (node: TestNode, path: string, body: Buffer) =>
  await fetch(`${node.url}/files/${path}`, { method: 'PUT', body, headers: { ...auth(node), 'x-checksum-sha256': sha256(body) } })
const publish = async (node: TestNode, name: string, tgz: Buffer) =>
  await fetch(`${node.url}/npm/${name}`, { method: 'PUT', body: JSON.stringify(publishBody(name, '1.0.0', tgz)), headers: { ...auth(node), 'content-type': 'application/json' } })
const pushBlob = async (node: TestNode, bytes: Buffer) =>
  await oci(node, 'POST', `/v2/docker/team/app/blobs/uploads/?digest=${digestOf(bytes)}`, { body: bytes, headers: { 'Content-Type': 'application/octet-stream' } })
/** A random (incompressible) package of about `size` bytes. */
const bigPackage = async (name: string, size: number) => await npmTgz(name, '1.0.0', [{ path: 'package/data.bin', text: randomBytes(size) }])

async function bodyOf (res: Response): Promise<string> {
  return await res.text()
}

/** A wheel carrying `size` random bytes. */
async function bigWheel (size: number) {
  const metadata = coreMetadata('late-wheel', '1.0')
  const bytes = await zipBytes({ 'late_wheel/data.bin': randomBytes(size), 'late_wheel-1.0.dist-info/METADATA': metadata })
  return { filename: 'late_wheel-1.0-py3-none-any.whl', bytes, metadata }
}

/** Writes zeros to `path` until the volume is full (the node's own writes then fail at once). */
async function fillVolume (path: string): Promise<void> {
  const fh = await open(path, 'w')
  const zeros = Buffer.alloc(MiB)
  try {
    for (;;) await fh.write(zeros)
  } catch (err: any) {
    if (err.code !== 'ENOSPC') throw err
  } finally { await fh.close() }
}

/** Blob files on disk and blobs the index holds: equal unless a failed write left a file behind. */
async function blobFilesAndRows (dataDir: string): Promise<{ files: string[], rows: string[] }> {
  const files = (await readdir(join(dataDir, 'blobs'), { recursive: true, withFileTypes: true })).filter(e => e.isFile()).map(e => e.name).sort()
  const rows = (await queryIndex(dataDir, 'SELECT cid FROM blobs WHERE present = 1 ORDER BY cid')).map((r: { cid: string }) => r.cid)
  return { files, rows }
}

test('a full disk: 507 on generic PUT, npm publish, OCI and PyPI uploads, nothing half-written, recovery without a restart', async t => {
  const fs = await mountTmpfs(t, 32)
  if (fs == null) return
  const dataDir = join(fs.dir, 'data')
  await mkdir(dataDir)
  const node = await startTestNode(t, { dataDir })
  t.teardown(async () => { await node.kill9(); await fs.unmount() })

  // Stored before the disk fills: must survive it.
  const early = randomBytes(4 * MiB)
  t.is((await putFile(node, 'early.bin', early)).status, 201)
  const earlyTgz = await bigPackage('early-pkg', 256 * 1024)
  t.true((await publish(node, 'early-pkg', earlyTgz)).ok)
  const earlyBlob = randomBytes(MiB)
  t.is((await pushBlob(node, earlyBlob)).status, 201)

  let full: Response | undefined
  for (let i = 0; i < 40 && full == null; i++) {
    const r = await putFile(node, `fill/${i}.bin`, randomBytes(2 * MiB))
    if (r.status === 201) { await r.body?.cancel(); continue }
    full = r
  }
  t.truthy(full, 'the 32 MiB volume never filled')
  t.is(full?.status, 507)
  const fullBody = JSON.parse(await bodyOf(full as Response))
  t.regex(fullBody.error, OUT_OF_SPACE)
  t.is(fullBody.code, 'InsufficientStorage')

  // Every other upload path, with bodies larger than the room a failed upload gave back.
  const r1 = await putFile(node, 'late.bin', randomBytes(3 * MiB))
  t.is(r1.status, 507)
  t.regex(await bodyOf(r1), OUT_OF_SPACE)
  const r2 = await publish(node, 'late-pkg', await bigPackage('late-pkg', 3 * MiB))
  t.is(r2.status, 507)
  t.regex(JSON.parse(await bodyOf(r2)).error, OUT_OF_SPACE)
  const r3 = await pushBlob(node, randomBytes(3 * MiB))
  t.is(r3.status, 507)
  const r3Body = JSON.parse(await bodyOf(r3))
  t.regex(r3Body.errors[0].message, OUT_OF_SPACE)
  const begun = await oci(node, 'POST', '/v2/docker/team/app/blobs/uploads/')
  await begun.body?.cancel()
  if (begun.status === 202) {
    const r4 = await oci(node, 'PATCH', begun.headers.get('location') as string, { body: randomBytes(3 * MiB), headers: { 'Content-Type': 'application/octet-stream' } })
    t.is(r4.status, 507)
    t.regex(await bodyOf(r4), OUT_OF_SPACE)
  } else {
    t.is(begun.status, 507)
  }
  const r5 = await upload(node, await uploadForm(await bigWheel(3 * MiB), 'late-wheel', '1.0'))
  t.is(r5.status, 507)
  t.regex(r5.statusText, OUT_OF_SPACE, 'the reason phrase twine shows')

  // Nothing half-written; the node answers; what was stored before is intact.
  t.deepEqual(await readdir(join(dataDir, 'tmp')), [])
  const onDisk = await blobFilesAndRows(dataDir)
  t.deepEqual(onDisk.files, onDisk.rows)
  t.is((await fetch(`${node.url}/healthz`)).status, 200)
  t.is(sha256(Buffer.from(await (await fetch(`${node.url}/files/early.bin`)).arrayBuffer())), sha256(early))
  t.is(sha256(Buffer.from(await (await fetch(`${node.url}/npm/early-pkg/-/early-pkg-1.0.0.tgz`)).arrayBuffer())), sha256(earlyTgz))
  t.is(sha256(Buffer.from(await (await oci(node, 'GET', `/v2/docker/team/app/blobs/${digestOf(earlyBlob)}`)).arrayBuffer())), sha256(earlyBlob))
  const verify = await akmesh(['verify', '--data', dataDir])
  t.is(verify.code, 0, verify.stdout + verify.stderr)
  t.false(node.output().includes('"msg":"internal error"'), 'every out-of-space failure was mapped, none became a 500')

  // Room again (the volume grows in place): the same node takes every kind of upload.
  await fs.resize(64)
  const late = randomBytes(3 * MiB)
  t.is((await putFile(node, 'late.bin', late)).status, 201)
  const lateTgz = await bigPackage('late-pkg', 3 * MiB)
  const published = await publish(node, 'late-pkg', lateTgz)
  t.true(published.ok, `${published.status} ${await bodyOf(published)}`)
  const lateBlob = randomBytes(3 * MiB)
  t.is((await pushBlob(node, lateBlob)).status, 201)
  t.is(sha256(Buffer.from(await (await fetch(`${node.url}/files/late.bin`)).arrayBuffer())), sha256(late))
  t.is(sha256(Buffer.from(await (await fetch(`${node.url}/npm/late-pkg/-/late-pkg-1.0.0.tgz`)).arrayBuffer())), sha256(lateTgz))
  const wheel = await upload(node, await uploadForm(await bigWheel(3 * MiB), 'late-wheel', '1.0'))
  t.is(wheel.status, 200, await bodyOf(wheel))
  t.deepEqual(await readdir(join(dataDir, 'tmp')), [])
  const again = await akmesh(['verify', '--data', dataDir])
  t.is(again.code, 0, again.stdout + again.stderr)

  // Full to the last byte (a file outside the data dir): even a change that writes only the index
  // (a dist-tag; SQLite reports SQLITE_FULL) is a 507, and deleting that file is enough to recover.
  const filler = join(fs.dir, 'filler')
  await fillVolume(filler)
  const tag = async (name: string) => await fetch(`${node.url}/npm/-/package/early-pkg/dist-tags/${name}`, {
    method: 'PUT', body: '"1.0.0"', headers: { ...auth(node), 'content-type': 'application/json' }
  })
  const tagged = await tag('beta')
  t.is(tagged.status, 507)
  t.regex(JSON.parse(await bodyOf(tagged)).error, OUT_OF_SPACE)
  const tiny = await publish(node, 'tiny-pkg', await npmTgz('tiny-pkg', '1.0.0'))
  t.is(tiny.status, 507)
  t.regex(JSON.parse(await bodyOf(tiny)).error, OUT_OF_SPACE)
  await rm(filler)
  t.is((await tag('beta')).status, 201)
  const tinyAgain = await publish(node, 'tiny-pkg', await npmTgz('tiny-pkg', '1.0.0'))
  t.true(tinyAgain.ok, `${tinyAgain.status} ${await bodyOf(tinyAgain)}`)
  t.is((await (await fetch(`${node.url}/npm/early-pkg`)).json() as any)['dist-tags'].beta, '1.0.0')
  t.deepEqual(await readdir(join(dataDir, 'tmp')), [])
  const final = await blobFilesAndRows(dataDir)
  t.deepEqual(final.files, final.rows)
  const last = await akmesh(['verify', '--data', dataDir])
  t.is(last.code, 0, last.stdout + last.stderr)
  t.false(node.output().includes('"msg":"internal error"'), 'every out-of-space failure was mapped, none became a 500')
})
