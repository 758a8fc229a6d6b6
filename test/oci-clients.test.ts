// Real OCI clients against a real node: skopeo (copies between OCI layouts and the registry, image
// indexes) and podman (push, pull), anonymous and through the bearer-token flow.
import test from 'ava'
import { randomBytes } from 'node:crypto'
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ExecutionContext } from 'ava'
import { requireClient, run, type RunResult } from './helpers/clients.ts'
import { akmesh, makeTempDir, startTestNode, type TestNode } from './helpers/node.ts'
import { addImage, addIndex, addLayer, blobPath, layoutRef, writeLayout, type Image } from './helpers/oci-image.ts'
import { OCI_TEST_CONFIG as CONFIG, oci } from './helpers/oci-http.ts'

/** Isolated client settings: an empty auth file, and podman storage in a temp dir. */
async function clientEnv (t: ExecutionContext, node: TestNode) {
  const dir = await makeTempDir(t, 'akmesh-oci-client-')
  const authFile = join(dir, 'auth.json')
  await writeFile(authFile, '{}')
  const host = new URL(node.url).host
  await writeFile(join(dir, 'registries.conf'), `unqualified-search-registries = []\n[[registry]]\nlocation = "${host}"\ninsecure = true\n`)
  const env = { REGISTRY_AUTH_FILE: authFile, CONTAINERS_REGISTRIES_CONF: join(dir, 'registries.conf') }
  const podmanArgs = ['--root', join(dir, 'root'), '--runroot', join(dir, 'runroot'), '--storage-driver', 'vfs', '--events-backend', 'none', '--cgroup-manager', 'cgroupfs']
  return {
    host,
    dir,
    skopeo: (args: string[]) => run('skopeo', args, { env }),
    podman: (args: string[]) => run('podman', [...podmanArgs, ...args], { env })
  }
}

function ok (t: ExecutionContext, r: RunResult, what: string): void {
  t.is(r.code, 0, `${what} failed:\n${r.stderr}\n${r.stdout}`)
}

/** A three-layer image (gzip tars with a few files each) in a new OCI layout. */
async function sampleImage (t: ExecutionContext): Promise<{ layout: string, image: Image }> {
  // Lowercase path: podman names an image pulled from oci:<path> after the path.
  const layout = join(tmpdir(), `akmesh-oci-layout-${randomBytes(6).toString('hex')}`)
  await mkdir(layout)
  t.teardown(async () => { await rm(layout, { recursive: true, force: true }) })
  const layers = [
    await addLayer(layout, { 'etc/os-release': 'ID=akmesh\n', 'bin/tool': { random: 200_000 } }),
    await addLayer(layout, { 'usr/lib/libbig.so': { random: 1_500_000 }, 'usr/lib/libsmall.so': { random: 3000 } }),
    await addLayer(layout, { 'app/main.js': 'console.log(1)\n', 'app/data.bin': { random: 50_000 }, 'app/README': 'hi\n' })
  ]
  const image = await addImage(layout, layers)
  await writeLayout(layout, { '1': image.manifest })
  return { layout, image }
}

test.serial('skopeo: an OCI layout copied in and out keeps its manifest bytes and layer digests', async t => {
  if (await requireClient(t, 'skopeo') == null) return
  const node = await startTestNode(t, { config: CONFIG })
  const c = await clientEnv(t, node)
  const { layout, image } = await sampleImage(t)
  const ref = `docker://${c.host}/docker/test/img:1`

  ok(t, await c.skopeo(['copy', '--dest-tls-verify=false', '--dest-creds', `admin:${node.adminToken}`, `oci:${layout}:1`, ref]), 'skopeo copy to akmesh')
  const out = join(c.dir, 'out')
  ok(t, await c.skopeo(['copy', '--src-tls-verify=false', ref, `oci:${out}:1`]), 'skopeo copy from akmesh')

  const back = await layoutRef(out, '1')
  t.is(back.digest, image.manifest.digest)
  t.deepEqual(await readFile(blobPath(out, back.digest)), image.manifestBytes)
  for (const l of image.layers) t.deepEqual(await readFile(blobPath(out, l.digest)), await readFile(blobPath(layout, l.digest)))

  const raw = await c.skopeo(['inspect', '--raw', '--tls-verify=false', ref])
  ok(t, raw, 'skopeo inspect --raw')
  t.is(raw.stdout, image.manifestBytes.toString())
  const tags = await c.skopeo(['list-tags', '--tls-verify=false', `docker://${c.host}/docker/test/img`])
  ok(t, tags, 'skopeo list-tags')
  t.deepEqual(JSON.parse(tags.stdout).Tags, ['1'])
})

