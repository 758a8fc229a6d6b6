// Blob transfer between real nodes (separate processes, TCP on 127.0.0.1): B knows A's files from
// A's gossiped manifests (present = 0) and streams them to clients while fetching, verified per chunk.
import test, { type ExecutionContext } from 'ava'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { akmesh, makeTempDir, startTestNode, waitFor, type TestNode } from './helpers/node.ts'
import { deterministicBytes, MiB, sha256Hex } from './helpers/streams.ts'

async function identity (t: ExecutionContext): Promise<{ dataDir: string, peerId: string }> {
  const dataDir = await makeTempDir(t, 'akmesh-xfer-')
  const r = await akmesh(['id', '--data', dataDir, '--json'])
  if (r.code !== 0) throw new Error(r.stderr)
  return { dataDir, peerId: JSON.parse(r.stdout).peerId }
}

async function putFile (node: TestNode, path: string, body: Buffer): Promise<string> {
  const res = await fetch(`${node.url}/files/${path}`, { method: 'PUT', body, headers: { authorization: `Bearer ${node.adminToken}` } })
  if (res.status !== 201) throw new Error(`PUT ${path}: ${res.status} ${await res.text()}`)
  return (await res.json() as { cid: string }).cid
}

/** Waits until B's index names `path` (from A's gossiped manifest). A folder listing reads only
 *  the index, so it never starts a fetch. */
async function known (node: TestNode, folder: string, name: string): Promise<void> {
  await waitFor(async () => {
    const res = await fetch(`${node.url}/files/${folder}/`)
    return res.status === 200 && (await res.text()).includes(name)
  }, `${folder}/${name} to be known on ${node.url}`)
}

const blobPath = (node: TestNode, cid: string) => join(node.dataDir, 'blobs', cid.slice(-2), cid)
const count = (text: string, re: RegExp) => text.split('\n').filter(l => re.test(l)).length

async function connected (node: TestNode, peerIds: string[]): Promise<boolean> {
  const res = await fetch(`${node.url}/-/mesh/peers`, { headers: { authorization: `Bearer ${node.adminToken}` } })
  const body = await res.json() as { peers: Array<{ peerId: string }> }
  return peerIds.every(p => body.peers.some(x => x.peerId === p))
}

test.serial('a 50 MiB blob known from a manifest streams through B, fetched once for concurrent clients', async t => {
  const a = await identity(t)
  const b = await identity(t)
  const nodeA = await startTestNode(t, { dataDir: a.dataDir, peering: { allow: [b.peerId] } })
  const nodeB = await startTestNode(t, { dataDir: b.dataDir, peering: { allow: [a.peerId], bootstrap: [nodeA.meshAddr] } })
  await waitFor(async () => await connected(nodeB, [a.peerId]), 'B connected to A')

  const bytes = deterministicBytes(50 * MiB + 12345, 'xfer-50')
  const cid = await putFile(nodeA, 'big/app.bin', bytes)
  await known(nodeB, 'big', 'app.bin')

  const gets = await Promise.all([1, 2, 3].map(async () => {
    const res = await fetch(`${nodeB.url}/files/big/app.bin`)
    return { status: res.status, sha256: sha256Hex(new Uint8Array(await res.arrayBuffer())) }
  }))
  for (const g of gets) t.deepEqual(g, { status: 200, sha256: sha256Hex(bytes) })
  t.is(count(nodeB.output(), new RegExp(`"cid":"${cid}".*"msg":"fetching blob from the mesh"`)), 1)

  // Now present on B: served from disk, byte-identical, verify clean.
  await waitFor(() => nodeB.output().includes('"msg":"blob fetched from the mesh"'), 'B to commit the blob')
  t.is(sha256Hex(await readFile(blobPath(nodeB, cid))), sha256Hex(bytes))
  const ranged = await fetch(`${nodeB.url}/files/big/app.bin`, { headers: { range: 'bytes=100-199' } })
  t.is(ranged.status, 206)
  t.deepEqual(Buffer.from(await ranged.arrayBuffer()), bytes.subarray(100, 200))
  const verify = await akmesh(['verify', '--data', nodeB.dataDir])
  t.is(verify.code, 0, verify.stdout + verify.stderr)
})

