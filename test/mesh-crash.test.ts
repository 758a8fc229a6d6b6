// kill -9 of a node in the middle of mesh transfers (line A–B–C, separate processes, real TCP on
// 127.0.0.1): B mirrors A's files and npm tarballs over a throttled link while C streams one of
// them through B; B is SIGKILLed mid-transfer and restarted on the same data dir and ports. Then
// every node converges (same artifacts, every blob downloadable everywhere with the right bytes)
// and `akmesh verify` is clean on A, B and C.
import test from 'ava'
import { readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { connectedTo, identity, packument, queryIndex, rawPublish } from './helpers/mesh.ts'
import { akmesh, makeTempDir, startTestNode, waitFor, type TestNode } from './helpers/node.ts'
import { freePort, throttleProxy, viaPort } from './helpers/throttle.ts'
import { deterministicBytes, MiB, sha256Hex } from './helpers/streams.ts'

/** Each direction of each mesh link to B: fast enough for a short test, slow enough that the
 *  kill lands in the middle of the transfers whatever the machine's speed. */
const LINK = 6 * MiB

async function putFile (node: TestNode, path: string, body: Buffer): Promise<string> {
  const res = await fetch(`${node.url}/files/${path}`, { method: 'PUT', body, headers: { authorization: `Bearer ${node.adminToken}` } })
  if (res.status !== 201) throw new Error(`PUT ${path}: ${res.status} ${await res.text()}`)
  return (await res.json() as { cid: string }).cid
}

async function tempBytes (dataDir: string): Promise<number> {
  let total = 0
  for (const f of await readdir(join(dataDir, 'tmp')).catch(() => [] as string[])) total += (await stat(join(dataDir, 'tmp', f)).catch(() => ({ size: 0 }))).size
  return total
}

interface BlobRow { cid: string, present: number }
const blobsOf = async (node: TestNode): Promise<BlobRow[]> =>
  await queryIndex(node.dataDir, 'SELECT cid, present FROM blobs ORDER BY cid') as BlobRow[]
/** repo name@version filename cid of every live artifact file: what "the same artifact set" means. */
const artifactsOf = async (node: TestNode): Promise<string[]> =>
  (await queryIndex(node.dataDir, "SELECT a.repo || ' ' || a.name || '@' || a.version || ' ' || f.filename || ' ' || f.cid AS x FROM artifacts a JOIN files f ON f.artifact_id = a.id ORDER BY x") as Array<{ x: string }>).map(r => r.x)

/** B's log says it committed `cid` from the mesh. */
const fetchedOnce = (node: TestNode, cid: string): boolean =>
  node.output().split('\n').some(l => l.includes(`"cid":"${cid}"`) && l.includes('"msg":"blob fetched from the mesh"'))

/** GET with the whole body; a failed or cut body is reported, never thrown. */
async function download (url: string): Promise<{ status: number, sha256?: string, error?: string }> {
  try {
    const res = await fetch(url)
    const body = new Uint8Array(await res.arrayBuffer())
    return { status: res.status, sha256: res.status === 200 ? sha256Hex(body) : undefined }
  } catch (err: any) {
    return { status: -1, error: String(err?.cause?.message ?? err?.message ?? err) }
  }
}

test.serial('kill -9 of B while it mirrors A’s blobs and streams one to C: after restart A, B and C converge and verify clean', async t => {
  const [a, b, c] = [await identity(t), await identity(t), await identity(t)]
  const nodeA = await startTestNode(t, { dataDir: a.dataDir, peering: { allow: [b.peerId] } })
  // B restarts on the same mesh port: C's bootstrap address (through the proxy) stays valid.
  const bMeshPort = await freePort()
  const ab = await throttleProxy(t, () => Number(/\/tcp\/(\d+)\//.exec(nodeA.meshAddr)?.[1]), LINK)
  const nodeB = await startTestNode(t, {
    dataDir: b.dataDir,
    meshPort: bMeshPort,
    peering: { allow: [a.peerId, c.peerId], bootstrap: [viaPort(nodeA.meshAddr, ab.port)], replication: { files: 'mirror', npm: 'mirror' } }
  })
  const bc = await throttleProxy(t, () => bMeshPort, LINK)
  // C: on-demand; accepts A's manifests but A refuses C, so C's bytes all come through B.
  const nodeC = await startTestNode(t, { dataDir: c.dataDir, peering: { allow: [b.peerId, a.peerId], bootstrap: [viaPort(nodeB.meshAddr, bc.port)] } })
  await waitFor(async () => await connectedTo(nodeB, a.peerId) && await connectedTo(nodeB, c.peerId), 'A and C connected to B')

  // Published on A: generic files (the first is what C will stream) and npm tarballs.
  const files = [
    { path: 'rel/first.bin', bytes: deterministicBytes(8 * MiB + 3, 'crash-first') },
    { path: 'rel/two.bin', bytes: deterministicBytes(12 * MiB + 5, 'crash-two') },
    { path: 'rel/three.bin', bytes: deterministicBytes(16 * MiB + 7, 'crash-three') },
    { path: 'rel/four.bin', bytes: deterministicBytes(6 * MiB + 11, 'crash-four') }
  ]
  const cids: Record<string, string> = {}
  for (const f of files) cids[f.path] = await putFile(nodeA, f.path, f.bytes)
  const root = await makeTempDir(t)
  const tarballs: Array<{ path: string, sha256: string }> = []
  for (const [name, version] of [['crash-pkg', '1.0.0'], ['crash-pkg', '1.1.0'], ['@mesh/crash-lib', '2.0.0']]) {
    const tgz = await rawPublish(nodeA, root, name, version, { description: deterministicBytes(200_000, `${name}@${version}`).toString('base64') })
    const tarball = (await packument(nodeA, name)).versions[version].dist.tarball as string
    tarballs.push({ path: new URL(tarball).pathname, sha256: sha256Hex(tgz) })
  }
  const urls = (node: TestNode) => [
    ...files.map(f => ({ url: `${node.url}/files/${f.path}`, sha256: sha256Hex(f.bytes) })),
    ...tarballs.map(p => ({ url: `${node.url}${p.path}`, sha256: p.sha256 }))
  ]
  const expectedArtifacts = await artifactsOf(nodeA)
  t.is(expectedArtifacts.length, files.length + tarballs.length)
  const allCids = (await blobsOf(nodeA)).map(r => r.cid)
  t.is(allCids.length, files.length + tarballs.length)

  // B mirrors (two at a time over the 6 MiB/s link). Once it holds first.bin, C streams it
  // through B (another 6 MiB/s link); B dies when C has part of it and B has received more of
  // the other blobs (counted on the A→B link, whatever B does with partial bytes).
  const first = cids['rel/first.bin']
  await waitFor(() => fetchedOnce(nodeB, first), 'B to mirror first.bin', 120_000)
  const linkAtFirst = ab.down()
  await waitFor(async () => {
    const res = await fetch(`${nodeC.url}/files/rel/`)
    return res.status === 200 && (await res.text()).includes('first.bin')
  }, 'C to know first.bin')
  let streamed = 0
  let cDone: unknown
  const cRead = (async () => {
    const res = await fetch(`${nodeC.url}/files/rel/first.bin`)
    if (res.status !== 200) return { status: res.status, bytes: 0, error: await res.text() }
    const reader = res.body!.getReader()
    const pieces: Uint8Array[] = []
    try {
      for (;;) {
        const { done, value } = await reader.read()
        if (done) break
        pieces.push(value)
        streamed += value.byteLength
      }
      const body = Buffer.concat(pieces)
      return { status: 200, bytes: body.length, sha256: sha256Hex(body) }
    } catch (err: any) {
      return { status: 200, bytes: streamed, error: String(err?.cause?.message ?? err?.message ?? err) }
    }
  })().then(r => { cDone = r; return r })
  const killAt = await waitFor(async (): Promise<{ streamed: number, link: number, tmp: number } | undefined> => {
    const link = ab.down() - linkAtFirst
    return streamed >= MiB && link >= MiB ? { streamed, link, tmp: await tempBytes(nodeB.dataDir) } : undefined
  }, 'C to stream 1 MiB of first.bin while B receives more of the other blobs', 120_000).catch((err: Error) => {
    throw new Error(`${err.message}: C's client has ${streamed} bytes (${JSON.stringify(cDone ?? 'still reading')}); ${ab.down() - linkAtFirst} bytes A→B since first.bin`)
  }) as { streamed: number, link: number, tmp: number }
  await nodeB.kill9()
  const mirroredBefore = allCids.filter(cid => fetchedOnce(nodeB, cid)).length
  t.log(`SIGKILL B with ${(killAt.link / MiB).toFixed(1)} MiB received from A since first.bin (${(killAt.tmp / MiB).toFixed(1)} MiB in data/tmp), ${(killAt.streamed / MiB).toFixed(1)} MiB of first.bin at the client of C, ${mirroredBefore}/${allCids.length} blobs mirrored`)
  t.true(mirroredBefore < allCids.length, 'B died before it mirrored everything')
  const interrupted = await cRead
  t.log('client of C during the kill:', interrupted)
  // The client of C must never get wrong bytes: either the body is cut (an error) or it is whole and right.
  if (interrupted.error == null) t.is(interrupted.sha256, sha256Hex(files[0].bytes), 'a complete body is the right one')
  // Usually partial temp files are left (a blob may also have just been renamed into place).
  t.log(`B's data/tmp after the kill: ${((await tempBytes(nodeB.dataDir)) / MiB).toFixed(1)} MiB`)

  // Same data dir, same HTTP and mesh ports.
  const restartedAt = nodeB.output().length
  await nodeB.restart()
  t.deepEqual(await readdir(join(nodeB.dataDir, 'tmp')), [], 'B swept its temp files at start')
  await waitFor(async () => await connectedTo(nodeB, a.peerId) && await connectedTo(nodeB, c.peerId), 'A and C connected to the restarted B', 90_000)

  // Mirror policy: B ends up holding every blob by itself, without any client asking.
  let bHoldsAll = false
  try {
    await waitFor(async () => { const rows = await blobsOf(nodeB); return rows.length === allCids.length && rows.every(r => r.present === 1) }, 'B to finish mirroring after the restart', 60_000)
    bHoldsAll = true
  } catch {}
  const bRows = await blobsOf(nodeB)
  t.true(bHoldsAll, `after the restart B (mirror) should fetch the blobs the kill interrupted; still absent on B: ${JSON.stringify(bRows.filter(r => r.present === 0).map(r => r.cid))}` +
    `\n--- B log since the restart, lines about blobs (none means no fetch was even started) ---\n${nodeB.output().slice(restartedAt).split('\n').filter(l => /mesh:fetch|blob/.test(l)).slice(-15).join('\n')}`)

  // Convergence: same artifacts everywhere, every blob downloadable from every node, right bytes.
  for (const node of [nodeB, nodeC]) {
    await waitFor(async () => JSON.stringify(await artifactsOf(node)) === JSON.stringify(expectedArtifacts), `${node === nodeB ? 'B' : 'C'} to hold A’s artifacts`, 60_000)
  }
  for (const [name, node] of [['A', nodeA], ['B', nodeB], ['C', nodeC]] as const) {
    t.deepEqual(await artifactsOf(node), expectedArtifacts, `${name}'s artifacts`)
    for (const u of urls(node)) {
      // C can only stream what B holds; a 503 (no source yet) is retried, nothing else is.
      let got = await download(u.url)
      for (let i = 0; i < 20 && got.status === 503; i++) {
        t.log(`${name}: 503 from ${u.url}, retrying; the node's last fetch lines:\n${node.output().split('\n').filter(l => l.includes('mesh:fetch') || l.includes('"level":50')).slice(-6).join('\n')}`)
        await new Promise(resolve => setTimeout(resolve, 3000))
        got = await download(u.url)
      }
      t.deepEqual(got, { status: 200, sha256: u.sha256 }, `${name}: ${u.url}`)
    }
  }
  for (const [name, node] of [['A', nodeA], ['B', nodeB], ['C', nodeC]] as const) {
    await waitFor(async () => (await blobsOf(node)).every(r => r.present === 1), `${name} to commit every blob it served`, 60_000)
    t.deepEqual((await blobsOf(node)).map(r => r.cid), [...allCids].sort(), `${name} holds every blob`)
  }

  // verify: while running (the CLI reads the store beside the node), then after a clean stop.
  for (const [name, node] of [['A', nodeA], ['B', nodeB], ['C', nodeC]] as const) {
    const live = await akmesh(['verify', '--data', node.dataDir])
    t.is(live.code, 0, `${name} (running): ${live.stdout}${live.stderr}`)
    t.regex(live.stdout, new RegExp(`checked ${allCids.length} blobs .*all intact`), name)
  }
  for (const [name, node] of [['A', nodeA], ['B', nodeB], ['C', nodeC]] as const) {
    await node.stop()
    const after = await akmesh(['verify', '--data', node.dataDir])
    t.is(after.code, 0, `${name} (stopped): ${after.stdout}${after.stderr}`)
    t.regex(after.stdout, new RegExp(`checked ${allCids.length} blobs .*all intact`), name)
  }
  t.log(`link bytes: A→B ${(ab.down() / MiB).toFixed(1)} MiB, B→C ${(bc.down() / MiB).toFixed(1)} MiB`)
})
