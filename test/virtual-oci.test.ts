// An OCI virtual repository (type: virtual) over a local OCI repository and a remote one in front
// of a real CNCF distribution registry (docker-registry, with token auth): skopeo pulls an image
// only the local member has, one only the upstream has (podman pulls it too), and a tag both
// have (the first member, local, wins); tags/list merges the members' tags; referrers come from
// the members; skopeo
// copy to the virtual repository lands in defaultLocal (blob uploads and the manifest, with
// Location URLs on the virtual repository), even for an image whose base layer only the remote
// member held; deletes are refused; without defaultLocal a push is a 405; with the upstream
// stopped, what the remote member cached still pulls.
import test from 'ava'
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ExecutionContext } from 'ava'
import { requireClient } from './helpers/clients.ts'
import { startRegistry, type Registry } from './helpers/docker-registry.ts'
import { ociClients, ok } from './helpers/oci-clients.ts'
import { hookTeardowns } from './helpers/nginx.ts'
import { makeTempDir, startTestNode, type TestNode } from './helpers/node.ts'
import { digestOf, errorCode, oci } from './helpers/oci-http.ts'
import { addBlob, addImage, addLayer, blobPath, layoutRef, OCI_MANIFEST, writeLayout, type Image } from './helpers/oci-image.ts'

const hook = hookTeardowns()
let registry: Registry
let node: TestNode
test.after.always(async () => { if (process.env.DUMP != null) console.log(node?.output().slice(-8000)); await hook.run() })

test.before(async () => {
  const { t } = hook
  registry = await startRegistry(t, { users: { mirror: 'mirror-pass', pusher: 'push-pass' } })
  node = await startTestNode(t, {
    config: `
repositories:
  - { name: images, format: oci }
  - { name: upstream, format: oci, type: remote, upstream: "${registry.url}", auth: { username: mirror, password: mirror-pass } }
  - { name: oci, format: oci, type: virtual, members: [images, upstream], defaultLocal: images }
  - { name: oci-ro, format: oci, type: virtual, members: [images, upstream] }
`
  })
})

const clients = async (t: ExecutionContext) => await ociClients(t, [new URL(node.url).host, registry.host])


async function newLayout (t: ExecutionContext): Promise<string> {
  const layout = join(tmpdir(), `akmesh-oci-layout-${randomBytes(6).toString('hex')}`)
  await mkdir(layout)
  t.teardown(async () => { await rm(layout, { recursive: true, force: true }) })
  return layout
}

/** A one-layer image in a fresh layout under `tag`; `marker` makes its bytes its own. */
async function makeImage (t: ExecutionContext, marker: string, tag: string): Promise<{ layout: string, image: Image }> {
  const layout = await newLayout(t)
  const image = await addImage(layout, [await addLayer(layout, { 'etc/marker': `${marker}\n` })])
  await writeLayout(layout, { [tag]: image.manifest })
  return { layout, image }
}

/** Pulls `ref` through the node into a fresh layout; returns the manifest digest it got. */
async function pull (t: ExecutionContext, c: Awaited<ReturnType<typeof clients>>, ref: string): Promise<{ digest: string, layout: string }> {
  const out = await newLayout(t)
  ok(t, await c.skopeo(['copy', '--src-tls-verify=false', `docker://${c.host}/${ref}`, `oci:${out}:x`]), `skopeo copy ${ref}`)
  return { digest: (await layoutRef(out, 'x')).digest, layout: out }
}

const admin = () => ['--dest-creds', `admin:${node.adminToken}`]

