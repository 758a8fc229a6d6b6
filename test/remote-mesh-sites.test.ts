// Three sites meshed over TCP, each with a remote npm repository over the same Verdaccio: the
// mesh shares the cache. After site A installs a tree, B and C install it at once with no
// tarball request of their own at Verdaccio (blob bytes from upstream once per mesh, not once per
// site): the tarballs' manifests reach them by replication or, when that has not caught up, by
// the lookup a remote repository makes before going upstream (mesh/lookup.ts). And when the only
// site holding a tarball is stopped, B goes upstream instead of hanging or failing. The three
// installing at the same moment still fetch each tarball once (mesh/lookup.ts: a peer fetching it
// makes the others wait for its copy).
import test from 'ava'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { connectedTo, identity, type Identity } from './helpers/mesh.ts'
import { createHash } from 'node:crypto'
import { freePort, hookTeardowns, startNginx, type Nginx } from './helpers/nginx.ts'
import { makeTempDir, startTestNode, waitFor, type TestNode } from './helpers/node.ts'
import { npmClient, runNode, writeProject } from './helpers/npm-client.ts'
import { packageTree, type TreePackage } from './helpers/npm-tree.ts'
import { tgzBytes } from './helpers/archives.ts'
import { deterministicBytes } from './helpers/streams.ts'
import { run } from './helpers/clients.ts'
import { startRegistry, type Registry } from './helpers/docker-registry.ts'
import { addImage, addLayer, layoutRef, writeLayout, type Image } from './helpers/oci-image.ts'
import { startVerdaccio, verdaccioInstalled, VERDACCIO, type Verdaccio } from './helpers/verdaccio.ts'

let v: Verdaccio
let tree: TreePackage[]
let second: TreePackage[]
let nginx: Nginx
let registry: Registry
let image: Image
const file = deterministicBytes(3 * 1024 * 1024 + 5, 'sites-file')
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')
let sites: { a: TestNode, b: TestNode, c: TestNode, ids: Identity[] }
const hook = hookTeardowns()
test.after.always(async () => { await hook.run() })

const config = (upstream: string, files: string) => 'repositories:\n' +
  `  - { name: npm, format: npm, type: remote, upstream: "${upstream}/" }\n` +
  `  - { name: vendor, format: generic, type: remote, upstream: "${files}/" }\n` +
  `  - { name: hub, format: oci, type: remote, upstream: "${registry.url}" }\n`
const installed = () => tree.filter(p => p.tag == null)
const tarballUrl = (p: TreePackage) => `/${p.manifest.name}/-/${p.manifest.name.split('/').pop() as string}-${p.manifest.version}.tgz`
const tarballGets = () => v.requests().filter(r => r.startsWith('GET ') && r.endsWith('.tgz')).length
const fromPeers = (node: TestNode) => node.output().split('\n').filter(l => l.includes('cached by a peer of the mesh')).length

test.before(async () => {
  if (!verdaccioInstalled()) return
  v = await startVerdaccio(hook.t)
  tree = await packageTree('site', 12)
  for (const p of tree) await v.publish(p.manifest, p.tgz, p.tag)
  second = await packageTree('both', 12)
  for (const p of second) await v.publish(p.manifest, p.tgz, p.tag)
  nginx = await startNginx(hook.t)
  await nginx.put('tools/cli-3.0.tar.gz', file)
  registry = await startRegistry(hook.t)
  const layout = await makeTempDir(hook.t, 'akmesh-sites-layout-')
  image = await addImage(layout, [
    await addLayer(layout, { 'etc/os-release': 'ID=sites\n' }),
    await addLayer(layout, { 'usr/lib/big.so': { random: 2_000_000 } })
  ])
  await writeLayout(layout, { 1: image.manifest })
  const pushed = await run('skopeo', ['copy', '--dest-tls-verify=false', `oci:${layout}:1`, `docker://${registry.host}/app:1`])
  if (pushed.code !== 0) throw new Error(`skopeo copy to the upstream: ${pushed.stderr}`)
  const ids = [await identity(hook.t), await identity(hook.t), await identity(hook.t)]
  const ports = [await freePort(), await freePort(), await freePort()]
  const others = (i: number) => ids.filter((_, k) => k !== i).map(x => x.peerId)
  const start = async (i: number, bootstrap: string[]) => await startTestNode(hook.t, {
    dataDir: ids[i].dataDir, config: config(v.url, nginx.url), meshPort: ports[i], peering: { allow: others(i), bootstrap }
  })
  const a = await start(0, [])
  const b = await start(1, [a.meshAddr])
  const c = await start(2, [a.meshAddr, b.meshAddr])
  await waitFor(async () => await connectedTo(b, a.peerId) && await connectedTo(c, a.peerId) && await connectedTo(c, b.peerId), 'the three sites connected')
  sites = { a, b, c, ids }
})

