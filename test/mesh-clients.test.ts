// Issue 4 with real clients, nodes as separate processes over real TCP on 127.0.0.1: twine on A /
// pip through C, skopeo to A / skopeo from C, and the blob protocol refused to a peer outside the
// allowlist (with an allowed peer as the positive control).
import test, { type ExecutionContext } from 'ava'
import { readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { requireClient, run, type RunResult } from './helpers/clients.ts'
import { connectedTo, identity, queryIndex } from './helpers/mesh.ts'
import { startTestNode, waitFor, type TestNode } from './helpers/node.ts'
import { skopeoEnv } from './helpers/skopeo.ts'
import { OCI_TEST_CONFIG } from './helpers/oci-http.ts'
import { addImage, addLayer, blobPath, layoutRef, writeLayout } from './helpers/oci-image.ts'
import { buildDists, makeVenv, mustRun, pythonEnv, sharedPip } from './helpers/pypi-project.ts'
import { deterministicBytes, MiB, sha256Hex } from './helpers/streams.ts'

const count = (text: string, re: RegExp) => text.split('\n').filter(l => re.test(l)).length

interface BlobRow { cid: string, sha256: string, size: number, present: number }
/** Every blob a node's index knows (present or only known from a manifest). */
const blobsOf = async (node: TestNode): Promise<BlobRow[]> =>
  await queryIndex(node.dataDir, 'SELECT cid, sha256, size, present FROM blobs ORDER BY cid') as BlobRow[]

async function putFile (node: TestNode, path: string, body: Buffer): Promise<string> {
  const res = await fetch(`${node.url}/files/${path}`, { method: 'PUT', body, headers: { authorization: `Bearer ${node.adminToken}` } })
  if (res.status !== 201) throw new Error(`PUT ${path}: ${res.status} ${await res.text()}`)
  return (await res.json() as { cid: string }).cid
}

// ---------------------------------------------------------------------------------------------
// 1. twine upload on A, pip install from C (line A–B–C; B mirrors pypi, C is on-demand)

const PROJECT = { name: 'Mesh.Demo_Pkg', module: 'mesh_demo' }

async function pipInstall (t: ExecutionContext, python: string, node: TestNode, requirement: string, flags: string[]): Promise<{ python: string, out: RunResult }> {
  const venv = await makeVenv(t, python, { withPip: false })
  const out = await run(await sharedPip(python), ['-m', 'pip', '--python', venv, 'install', '--no-cache-dir',
    '--index-url', `${node.url}/pypi/simple/`, ...flags, requirement], { env: pythonEnv() })
  return { python: venv, out }
}

test.serial('twine upload on A, pip install from C: the files stream through C, which never held them (line A–B–C)', async t => {
  const twine = await requireClient(t, 'twine')
  const python = await requireClient(t, 'python3')
  if (twine == null || python == null) return
  const [a, b, c] = [await identity(t), await identity(t), await identity(t)]
  const nodeB = await startTestNode(t, { dataDir: b.dataDir, peering: { allow: [a.peerId, c.peerId], replication: { pypi: 'mirror' } } })
  const nodeA = await startTestNode(t, { dataDir: a.dataDir, peering: { allow: [b.peerId], bootstrap: [nodeB.meshAddr] } })
  // C accepts A's manifests (A is a member) but A refuses C: every byte reaches C through B.
  const nodeC = await startTestNode(t, { dataDir: c.dataDir, peering: { allow: [b.peerId, a.peerId], bootstrap: [nodeB.meshAddr] } })
  await waitFor(async () => await connectedTo(nodeB, a.peerId) && await connectedTo(nodeB, c.peerId), 'A and C connected to B')

  const { wheel, sdist } = await buildDists(t, python, { ...PROJECT, version: '1.0.0' })
  const up = await run(twine, ['upload', '--non-interactive', '--disable-progress-bar', '--repository-url', `${nodeA.url}/pypi/`,
    '-u', '__token__', '-p', nodeA.adminToken, wheel, sdist], { env: pythonEnv() })
  t.is(up.code, 0, up.stdout + up.stderr)
  const onA = await blobsOf(nodeA)
  t.true(onA.length >= 2 && onA.every(r => r.present === 1), JSON.stringify(onA))

  // C learns the release from B's forwarding of A's manifest, without any bytes.
  await waitFor(async () => {
    const res = await fetch(`${nodeC.url}/pypi/simple/mesh-demo-pkg/`)
    const page = res.status === 200 ? await res.text() : ''
    return page.includes('mesh_demo_pkg-1.0.0-py3-none-any.whl') && page.includes('mesh_demo_pkg-1.0.0.tar.gz')
  }, 'C’s simple page to list the wheel and the sdist', 60_000)
  // B mirrors every file of the release; C still holds none of them.
  await waitFor(async () => {
    const rows = await blobsOf(nodeB)
    return onA.every(x => rows.some(r => r.cid === x.cid && r.present === 1))
  }, 'B to mirror the release', 60_000)
  const cBefore = await blobsOf(nodeC)
  t.deepEqual(cBefore.map(r => r.cid).sort(), onA.map(r => r.cid).sort(), 'C knows exactly A’s blobs')
  t.true(cBefore.every(r => r.present === 0), JSON.stringify(cBefore))

  const fromWheel = await pipInstall(t, python, nodeC, 'mesh.demo-pkg', ['--only-binary', ':all:'])
  t.is(fromWheel.out.code, 0, fromWheel.out.stdout + fromWheel.out.stderr + nodeC.output().slice(-4000))
  t.regex(fromWheel.out.stdout, /Successfully installed mesh[.-]demo-pkg-1\.0\.0/i)
  t.is((await mustRun(fromWheel.python, ['-c', `import ${PROJECT.module}; print(${PROJECT.module}.describe(6))`])).stdout.trim(), '1.0.0: 6*7=42')

  const fromSdist = await pipInstall(t, python, nodeC, 'Mesh_Demo.Pkg==1.0.0', ['--no-binary', ':all:', '--no-build-isolation'])
  t.is(fromSdist.out.code, 0, fromSdist.out.stdout + fromSdist.out.stderr + nodeC.output().slice(-4000))
  t.is((await mustRun(fromSdist.python, ['-c', `import ${PROJECT.module}; print(${PROJECT.module}.describe(5))`])).stdout.trim(), '1.0.0: 5*7=35')

  // pip's downloads were answered by C, which fetched each file from the mesh (from B) as it streamed.
  for (const f of ['mesh_demo_pkg-1.0.0-py3-none-any.whl', 'mesh_demo_pkg-1.0.0.tar.gz']) {
    t.regex(nodeC.output(), new RegExp(`"url":"/pypi/packages/mesh-demo-pkg/${f.replace(/\./g, '\\.')}","status":200`), f)
  }
  const wheelSha = sha256Hex(await readFile(wheel))
  const sdistSha = sha256Hex(await readFile(sdist))
  for (const sha of [wheelSha, sdistSha]) {
    const row = onA.find(r => r.sha256 === sha)
    t.truthy(row, `A holds the file with sha256 ${sha}`)
    if (row != null) t.is(count(nodeC.output(), new RegExp(`"cid":"${row.cid}".*"msg":"fetching blob from the mesh"`)), 1, `C fetched ${row.cid} once`)
  }
  await waitFor(async () => {
    const rows = await blobsOf(nodeC)
    return [wheelSha, sdistSha].every(sha => rows.some(r => r.sha256 === sha && r.present === 1))
  }, 'C to commit the files it streamed')
  t.false(await connectedTo(nodeC, a.peerId), 'C never connected to A')
  // Byte-identical to what twine uploaded, now served from C's disk.
  const again = await fetch(`${nodeC.url}/pypi/packages/mesh-demo-pkg/mesh_demo_pkg-1.0.0-py3-none-any.whl`)
  t.is(again.status, 200)
  t.is(sha256Hex(new Uint8Array(await again.arrayBuffer())), wheelSha)
})

// ---------------------------------------------------------------------------------------------
// 2. skopeo copy to A, skopeo copy from C (A, B, C all connected; C on-demand)

test.serial('skopeo copy to A, skopeo copy from C: identical manifest and layer digests (C on-demand, A–B–C all connected)', async t => {
  if (await requireClient(t, 'skopeo') == null) return
  const [a, b, c] = [await identity(t), await identity(t), await identity(t)]
  const nodeA = await startTestNode(t, { dataDir: a.dataDir, config: OCI_TEST_CONFIG, peering: { allow: [b.peerId, c.peerId] } })
  const nodeB = await startTestNode(t, { dataDir: b.dataDir, config: OCI_TEST_CONFIG, peering: { allow: [a.peerId, c.peerId], bootstrap: [nodeA.meshAddr] } })
  const nodeC = await startTestNode(t, { dataDir: c.dataDir, config: OCI_TEST_CONFIG, peering: { allow: [a.peerId, b.peerId], bootstrap: [nodeA.meshAddr, nodeB.meshAddr] } })
  await waitFor(async () => await connectedTo(nodeC, a.peerId) && await connectedTo(nodeC, b.peerId) && await connectedTo(nodeB, a.peerId), 'A, B and C connected')
  const cl = await skopeoEnv(t, [nodeA, nodeB, nodeC])

  const layout = join(tmpdir(), `akmesh-oci-layout-${Math.random().toString(36).slice(2)}`)
  t.teardown(async () => { await rm(layout, { recursive: true, force: true }) })
  const layers = [
    await addLayer(layout, { 'etc/os-release': 'ID=akmesh-mesh\n', 'bin/tool': { random: 300_000 } }),
    await addLayer(layout, { 'usr/lib/libbig.so': { random: 3_000_000 } }),
    await addLayer(layout, { 'app/main.js': 'console.log("mesh")\n', 'app/data.bin': { random: 80_000 } })
  ]
  const image = await addImage(layout, layers)
  await writeLayout(layout, { '1': image.manifest })

  const hostA = new URL(nodeA.url).host
  const hostC = new URL(nodeC.url).host
  const push = await cl.skopeo(['copy', '--dest-tls-verify=false', '--dest-creds', `admin:${nodeA.adminToken}`, `oci:${layout}:1`, `docker://${hostA}/docker/mesh/app:1`])
  t.is(push.code, 0, push.stderr + push.stdout)

  // C learns the tag from A's manifests; then reads everything through its own registry.
  await waitFor(async () => {
    const res = await fetch(`${nodeC.url}/v2/docker/mesh/app/tags/list`)
    return res.status === 200 && ((await res.json()) as { tags?: string[] }).tags?.includes('1') === true
  }, 'C to list tag 1 of docker/mesh/app', 60_000)
  const cBefore = await blobsOf(nodeC)
  t.true(cBefore.length > 0 && cBefore.every(r => r.present === 0), JSON.stringify(cBefore))

  const out = join(cl.dir, 'out')
  const pull = await cl.skopeo(['copy', '--src-tls-verify=false', `docker://${hostC}/docker/mesh/app:1`, `oci:${out}:1`])
  t.is(pull.code, 0, pull.stderr + pull.stdout + '\n--- C log tail ---\n' + nodeC.output().slice(-6000))
  if (pull.code === 0) {
    const back = await layoutRef(out, '1')
    t.is(back.digest, image.manifest.digest, 'manifest digest')
    t.deepEqual(await readFile(blobPath(out, back.digest)), image.manifestBytes, 'manifest bytes')
    const pulled = JSON.parse((await readFile(blobPath(out, back.digest))).toString()) as { config: { digest: string }, layers: Array<{ digest: string }> }
    t.deepEqual(pulled.layers.map(l => l.digest), image.layers.map(l => l.digest), 'layer digests')
    t.is(pulled.config.digest, image.config.digest, 'config digest')
    for (const l of image.layers) t.deepEqual(await readFile(blobPath(out, l.digest)), await readFile(blobPath(layout, l.digest)), l.digest)
  }
  const inspect = await cl.skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${hostC}/docker/mesh/app:1`])
  t.is(inspect.code, 0, inspect.stderr)
  t.is(inspect.stdout, image.manifestBytes.toString())
  t.regex(nodeC.output(), /"msg":"fetching blob from the mesh"/)
  // Every layer C served is now held by C, byte-identical (sha256 = the layer digest).
  const cAfter = await blobsOf(nodeC)
  for (const l of image.layers) {
    t.true(cAfter.some(r => `sha256:${r.sha256}` === l.digest && r.present === 1), `C holds layer ${l.digest}`)
  }
})

// ---------------------------------------------------------------------------------------------
// 4. The blob protocol: an outsider gets no chunk; an allowed peer gets the verified chunk.

test.serial('a peer outside A’s allowlist gets no chunk over the blob protocol; an allowed peer gets the verified chunk', async t => {
  const { generateKeyPair } = await import('@libp2p/crypto/keys')
  const { peerIdFromPrivateKey, peerIdFromString } = await import('@libp2p/peer-id')
  const { multiaddr } = await import('@multiformats/multiaddr')
  const { createBLAKE3 } = await import('hash-wasm')
  const { createMeshLibp2p } = await import('../mesh/libp2p.ts')
  const { BlobClient, blobProtocol } = await import('../mesh/transfer.ts')

  const insiderKey = await generateKeyPair('Ed25519')
  const outsiderKey = await generateKeyPair('Ed25519')
  const insider = peerIdFromPrivateKey(insiderKey).toString()
  const outsider = peerIdFromPrivateKey(outsiderKey).toString()
  const a = await identity(t)
  const nodeA = await startTestNode(t, { dataDir: a.dataDir, peering: { allow: [insider] } })
  const bytes = deterministicBytes(3 * MiB + 4321, 'allowlist-chunk')
  const cid = await putFile(nodeA, 'secret/blob.bin', bytes)

  const blake3 = async (b: Uint8Array) => { const h = await createBLAKE3(); h.init(); h.update(b); return Buffer.from(h.digest('binary')) }
  const peerA = peerIdFromString(a.peerId)
  // Each side allows A (the outsider's own allowlist is not what stops it: A's is).
  const start = async (key: typeof insiderKey) => {
    const node = await createMeshLibp2p({ privateKey: key, mesh: 'default', listen: ['/ip4/127.0.0.1/tcp/0'], isAllowed: () => true })
    t.teardown(async () => { await node.stop() })
    await node.peerStore.merge(peerA, { multiaddrs: [multiaddr(nodeA.meshAddr)] })
    return node
  }

  // libp2p rejects a dial whose connection the remote closed during the upgrade with the close
  // event itself (a StreamCloseEvent), not an Error.
  const describe = (err: any): string => err instanceof Error ? err.message : `${err?.constructor?.name ?? typeof err} ${err?.type ?? ''}${err?.error != null ? `: ${err.error.message}` : ''}`
  // Outsider: the connection gater on A refuses it after Noise, so no stream ever opens.
  const out = await start(outsiderKey)
  const outClient = new BlobClient(out, 'default')
  let received = 0
  const attempts: string[] = []
  for (const attempt of [
    async () => await outClient.chunk(peerA, cid, 1, AbortSignal.timeout(20_000)),
    async () => await outClient.table(peerA, cid, AbortSignal.timeout(20_000)),
    async () => await outClient.have(peerA, cid, AbortSignal.timeout(20_000))
  ]) {
    try {
      const got = await attempt()
      received += got == null ? 0 : Array.isArray(got) ? got.length : got.byteLength
      attempts.push('answered')
    } catch (err: any) {
      attempts.push(describe(err))
    }
  }
  // A raw dial of the protocol by address, outside BlobClient: refused too.
  try {
    const stream = await out.dialProtocol(multiaddr(nodeA.meshAddr), blobProtocol('default'), { signal: AbortSignal.timeout(20_000) })
    attempts.push('raw stream opened')
    stream.abort(new Error('test'))
  } catch (err: any) {
    attempts.push(`raw: ${describe(err)}`)
  }
  t.log(attempts)
  t.is(received, 0, 'no bytes reached the outsider')
  t.false(attempts.some(x => x === 'answered' || x === 'raw stream opened'), attempts.join('\n'))
  t.deepEqual(out.getConnections(peerA), [])
  t.false((await fetch(`${nodeA.url}/-/mesh/peers`, { headers: { authorization: `Bearer ${nodeA.adminToken}` } }).then(async r => await r.json()) as { peers: Array<{ peerId: string }> })
    .peers.some(p => p.peerId === outsider))

  // Insider: the same requests succeed, and the chunk verifies against the table.
  const ins = await start(insiderKey)
  const inClient = new BlobClient(ins, 'default')
  const have = await inClient.have(peerA, cid, AbortSignal.timeout(20_000))
  t.truthy(have)
  const table = await inClient.table(peerA, cid, AbortSignal.timeout(20_000))
  t.is(table.length, 4)
  const chunk = await inClient.chunk(peerA, cid, 1, AbortSignal.timeout(20_000))
  t.deepEqual(Buffer.from(chunk), bytes.subarray(MiB, 2 * MiB))
  t.deepEqual(await blake3(chunk), Buffer.from(table[1]))
  const last = await inClient.chunk(peerA, cid, 3, AbortSignal.timeout(20_000))
  t.deepEqual(Buffer.from(last), bytes.subarray(3 * MiB))
  t.deepEqual(await blake3(last), Buffer.from(table[3]))
})