test.serial('skopeo --all: an image index with two platforms round-trips', async t => {
  if (await requireClient(t, 'skopeo') == null) return
  const node = await startTestNode(t, { config: CONFIG })
  const c = await clientEnv(t, node)
  const layout = await makeTempDir(t, 'akmesh-oci-layout-')
  const amd = await addImage(layout, [await addLayer(layout, { 'arch': 'amd64\n', 'bin/x': { random: 100_000 } })], { architecture: 'amd64' })
  const arm = await addImage(layout, [await addLayer(layout, { 'arch': 'arm64\n', 'bin/x': { random: 100_000 } })], { architecture: 'arm64' })
  const index = await addIndex(layout, [amd.manifest, arm.manifest])
  await writeLayout(layout, { multi: index.descriptor })
  const ref = `docker://${c.host}/docker/multi:latest`

  ok(t, await c.skopeo(['copy', '--all', '--dest-tls-verify=false', '--dest-creds', `admin:${node.adminToken}`, `oci:${layout}:multi`, ref]), 'skopeo copy --all to akmesh')
  const got = await oci(node, 'GET', '/v2/docker/multi/manifests/latest', { auth: null })
  t.is(got.headers.get('content-type'), 'application/vnd.oci.image.index.v1+json')
  t.deepEqual(Buffer.from(await got.arrayBuffer()), index.bytes)

  const out = join(c.dir, 'out')
  ok(t, await c.skopeo(['copy', '--all', '--src-tls-verify=false', ref, `oci:${out}:multi`]), 'skopeo copy --all from akmesh')
  t.is((await layoutRef(out, 'multi')).digest, index.descriptor.digest)
  for (const img of [amd, arm]) {
    t.deepEqual(await readFile(blobPath(out, img.manifest.digest)), img.manifestBytes)
    t.deepEqual(await readFile(blobPath(out, img.layers[0].digest)), await readFile(blobPath(layout, img.layers[0].digest)))
  }
})

test.serial('podman: push an image and pull it back into empty storage', async t => {
  if (await requireClient(t, 'podman') == null) return
  const node = await startTestNode(t, { config: CONFIG })
  const c = await clientEnv(t, node)
  const { layout, image } = await sampleImage(t)
  const imageId = image.config.digest.slice('sha256:'.length)

  ok(t, await c.podman(['pull', `oci:${layout}:1`]), 'podman pull from the layout')
  ok(t, await c.podman(['push', '--tls-verify=false', '--creds', `admin:${node.adminToken}`, imageId, `docker://${c.host}/docker/pod/app:1`]), 'podman push')
  ok(t, await c.podman(['rmi', '--all', '--force']), 'podman rmi')
  t.is((await c.podman(['images', '--quiet'])).stdout.trim(), '')

  ok(t, await c.podman(['pull', '--tls-verify=false', `${c.host}/docker/pod/app:1`]), 'podman pull from akmesh')
  const inspect = await c.podman(['image', 'inspect', `${c.host}/docker/pod/app:1`])
  ok(t, inspect, 'podman image inspect')
  const [info] = JSON.parse(inspect.stdout) as Array<{ Id: string, RootFS: { Layers: string[] } }>
  t.is(info.Id, imageId)
  t.deepEqual(info.RootFS.Layers, image.layers.map(l => l.diffId))
})