test.serial('skopeo pulls through the virtual repository: a local-only image, a remote-only image, a tag both have (the first member wins); tags/list merged', async t => {
  if (await requireClient(t, 'skopeo') == null) return
  const c = await clients(t)
  const local = await makeImage(t, 'local-only', '1')
  ok(t, await c.skopeo(['copy', '--dest-tls-verify=false', ...admin(), `oci:${local.layout}:1`, `docker://${c.host}/images/team/app:1`]), 'push to the local member')
  const remote = await makeImage(t, 'remote-only', '1')
  ok(t, await c.skopeo(['copy', '--dest-tls-verify=false', '--dest-creds', 'pusher:push-pass', `oci:${remote.layout}:1`, `docker://${registry.host}/vendor/tool:1`]), 'push upstream')
  // team/shared:2 in both: upstream's bytes differ.
  const sharedLocal = await makeImage(t, 'shared-local', '2')
  ok(t, await c.skopeo(['copy', '--dest-tls-verify=false', ...admin(), `oci:${sharedLocal.layout}:2`, `docker://${c.host}/images/team/shared:2`]), 'push shared to local')
  const sharedUp = await makeImage(t, 'shared-upstream', '2')
  ok(t, await c.skopeo(['copy', '--dest-tls-verify=false', '--dest-creds', 'pusher:push-pass', `oci:${sharedUp.layout}:2`, `docker://${registry.host}/team/shared:2`]), 'push shared upstream')
  const upOnly = await makeImage(t, 'shared-upstream-3', '3')
  ok(t, await c.skopeo(['copy', '--dest-tls-verify=false', '--dest-creds', 'pusher:push-pass', `oci:${upOnly.layout}:3`, `docker://${registry.host}/team/shared:3`]), 'push shared:3 upstream')

  t.is((await pull(t, c, 'oci/team/app:1')).digest, local.image.manifest.digest, 'the local-only image')
  const fromRemote = await pull(t, c, 'oci/vendor/tool:1')
  t.is(fromRemote.digest, remote.image.manifest.digest, 'the remote-only image, through the remote member')
  for (const l of remote.image.layers) t.is(digestOf(await readFile(blobPath(fromRemote.layout, l.digest))), l.digest)
  t.true(registry.count('GET', `/v2/vendor/tool/blobs/${remote.image.layers[0].digest}`, 200) >= 1, 'the layer came from the upstream')

  const before = registry.log().filter(l => l.includes('/v2/team/shared/')).length
  t.is((await pull(t, c, 'oci/team/shared:2')).digest, sharedLocal.image.manifest.digest, 'the first member (local) wins the tag')
  // Dependency-confusion protection: the local member has team/shared, so the upstream is not asked for it.
  t.is(registry.log().filter(l => l.includes('/v2/team/shared/')).length, before, 'the upstream was not asked for an image name the local member has')
  const missing = await oci(node, 'GET', '/v2/oci/team/shared/manifests/3', { auth: null, headers: { accept: OCI_MANIFEST } })
  t.is(missing.status, 404, 'shared:3 exists only upstream, under a name the local member holds')
  t.is(await errorCode(missing), 'MANIFEST_UNKNOWN')

  if (await requireClient(t, 'podman') != null) {
    ok(t, await c.podman(['pull', '--tls-verify=false', `${c.host}/oci/vendor/tool:1`]), 'podman pull through the virtual')
    const id = await c.podman(['image', 'inspect', '--format', '{{.Digest}}', `${c.host}/oci/vendor/tool:1`])
    t.is(id.stdout.trim(), remote.image.manifest.digest)
  }

  const head = await oci(node, 'HEAD', `/v2/oci/vendor/tool/manifests/1`, { auth: null, headers: { accept: OCI_MANIFEST } })
  t.is(head.status, 200)
  t.is(head.headers.get('docker-content-digest'), remote.image.manifest.digest)
  t.is(head.headers.get('x-akmesh-member'), 'upstream')

  const tags = await c.skopeo(['list-tags', '--tls-verify=false', `docker://${c.host}/oci/team/app`])
  ok(t, tags, 'skopeo list-tags')
  t.deepEqual(JSON.parse(tags.stdout).Tags, ['1'])
  ok(t, await c.skopeo(['copy', '--dest-tls-verify=false', '--dest-creds', 'pusher:push-pass', `oci:${remote.layout}:1`, `docker://${registry.host}/vendor/tool:1.1`]), 'a second upstream tag')
  const merged = await oci(node, 'GET', '/v2/oci/vendor/tool/tags/list', { auth: null })
  t.deepEqual((await merged.json() as { tags: string[] }).tags, ['1', '1.1'])
})