function needsVerdaccio (t: { fail: (m: string) => void, pass: () => void }): boolean {
  if (verdaccioInstalled()) return true
  if (process.env.CI === 'true') t.fail(`Verdaccio is not installed at ${VERDACCIO}; .ci/run must install it`)
  else { console.warn(`\n!!! SKIPPING: Verdaccio is not installed (${VERDACCIO}); run .ci/run's install step. !!!\n`); t.pass() }
  return false
}

/** `npm install` of every package of the tree through `node`; resolves with what the project
 *  computes from them all (each package's value), and what it should compute. */
async function install (t: Parameters<typeof writeProject>[0], node: TestNode, packages = tree): Promise<{ got: string, expected: string, stderr: string, code: number }> {
  const npm = await npmClient(t, node, null)
  if (npm == null) throw new Error('npm is not installed')
  const dir = await writeProject(t)
  const deps = packages.filter(p => p.tag == null)
  await writeFile(join(dir, 'package.json'), JSON.stringify({
    name: 'consumer', version: '1.0.0', private: true,
    dependencies: Object.fromEntries(deps.map(p => [p.manifest.name, p.manifest.version]))
  }))
  const r = await npm.run(['install'], { cwd: dir })
  const code = `console.log(${deps.map(p => `require(${JSON.stringify(p.manifest.name)})`).join(' + ')})`
  const got = r.code === 0 ? (await runNode(dir, code)).stdout.trim() : ''
  return { got, expected: String(deps.reduce((s, p) => s + p.value, 0)), stderr: r.stderr, code: r.code }
}

test.serial('after site A installs a tree, sites B and C install it at once with zero tarball requests of their own at the upstream', async t => {
  if (!needsVerdaccio(t)) return
  const { a, b, c } = sites
  const viaA = await install(t, a)
  t.is(viaA.code, 0, viaA.stderr)
  t.is(viaA.got, viaA.expected)
  const afterA = tarballGets()
  t.is(afterA, installed().length, 'A fetched each tarball from Verdaccio once')

  // No waiting for replication: B and C ask as soon as A is done.
  const [viaB, viaC] = await Promise.all([install(t, b), install(t, c)])
  t.is(viaB.code, 0, viaB.stderr)
  t.is(viaB.got, viaB.expected)
  t.is(viaC.code, 0, viaC.stderr)
  t.is(viaC.got, viaC.expected)
  t.is(tarballGets(), afterA, 'no tarball request from B or C reached Verdaccio')
  for (const p of installed()) t.is(v.count('GET', tarballUrl(p)), 1, `${tarballUrl(p)}: one upstream GET in the whole mesh`)
  t.log(`tarballs B and C took by lookup (the rest had replicated already): ${fromPeers(b)} + ${fromPeers(c)}`)
})

