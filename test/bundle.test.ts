// Two sites of one mesh that never connect, kept in sync by carried bundles (issue 6). Site A is
// one node; site B is two connected nodes, B1 (where bundles are carried to and from) and B2.
// Each site publishes npm, PyPI, OCI and generic artifacts; A's bundle is imported into the
// running B1 (through its admin API), which gossips it on to B2; B1's bundle is imported into A's
// data directory while A is stopped. Then both sites hold the same things and real clients
// (npm, pip, skopeo) install on the far side, on B2 through the mesh.
import test from 'ava'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { allSigned, blockOffsets, exportBundle, holdings, importBundle, inventory } from './helpers/bundle.ts'
import { requireClient, run } from './helpers/clients.ts'
import { connectedTo, hasVersion, identity, rawPublish } from './helpers/mesh.ts'
import { makeTempDir, startTestNode, waitFor, type TestNode } from './helpers/node.ts'
import { skopeoEnv } from './helpers/skopeo.ts'
import { npmClient, runNode, writeProject } from './helpers/npm-client.ts'
import { pushImage } from './helpers/oci-http.ts'
import { addImage, addLayer, blobPath, layoutRef, writeLayout } from './helpers/oci-image.ts'
import { makeWheel, upload, uploadForm } from './helpers/pypi-dists.ts'
import { buildDists, makeVenv, mustRun, pythonEnv, sharedPip } from './helpers/pypi-project.ts'
import { deterministicBytes } from './helpers/streams.ts'

async function putFile (node: TestNode, path: string, body: Buffer): Promise<void> {
  const res = await fetch(`${node.url}/files/${path}`, { method: 'PUT', body, headers: { authorization: `Bearer ${node.adminToken}` } })
  if (res.status !== 201) throw new Error(`PUT ${path}: ${res.status} ${await res.text()}`)
}