test.serial('a lying peer is excluded at its first bad chunk; with no honest source the client gets 503', async t => {
  const a = await identity(t)
  const b = await identity(t)
  const c = await identity(t)
  const nodeA = await startTestNode(t, { dataDir: a.dataDir, peering: { allow: [b.peerId, c.peerId] } })
  const nodeC = await startTestNode(t, { dataDir: c.dataDir, peering: { allow: [a.peerId, b.peerId] } })
  const nodeB = await startTestNode(t, { dataDir: b.dataDir, peering: { allow: [a.peerId, c.peerId], bootstrap: [nodeA.meshAddr, nodeC.meshAddr] } })
  await waitFor(async () => await connected(nodeB, [a.peerId, c.peerId]), 'B connected to A and C')

  // Both A and C hold `shared`; A's copy is corrupted in chunk 2 on disk.
  const shared = deterministicBytes(6 * MiB + 7, 'xfer-shared')
  const cid = await putFile(nodeA, 'lie/shared.bin', shared)
  t.is(await putFile(nodeC, 'other/shared.bin', shared), cid)
  const corrupt = async (node: TestNode, cid: string, at: number) => {
    const file = await readFile(blobPath(node, cid))
    file[at] ^= 0xff
    await writeFile(blobPath(node, cid), file)
  }
  await corrupt(nodeA, cid, 2 * MiB + 5)
  // Only A holds `lonely`, corrupted in chunk 0.
  const lonely = deterministicBytes(3 * MiB, 'xfer-lonely')
  const lonelyCid = await putFile(nodeA, 'lie/lonely.bin', lonely)
  await corrupt(nodeA, lonelyCid, 10)
  await known(nodeB, 'lie', 'shared.bin')
  await known(nodeB, 'lie', 'lonely.bin')

  const res = await fetch(`${nodeB.url}/files/lie/shared.bin`)
  t.is(res.status, 200)
  t.is(sha256Hex(new Uint8Array(await res.arrayBuffer())), sha256Hex(shared))
  await waitFor(() => nodeB.output().includes('"msg":"blob fetched from the mesh"'), 'B to commit the blob')
  t.is(sha256Hex(await readFile(blobPath(nodeB, cid))), sha256Hex(shared))

  const missing = await fetch(`${nodeB.url}/files/lie/lonely.bin`)
  t.is(missing.status, 503, await missing.text())
  t.regex(nodeB.output(), new RegExp(`"peer":"${a.peerId}","cid":"${lonelyCid}","index":0.*chunk failed verification`))
  const verify = await akmesh(['verify', '--data', nodeB.dataDir])
  t.is(verify.code, 0, verify.stdout + verify.stderr)
})