test.serial('A, B and C install another tree at the same moment: still one upstream GET per tarball in the whole mesh', async t => {
  if (!needsVerdaccio(t)) return
  const { a, b, c } = sites
  const [viaA, viaB, viaC] = await Promise.all([install(t, a, second), install(t, b, second), install(t, c, second)])
  for (const r of [viaA, viaB, viaC]) {
    t.is(r.code, 0, r.stderr)
    t.is(r.got, r.expected)
  }
  // Whoever asked first fetched; a site asking while another fetched waited for its copy; of two
  // sites asking at once, the one with the lower peer ID fetched.
  for (const p of second.filter(x => x.tag == null)) t.is(v.count('GET', tarballUrl(p)), 1, `${tarballUrl(p)}: one upstream GET in the whole mesh`)
})

test.serial('a generic file asked of the three sites at the same moment reaches the upstream once', async t => {
  if (!needsVerdaccio(t)) return
  const { a, b, c } = sites
  const bodies = await Promise.all([a, b, c].map(async node => {
    const res = await fetch(`${node.url}/vendor/tools/cli-3.0.tar.gz`)
    t.is(res.status, 200)
    return sha256(new Uint8Array(await res.arrayBuffer()))
  }))
  t.deepEqual(bodies, [sha256(file), sha256(file), sha256(file)])
  t.is(await nginx.count('GET', '/tools/cli-3.0.tar.gz'), 1, 'one upstream GET for the three sites')
})

test.serial('OCI: after site A pulls an image, B and C pull it at once with no blob request of their own at the upstream', async t => {
  const { a, b, c } = sites
  const pull = async (node: TestNode) => {
    const out = await makeTempDir(t, 'akmesh-sites-pull-')
    const r = await run('skopeo', ['copy', '--src-tls-verify=false', `docker://${new URL(node.url).host}/hub/app:1`, `oci:${out}:1`])
    t.is(r.code, 0, r.stderr)
    t.is((await layoutRef(out, '1')).digest, image.manifest.digest)
  }
  const blobGets = () => [image.config, ...image.layers].map(d => registry.count('GET', `/v2/app/blobs/${d.digest}`, 200))
  await pull(a)
  t.deepEqual(blobGets(), [1, 1, 1], 'A fetched config and layers from the upstream once')
  // No waiting for replication: the manifest by tag is metadata each site asks the upstream for;
  // its row (with every blob) comes from A by lookup or replication, the bytes from A.
  await Promise.all([pull(b), pull(c)])
  t.deepEqual(blobGets(), [1, 1, 1], 'no blob request from B or C reached the upstream')
})

test.serial('with the only site holding a tarball stopped, B goes upstream: the lookup neither hangs nor fails', async t => {
  if (!needsVerdaccio(t)) return
  const { a, b, c, ids } = sites
  const manifest = { name: 'solo', version: '1.0.0', main: 'index.js', license: 'MIT', dependencies: {} }
  const tgz = await tgzBytes([{ path: 'package/package.json', text: JSON.stringify(manifest) }, { path: 'package/index.js', text: 'module.exports = 7\n' }])
  await v.publish(manifest, tgz)
  const url = '/npm/solo/-/solo-1.0.0.tgz'
  // B and C are down while A caches it, then A goes down: nobody reachable holds it.
  await b.stop()
  await c.stop()
  const viaA = await fetch(`${a.url}${url}`)
  t.is(viaA.status, 200)
  t.deepEqual(Buffer.from(await viaA.arrayBuffer()), tgz)
  t.is(v.count('GET', '/solo/-/solo-1.0.0.tgz'), 1)
  await a.stop()
  await b.restart()
  await c.restart()
  await waitFor(async () => await connectedTo(b, ids[2].peerId), 'B and C connected again')

  const viaB = await fetch(`${b.url}${url}`)
  t.is(viaB.status, 200)
  t.deepEqual(Buffer.from(await viaB.arrayBuffer()), tgz)
  t.is(v.count('GET', '/solo/-/solo-1.0.0.tgz'), 2, 'B fetched it from upstream itself')
})