test.serial('two sites that never connect exchange bundles both ways: identical holdings, real clients install on the far side', async t => {
  const npmPath = await requireClient(t, 'npm')
  const twine = await requireClient(t, 'twine')
  const python = await requireClient(t, 'python3')
  const skopeoPath = await requireClient(t, 'skopeo')
  if (npmPath == null || twine == null || python == null || skopeoPath == null) return
  const [a, b1, b2] = [await identity(t), await identity(t), await identity(t)]
  const members = [a.peerId, b1.peerId, b2.peerId]
  const others = (me: string) => members.filter(m => m !== me)
  // One mesh (one membership list), two sites: A is never dialed by B1 or B2, nor dials them.
  const nodeA = await startTestNode(t, { dataDir: a.dataDir, peering: { allow: others(a.peerId) } })
  const nodeB1 = await startTestNode(t, { dataDir: b1.dataDir, peering: { allow: others(b1.peerId) } })
  const nodeB2 = await startTestNode(t, { dataDir: b2.dataDir, peering: { allow: others(b2.peerId), bootstrap: [nodeB1.meshAddr] } })
  await waitFor(async () => await connectedTo(nodeB2, b1.peerId), 'B2 connected to B1')
  const root = await makeTempDir(t)

  // Site A: npm, PyPI (twine), OCI (skopeo), generic.
  await rawPublish(nodeA, root, 'alpha-lib', '1.0.0')
  const { wheel, sdist } = await buildDists(t, python, { name: 'Air.Demo', module: 'air_demo', version: '1.0.0' })
  const up = await run(twine, ['upload', '--non-interactive', '--disable-progress-bar', '--repository-url', `${nodeA.url}/pypi/`,
    '-u', '__token__', '-p', nodeA.adminToken, wheel, sdist], { env: pythonEnv() })
  t.is(up.code, 0, up.stdout + up.stderr)
  const cl = await skopeoEnv(t, [nodeA, nodeB1, nodeB2])
  const layout = join(root, 'layout')
  const image = await addImage(layout, [
    await addLayer(layout, { 'etc/os-release': 'ID=air\n', 'bin/tool': { random: 200_000 } }),
    await addLayer(layout, { 'app/data.bin': { random: 1_500_000 } })
  ])
  await writeLayout(layout, { '1': image.manifest })
  const push = await cl.skopeo(['copy', '--dest-tls-verify=false', '--dest-creds', `admin:${nodeA.adminToken}`, `oci:${layout}:1`, `docker://${new URL(nodeA.url).host}/docker/air/app:1`])
  t.is(push.code, 0, push.stderr)
  const fileA = deterministicBytes(1_300_000, 'site-a-file')
  await putFile(nodeA, 'air/a.bin', fileA)

  // Site B1: npm, PyPI (the upload twine sends), OCI (registry API), generic.
  await rawPublish(nodeB1, root, 'beta-lib', '2.0.0')
  const wheelB = await makeWheel('beta-py', '0.1.0')
  t.is((await upload(nodeB1, await uploadForm(wheelB, 'beta-py', '0.1.0'))).status, 200)
  const imageB = await pushImage(nodeB1, 'docker/beta/app', 'v2', { layers: ['beta layer one', 'beta layer two'] })
  const fileB = deterministicBytes(700_000, 'site-b-file')
  await putFile(nodeB1, 'air/b.bin', fileB)
  await allSigned(nodeA)
  await allSigned(nodeB1)

  // A → B1 (running: through its admin API), carried as a file.
  const aBundle = join(root, 'a-to-b.car')
  const ea = await exportBundle(a.dataDir, aBundle, ['--to', 'site-b'])
  t.is(ea.code, 0, ea.stderr)
  t.regex(ea.stdout, /exported \d+ manifests and \d+ blobs/)
  // Beside a running node, import refuses to write the data directory behind its back...
  const behind = await importBundle(b1.dataDir, aBundle)
  t.not(behind.code, 0)
  t.regex(behind.stderr, /has .* open \(a running node\?\): pass --url/)
  // ...and through the node, a damaged copy is rejected and nothing of it is served.
  const damaged = join(root, 'damaged.car')
  const good = await readFile(aBundle)
  const flipped = Buffer.from(good)
  const largest = (await blockOffsets(aBundle)).reduce((x, y) => y.blockLength > x.blockLength ? y : x)
  flipped[largest.blockOffset + (largest.blockLength >> 1)] ^= 0xff
  await writeFile(damaged, flipped)
  const bad = await importBundle(b1.dataDir, damaged, { node: nodeB1 })
  t.not(bad.code, 0)
  t.regex(bad.stderr, new RegExp(`bundle rejected, nothing imported: chunk \\d+ of blob \\w+: block ${largest.cid} does not match its CID`))
  t.false(await hasVersion(nodeB1, 'alpha-lib', '1.0.0'))
  const ib = await importBundle(b1.dataDir, aBundle, { node: nodeB1 })
  t.is(ib.code, 0, ib.stderr)
  t.regex(ib.stdout, /^added +12D3KooW\w+\/\d+ publish npm alpha-lib@1\.0\.0$/m)
  t.regex(ib.stdout, / 0 skipped, 0 not applied; blobs: \d+ added/)
  // B1 gossiped A's manifests, signed by A, on to B2.
  await waitFor(async () => await hasVersion(nodeB2, 'alpha-lib', '1.0.0'), 'B2 to learn alpha-lib from B1’s gossip')

  // B1 → A (stopped: straight into its data directory).
  const bBundle = join(root, 'b-to-a.car')
  const eb = await exportBundle(b1.dataDir, bBundle, ['--to', 'site-a'])
  t.is(eb.code, 0, eb.stderr)
  await nodeA.stop()
  const ia = await importBundle(a.dataDir, bBundle)
  t.is(ia.code, 0, ia.stderr)
  t.regex(ia.stdout, /^added +12D3KooW\w+\/\d+ publish npm beta-lib@2\.0\.0$/m)
  t.regex(ia.stdout, /^skipped +12D3KooW\w+\/\d+ publish npm alpha-lib@1\.0\.0$/m, 'A’s own manifests come back as skipped')
  await nodeA.restart()

  // Both sites now hold the same manifests (all origins) and the same blobs.
  const invA = await inventory(a.dataDir)
  const invB = await inventory(b1.dataDir)
  t.deepEqual(holdings(invA), holdings(invB))
  t.deepEqual(Object.keys(invA.manifests).sort(), [a.peerId, b1.peerId].sort())

  // A second import of the same bundle changes nothing.
  const again = await importBundle(b1.dataDir, aBundle, { node: nodeB1 })
  t.is(again.code, 0, again.stderr)
  t.regex(again.stdout, / 0 added, \d+ skipped, 0 not applied; blobs: 0 added/)
  t.deepEqual(holdings(await inventory(b1.dataDir)), holdings(invB))

  // Real clients on the far side. npm on B2: the tarball comes from B1 through the mesh.
  const npmB2 = await npmClient(t, nodeB2)
  const npmA = await npmClient(t, nodeA)
  if (npmB2 == null || npmA == null) return
  const projectB = await writeProject(t)
  const installed = await npmB2.run(['install', 'alpha-lib@1.0.0'], { cwd: projectB })
  t.is(installed.code, 0, installed.stderr)
  t.is((await runNode(projectB, 'console.log(require("alpha-lib"))')).stdout.trim(), '42')
  const projectA = await writeProject(t)
  const installedA = await npmA.run(['install', 'beta-lib@2.0.0'], { cwd: projectA })
  t.is(installedA.code, 0, installedA.stderr)
  t.is((await runNode(projectA, 'console.log(require("beta-lib"))')).stdout.trim(), '42')

  // pip on B1: A's wheel, installed and run.
  const venv = await makeVenv(t, python, { withPip: false })
  const pip = await run(await sharedPip(python), ['-m', 'pip', '--python', venv, 'install', '--no-cache-dir', '--only-binary', ':all:',
    '--index-url', `${nodeB1.url}/pypi/simple/`, 'air.demo==1.0.0'], { env: pythonEnv() })
  t.is(pip.code, 0, pip.stdout + pip.stderr)
  t.is((await mustRun(venv, ['-c', 'import air_demo; print(air_demo.describe(6))'])).stdout.trim(), '1.0.0: 6*7=42')
  // ...and B1's wheel is listed on A.
  t.regex(await (await fetch(`${nodeA.url}/pypi/simple/beta-py/`)).text(), /beta_py-0\.1\.0-py3-none-any\.whl/)

  // skopeo from B1: A's image, byte for byte; B1's image manifest from A.
  const out = join(cl.dir, 'out')
  const pull = await cl.skopeo(['copy', '--src-tls-verify=false', `docker://${new URL(nodeB1.url).host}/docker/air/app:1`, `oci:${out}:1`])
  t.is(pull.code, 0, pull.stderr)
  const back = await layoutRef(out, '1')
  t.is(back.digest, image.manifest.digest)
  for (const l of image.layers) t.deepEqual(await readFile(blobPath(out, l.digest)), await readFile(blobPath(layout, l.digest)))
  const inspect = await cl.skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${new URL(nodeA.url).host}/docker/beta/app:v2`])
  t.is(inspect.code, 0, inspect.stderr)
  t.is(inspect.stdout, imageB.bytes.toString())

  // Generic files, both ways.
  t.deepEqual(Buffer.from(await (await fetch(`${nodeB1.url}/files/air/a.bin`)).arrayBuffer()), fileA)
  t.deepEqual(Buffer.from(await (await fetch(`${nodeA.url}/files/air/b.bin`)).arrayBuffer()), fileB)

  // B2 (on-demand) holds A's manifests but not most of their blobs: its export says which are
  // missing, and --allow-missing bundles the manifests with those blobs listed as absent.
  const fromB2 = join(root, 'b2.car')
  const refused = await exportBundle(b2.dataDir, fromB2)
  t.not(refused.code, 0)
  t.regex(refused.stderr, /blob\(s\) the selected manifests name are not held here.*--allow-missing/s)
  const partial = await exportBundle(b2.dataDir, fromB2, ['--allow-missing', '--json'])
  t.is(partial.code, 0, partial.stderr)
  t.true(JSON.parse(partial.stdout).absent > 0)
})