test.serial('skopeo copy to the virtual repository lands in defaultLocal, also an image on a base layer only the remote member held', async t => {
  if (await requireClient(t, 'skopeo') == null) return
  const c = await clients(t)
  const pushed = await makeImage(t, 'pushed-through-virtual', 'v1')
  ok(t, await c.skopeo(['copy', '--dest-tls-verify=false', ...admin(), `oci:${pushed.layout}:v1`, `docker://${c.host}/oci/team/pushed:v1`]), 'skopeo copy to the virtual')
  const inLocal = await oci(node, 'GET', '/v2/images/team/pushed/manifests/v1', { headers: { accept: OCI_MANIFEST } })
  t.is(inLocal.status, 200)
  t.is(inLocal.headers.get('docker-content-digest'), pushed.image.manifest.digest, 'the manifest is in defaultLocal')
  t.is(registry.log().filter(l => l.includes('/v2/team/pushed/')).length, 0, 'nothing went upstream')
  t.is((await pull(t, c, 'oci/team/pushed:v1')).digest, pushed.image.manifest.digest)

  // A base image pulled through the virtual (cached by the remote member), then an image on it
  // pushed to the virtual: skopeo's HEAD of the base layer says "exists" (the remote member's
  // cache), so it is not uploaded; the manifest PUT links it into defaultLocal.
  const base = await newLayout(t)
  const baseLayer = await addLayer(base, { 'bin/base': 'base layer\n' })
  const baseImage = await addImage(base, [baseLayer])
  await writeLayout(base, { b: baseImage.manifest })
  ok(t, await c.skopeo(['copy', '--dest-tls-verify=false', '--dest-creds', 'pusher:push-pass', `oci:${base}:b`, `docker://${registry.host}/team/derived:base`]), 'base upstream')
  await pull(t, c, 'oci/team/derived:base')
  const derived = await newLayout(t)
  await mkdir(join(derived, 'blobs', 'sha256'), { recursive: true })
  await writeFile(blobPath(derived, baseLayer.digest), await readFile(blobPath(base, baseLayer.digest)))
  const appImage = await addImage(derived, [baseLayer, await addLayer(derived, { 'bin/app': 'app layer\n' })])
  await writeLayout(derived, { app: appImage.manifest })
  ok(t, await c.skopeo(['copy', '--dest-tls-verify=false', ...admin(), `oci:${derived}:app`, `docker://${c.host}/oci/team/derived:app`]), 'push the derived image to the virtual')
  const app = await oci(node, 'GET', '/v2/images/team/derived/manifests/app', { headers: { accept: OCI_MANIFEST } })
  t.is(app.status, 200)
  t.is(app.headers.get('docker-content-digest'), appImage.manifest.digest)
  t.is((await oci(node, 'GET', `/v2/images/team/derived/blobs/${baseLayer.digest}`)).status, 200, 'the base layer is linked into defaultLocal')

  const refused = await c.skopeo(['copy', '--dest-tls-verify=false', ...admin(), `oci:${pushed.layout}:v1`, `docker://${c.host}/oci-ro/team/nope:v1`])
  t.not(refused.code, 0)
  t.regex(refused.stderr, /405|not allowed|oci-ro is a virtual repository without defaultLocal/i)
  const del = await oci(node, 'DELETE', `/v2/oci/team/pushed/manifests/${pushed.image.manifest.digest}`)
  t.is(del.status, 405)
  t.is((await oci(node, 'GET', '/v2/images/team/pushed/manifests/v1', { headers: { accept: OCI_MANIFEST } })).status, 200, 'still there')
})

test.serial('referrers of a subject come from the members, merged', async t => {
  const subject = (await (await oci(node, 'HEAD', '/v2/oci/team/app/manifests/1', { auth: null, headers: { accept: OCI_MANIFEST } })).headers.get('docker-content-digest')) as string
  t.truthy(subject)
  const layout = await newLayout(t)
  const config = await addBlob(layout, '{}', 'application/vnd.example.sbom')
  const sbom = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType: 'application/vnd.example.sbom', config, layers: [],
    subject: { mediaType: OCI_MANIFEST, digest: subject, size: 1 }
  }))
  const blob = await oci(node, 'POST', `/v2/oci/team/app/blobs/uploads/?digest=${config.digest}`, { body: '{}', headers: { 'content-type': 'application/octet-stream' } })
  t.is(blob.status, 201)
  t.regex(blob.headers.get('location') ?? '', /\/v2\/oci\/team\/app\/blobs\//, 'Location on the virtual repository')
  const put = await oci(node, 'PUT', `/v2/oci/team/app/manifests/${digestOf(sbom)}`, { body: sbom, headers: { 'content-type': OCI_MANIFEST } })
  t.is(put.status, 201, await put.text())
  const referrers = await oci(node, 'GET', `/v2/oci/team/app/referrers/${subject}`, { auth: null })
  t.is(referrers.status, 200)
  const index = await referrers.json() as { manifests: Array<{ digest: string, artifactType: string }> }
  t.deepEqual(index.manifests.map(m => [m.digest, m.artifactType]), [[digestOf(sbom), 'application/vnd.example.sbom']])
})

test.serial('with the upstream registry stopped, an image the remote member cached still pulls through the virtual repository', async t => {
  if (await requireClient(t, 'skopeo') == null) return
  const c = await clients(t)
  const before = await pull(t, c, 'oci/vendor/tool:1')
  await registry.stop()
  try {
    const after = await pull(t, c, 'oci/vendor/tool:1')
    t.is(after.digest, before.digest)
    const never = await oci(node, 'GET', '/v2/oci/vendor/never/manifests/1', { auth: null, headers: { accept: OCI_MANIFEST } })
    t.is(never.status, 502, 'nothing cached and the upstream down: the remote member\'s error, not a bare 404')
  } finally { await registry.start() }
})