test.serial('a repository without anonymous reads: skopeo and podman log in through the token flow; wrong credentials fail', async t => {
  if (await requireClient(t, 'skopeo') == null || await requireClient(t, 'podman') == null) return
  const node = await startTestNode(t, { config: CONFIG })
  const r = await akmesh(['user', 'add', 'alice', '--password', 'alice-password', '--scope', 'read,write', '--repo', 'private', '--data', node.dataDir])
  t.is(r.code, 0, r.stderr)
  const c = await clientEnv(t, node)
  const { layout, image } = await sampleImage(t)
  const ref = `docker://${c.host}/private/app:1`

  ok(t, await c.skopeo(['copy', '--dest-tls-verify=false', '--dest-creds', 'alice:alice-password', `oci:${layout}:1`, ref]), 'skopeo push with a password')
  const anonymous = await c.skopeo(['inspect', '--raw', '--tls-verify=false', ref])
  t.not(anonymous.code, 0)
  t.regex(anonymous.stderr, /unauthorized|authentication required/i)
  const wrong = await c.skopeo(['inspect', '--raw', '--tls-verify=false', '--creds', 'alice:wrong-password', ref])
  t.not(wrong.code, 0)
  t.regex(wrong.stderr, /unauthorized|401/i)
  const right = await c.skopeo(['inspect', '--raw', '--tls-verify=false', '--creds', 'alice:alice-password', ref])
  ok(t, right, 'skopeo inspect with a password')
  t.is(right.stdout, image.manifestBytes.toString())

  const podWrong = await c.podman(['pull', '--tls-verify=false', '--creds', 'alice:wrong-password', `${c.host}/private/app:1`])
  t.not(podWrong.code, 0)
  ok(t, await c.podman(['pull', '--tls-verify=false', '--creds', 'alice:alice-password', `${c.host}/private/app:1`]), 'podman pull with a password')
  ok(t, await c.podman(['push', '--tls-verify=false', '--creds', 'alice:alice-password', `${c.host}/private/app:1`, `docker://${c.host}/private/app:2`]), 'podman push with a password')
  const tags = await (await oci(node, 'GET', '/v2/private/app/tags/list')).json() as { tags: string[] }
  t.deepEqual(tags.tags, ['1', '2'])
})

test.serial('layers shared by images in two repositories are stored once', async t => {
  if (await requireClient(t, 'skopeo') == null) return
  const node = await startTestNode(t, { config: CONFIG })
  const c = await clientEnv(t, node)
  const { layout, image: a } = await sampleImage(t)
  // Image B: the same first two layers plus one of its own, and its own config.
  const own = await addLayer(layout, { 'only-in-b': { random: 30_000 } })
  const b = await addImage(layout, [a.layers[0], a.layers[1], own], { created: '2026-02-02T00:00:00Z' })
  await writeLayout(layout, { '1': a.manifest, '2': b.manifest })

  const creds = ['--dest-tls-verify=false', '--dest-creds', `admin:${node.adminToken}`]
  ok(t, await c.skopeo(['copy', ...creds, `oci:${layout}:1`, `docker://${c.host}/docker/team/a:1`]), 'push a')
  ok(t, await c.skopeo(['copy', ...creds, `oci:${layout}:2`, `docker://${c.host}/other/team/b:1`]), 'push b')

  const distinct = new Set([a.manifest, a.config, ...a.layers, b.manifest, b.config, ...b.layers].map(d => d.digest))
  const files = (await Promise.all((await readdir(join(node.dataDir, 'blobs'))).map(d => readdir(join(node.dataDir, 'blobs', d))))).flat()
  t.is(files.length, distinct.size, 'one file per distinct blob: shared layers were not stored twice')

  const cidIn = async (path: string) => (await oci(node, 'HEAD', path)).headers.get('x-akmesh-cid')
  const shared = a.layers[1].digest
  const cidA = await cidIn(`/v2/docker/team/a/blobs/${shared}`)
  t.truthy(cidA)
  t.is(await cidIn(`/v2/other/team/b/blobs/${shared}`), cidA)
  t.true(files.includes(cidA as string))
})
