// kill -9 in the middle of a large upload: after a restart nothing of it is visible, the temp
// file is gone, the store verifies clean, earlier uploads are intact and a retry succeeds.
import test from 'ava'
import { createHash } from 'node:crypto'
import { readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { akmesh, startTestNode, waitFor } from './helpers/node.ts'
import { MiB, deterministicBytes, deterministicStream, downloadSha256, rawRequest, sha256Hex } from './helpers/streams.ts'

const SIZE = 500 * MiB
const KILL_AT = 200 * MiB

async function blobFiles (dataDir: string): Promise<string[]> {
  const out: string[] = []
  for (const sub of await readdir(join(dataDir, 'blobs'))) out.push(...await readdir(join(dataDir, 'blobs', sub)))
  return out.sort()
}

/** Bytes written so far to the upload's temp file, or 0 before it exists. */
async function tempBytes (dataDir: string): Promise<number> {
  const files = await readdir(join(dataDir, 'tmp'))
  let total = 0
  for (const f of files) total += (await stat(join(dataDir, 'tmp', f)).catch(() => ({ size: 0 }))).size
  return total
}

test('kill -9 during a 500 MiB upload leaves no partial blob, and a retry succeeds', async t => {
  const node = await startTestNode(t)
  const auth = { Authorization: `Bearer ${node.adminToken}` }

  const earlier = [
    { path: 'before/small.txt', data: Buffer.from('uploaded before the crash\n') },
    { path: 'before/medium.bin', data: deterministicBytes(3 * MiB + 17, 'before-medium') },
    { path: 'before/large.bin', data: deterministicBytes(40 * MiB, 'before-large') }
  ]
  for (const f of earlier) {
    t.is((await rawRequest('PUT', `${node.url}/files/${f.path}`, { body: f.data, headers: auth })).status, 201, f.path)
  }
  const blobsBefore = await blobFiles(node.dataDir)
  t.is(blobsBefore.length, earlier.length)

  // The upload runs until the node dies under it.
  const upload = rawRequest('PUT', `${node.url}/files/crash/big.bin`, { body: deterministicStream(SIZE, 'crash'), headers: auth })
    .then(r => `answered ${r.status}`, (e: Error) => `failed: ${e.message}`)
  const written = await waitFor(async () => { const n = await tempBytes(node.dataDir); return n >= KILL_AT ? n : 0 }, `${KILL_AT} bytes in data/tmp`, 120_000)
  await node.kill9()
  t.regex(await upload, /^failed/, 'the client sees the connection die, not an answer')
  t.log(`killed with ${(written / MiB).toFixed(0)} MiB of ${SIZE / MiB} MiB in data/tmp`)

  // Before the restart the partial upload exists only as a temp file.
  t.true(await tempBytes(node.dataDir) >= KILL_AT)
  t.true(await tempBytes(node.dataDir) < SIZE)
  t.deepEqual(await blobFiles(node.dataDir), blobsBefore)

  await node.restart()
  t.deepEqual(await readdir(join(node.dataDir, 'tmp')), [], 'temp files are swept at start')
  t.deepEqual(await blobFiles(node.dataDir), blobsBefore, 'no blob file of the interrupted upload')
  t.is((await rawRequest('GET', `${node.url}/files/crash/big.bin`)).status, 404)
  t.is((await rawRequest('HEAD', `${node.url}/files/crash/big.bin`)).status, 404)
  t.deepEqual(JSON.parse((await rawRequest('GET', `${node.url}/files/crash/`)).body.toString()).files, [])

  const verify = await akmesh(['verify', '--data', node.dataDir])
  t.is(verify.code, 0, verify.stdout + verify.stderr)
  t.regex(verify.stdout, new RegExp(`checked ${earlier.length} blobs .*all intact`))

  for (const f of earlier) {
    const got = await downloadSha256(`${node.url}/files/${f.path}`)
    t.is(got.status, 200, f.path)
    t.is(got.sha256, sha256Hex(f.data), f.path)
  }

  const sent = createHash('sha256')
  const retry = await rawRequest('PUT', `${node.url}/files/crash/big.bin`, { body: deterministicStream(SIZE, 'crash', { hash: sent }), headers: auth })
  t.is(retry.status, 201, retry.body.toString())
  const sentSha256 = sent.digest('hex')
  const got = await downloadSha256(`${node.url}/files/crash/big.bin`)
  t.is(got.size, SIZE)
  t.is(got.sha256, sentSha256)
  t.deepEqual(await readdir(join(node.dataDir, 'tmp')), [])
  t.is((await blobFiles(node.dataDir)).length, earlier.length + 1)
})