test.serial('a mirrored repository fetches blobs when their manifest is applied, without a client asking', async t => {
  const a = await identity(t)
  const b = await identity(t)
  const nodeA = await startTestNode(t, { dataDir: a.dataDir, peering: { allow: [b.peerId] } })
  const nodeB = await startTestNode(t, { dataDir: b.dataDir, peering: { allow: [a.peerId], bootstrap: [nodeA.meshAddr], replication: { files: 'mirror' } } })
  await waitFor(async () => await connected(nodeB, [a.peerId]), 'B connected to A')

  const bytes = deterministicBytes(3 * MiB + 1, 'xfer-mirror')
  const cid = await putFile(nodeA, 'm/app.bin', bytes)
  await waitFor(() => new RegExp(`"cid":"${cid}","size":${bytes.length},.*"msg":"blob fetched from the mesh"`).test(nodeB.output()), 'B to mirror the blob')
  t.is(sha256Hex(await readFile(blobPath(nodeB, cid))), sha256Hex(bytes))
  t.is(count(nodeB.output(), /"msg":"fetching blob from the mesh"/), 1)

  // What B measured of A survives a restart (saved at stop), in the API and in `akmesh peers list`.
  const profileOfA = async (): Promise<any> => {
    const res = await fetch(`${nodeB.url}/-/mesh/peers`, { headers: { authorization: `Bearer ${nodeB.adminToken}` } })
    return (await res.json() as { profiles: any[] }).profiles.find(p => p.peerId === a.peerId)
  }
  const measured = await profileOfA()
  t.true(measured?.bytesReceived >= bytes.length && measured?.throughputBps > 0, JSON.stringify(measured))
  await nodeB.restart()
  const kept = await profileOfA()
  t.like(kept, { bytesReceived: measured.bytesReceived, chunksReceived: measured.chunksReceived })
  t.true(kept.throughputBps > 0)
  await nodeB.stop()
  const listed = await akmesh(['peers', 'list', '--data', nodeB.dataDir])
  t.regex(listed.stdout, new RegExp(`profile   ${a.peerId} rtt .* MiB/s, received 3\\.0 MiB`))
})

test.serial('kill -9 during a fetch: after restart the transfer resumes from the chunks already verified, and fetches only the rest', async t => {
  const a = await identity(t)
  const b = await identity(t)
  // A's uploads are capped so the fetch is still running when B is killed.
  const nodeA = await startTestNode(t, { dataDir: a.dataDir, peering: { allow: [b.peerId], uploadBandwidth: 4 * MiB } })
  const nodeB = await startTestNode(t, { dataDir: b.dataDir, peering: { allow: [a.peerId], bootstrap: [nodeA.meshAddr], replication: { files: 'mirror' } } })
  await waitFor(async () => await connected(nodeB, [a.peerId]), 'B connected to A')

  const size = 24 * MiB + 99
  const bytes = deterministicBytes(size, 'xfer-resume')
  const cid = await putFile(nodeA, 'resume/app.bin', bytes)
  const transfers = async (): Promise<Array<{ cid: string, status: string, resumedChunks: number, sources: Record<string, { bytes: number }> }>> => {
    const res = await fetch(`${nodeB.url}/-/mesh/transfers`, { headers: { authorization: `Bearer ${nodeB.adminToken}` } })
    return (await res.json() as { transfers: any[] }).transfers.filter(x => x.cid === cid)
  }
  const received = (r: { sources: Record<string, { bytes: number }> }): number => Object.values(r.sources).reduce((n, s) => n + s.bytes, 0)
  await waitFor(async () => { const [r] = await transfers(); return r != null && received(r) >= 6 * MiB }, 'B to hold 6 MiB of the blob')
  await nodeB.kill9()
  t.false(await readFile(blobPath(nodeB, cid)).then(() => true, () => false), 'not committed before the kill')

  await nodeB.restart()
  await waitFor(async () => (await transfers())[0]?.status === 'done', 'B to finish the resumed fetch', 90_000)
  const [r] = await transfers()
  t.true(r.resumedChunks >= 5, `resumed with ${r.resumedChunks} chunks already verified`)
  t.true(received(r) <= size - r.resumedChunks * MiB + MiB, `after the restart B fetched ${received(r)} bytes of ${size}`)
  t.regex(nodeB.output(), /"msg":"resuming from chunks already here"/)
  t.is(sha256Hex(await readFile(blobPath(nodeB, cid))), sha256Hex(bytes))
  const res = await fetch(`${nodeB.url}/files/resume/app.bin`)
  t.is(sha256Hex(new Uint8Array(await res.arrayBuffer())), sha256Hex(bytes))
  await nodeB.stop()
  const verify = await akmesh(['verify', '--data', nodeB.dataDir])
  t.is(verify.code, 0, verify.stdout + verify.stderr)
})
