// A remote OCI repository (type: remote) in front of a real CNCF distribution registry
// (docker-registry) running with token auth, as Docker Hub does: skopeo and podman pull through
// it, and again with the registry stopped (within the TTL, then stale); an image index; one
// upstream request for concurrent pulls of an uncached layer; HEAD; pushes refused; referrers
// answered from the cache; the upstream's tokens fetched with the configured credentials and
// reused. The digest checks are shown against a small hand-written registry that lies (no real
// registry serves bytes that do not match their digest).
import test from 'ava'
import Database from 'better-sqlite3'
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ExecutionContext } from 'ava'
import { startRegistry, type Registry } from './helpers/docker-registry.ts'
import { ociClients, ok } from './helpers/oci-clients.ts'
import { hookTeardowns } from './helpers/nginx.ts'
import { akmesh, makeTempDir, startTestNode, waitFor, type TestNode } from './helpers/node.ts'
import { digestOf, errorCode, oci } from './helpers/oci-http.ts'
import { addImage, addIndex, addLayer, blobPath, layoutRef, writeLayout, type Image } from './helpers/oci-image.ts'

const PASSWORD = 'mirror-pa55word-never-logged'
const hook = hookTeardowns()
let registry: Registry
let node: TestNode
let liar: { url: string, hits: Map<string, number> }
test.after.always(async () => { if (process.env.DUMP != null) console.log(node.output().slice(-8000)); await hook.run() })

/** Where the lying registry serves what: manifests and a blob whose bytes are not their digest. */
const HONEST = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digestOf('{}'), size: 2 }, layers: [] }))
const OTHER = Buffer.from(HONEST.toString().replace('"layers":[]', '"layers":[],"annotations":{"swapped":"yes"}'))
const BLOB = Buffer.alloc(300 * 1024, 'b')
const REFERRERS = {
  schemaVersion: 2,
  mediaType: 'application/vnd.oci.image.index.v1+json',
  manifests: ['application/vnd.example.sbom', 'application/vnd.example.signature'].map((artifactType, i) => ({
    mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: digestOf(String(i)), size: 100 + i, artifactType
  }))
}

test.before(async () => {
  const { t } = hook
  registry = await startRegistry(t, { users: { mirror: PASSWORD, pusher: 'push-pass' } })
  const hits = new Map<string, number>()
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname
    hits.set(path, (hits.get(path) ?? 0) + 1)
    const manifest = { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }
    if (path === `/v2/bad/manifests/${digestOf(HONEST)}`) res.writeHead(200, manifest).end(OTHER)
    else if (path === '/v2/bad/manifests/latest') res.writeHead(200, { ...manifest, 'docker-content-digest': digestOf(HONEST) }).end(OTHER)
    else if (path === `/v2/bad/blobs/${digestOf(Buffer.alloc(BLOB.length, 'c'))}`) res.writeHead(200, { 'content-length': BLOB.length }).end(BLOB)
    else if (path === `/v2/bad/referrers/${digestOf(HONEST)}`) res.writeHead(200, { 'content-type': 'application/vnd.oci.image.index.v1+json' }).end(JSON.stringify(REFERRERS))
    else if (path === '/v2/bad/manifests/html') res.writeHead(200, { 'content-type': 'text/html' }).end('<html>login</html>')
    else res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[{"code":"MANIFEST_UNKNOWN","message":"no"}]}')
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => { server.closeAllConnections(); await new Promise(resolve => server.close(resolve)) })
  liar = { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, hits }
  const auth = 'auth: { username: mirror, password: "${UPSTREAM_PASSWORD}" }'
  node = await startTestNode(t, {
    env: { UPSTREAM_PASSWORD: PASSWORD },
    config: `
repositories:
  - { name: mirror, format: oci, type: remote, upstream: "${registry.url}", ${auth} }
  - { name: hub, format: oci, type: remote, upstream: "${registry.url}", ${auth}, metadataTtl: 1s, dockerHubLibrary: true }
  - { name: wrongpass, format: oci, type: remote, upstream: "${registry.url}", auth: { username: mirror, password: nope } }
  - { name: liar, format: oci, type: remote, upstream: "${liar.url}" }
`
  })
})

/** Isolated client settings: an empty auth file, both registries insecure, podman storage in a
 *  temp dir. */
const clients = async (t: ExecutionContext) => await ociClients(t, [new URL(node.url).host, registry.host])

/** The files of a cached manifest artifact, read from the node's database. */
function cachedFiles (repo: string, name: string, digest: string): string[] {
  const db = new Database(join(node.dataDir, 'akmesh.db'), { readonly: true })
  try {
    return (db.prepare('SELECT f.filename FROM files f JOIN artifacts a ON a.id = f.artifact_id WHERE a.repo = ? AND a.name = ? AND a.version = ?')
      .all(repo, name, digest) as Array<{ filename: string }>).map(r => r.filename).sort()
  } finally { db.close() }
}

async function newLayout (t: ExecutionContext): Promise<string> {
  const layout = join(tmpdir(), `akmesh-oci-layout-${randomBytes(6).toString('hex')}`)
  await mkdir(layout)
  t.teardown(async () => { await rm(layout, { recursive: true, force: true }) })
  return layout
}

/** A two-layer image pushed to the upstream registry as `name:tag` (with the pusher's token). */
async function pushUpstream (t: ExecutionContext, c: Awaited<ReturnType<typeof clients>>, name: string, tag: string, layerBytes = 400_000): Promise<Image> {
  const layout = await newLayout(t)
  const layers = [
    await addLayer(layout, { 'etc/os-release': `ID=${name}\n` }),
    await addLayer(layout, { 'usr/lib/lib.so': { random: layerBytes } })
  ]
  const image = await addImage(layout, layers)
  await writeLayout(layout, { [tag]: image.manifest })
  ok(t, await c.skopeo(['copy', '--dest-tls-verify=false', '--dest-creds', 'pusher:push-pass', `oci:${layout}:${tag}`, `docker://${registry.host}/${name}:${tag}`]), 'skopeo copy to the upstream')
  return image
}

/** Upstream blob downloads of an image that got the bytes (a 401 challenge is no download). */
const blobGets = (name: string, image: Image) => [image.config, ...image.layers].map(d => registry.count('GET', `/v2/${name}/blobs/${d.digest}`, 200))

test.serial('skopeo and podman pull through the remote repository, then with the upstream stopped: within the TTL, and stale after it', async t => {
  const c = await clients(t)
  const image = await pushUpstream(t, c, 'library/app', '1')
  // A new layout for every copy: skopeo skips blobs a destination layout already has.
  const out = await newLayout(t)
  // dockerHubLibrary: "hub/app" is asked upstream as "library/app".
  ok(t, await c.skopeo(['copy', '--src-tls-verify=false', `docker://${c.host}/hub/app:1`, `oci:${out}:1`]), 'skopeo copy through hub')
  t.is((await layoutRef(out, '1')).digest, image.manifest.digest, 'the manifest bytes are the upstream\'s')
  for (const l of image.layers) t.is(digestOf(await readFile(blobPath(out, l.digest))), l.digest)
  ok(t, await c.skopeo(['copy', '--src-tls-verify=false', `docker://${c.host}/mirror/library/app:1`, `oci:${await newLayout(t)}:2`]), 'skopeo copy through mirror')
  t.deepEqual(blobGets('library/app', image), [2, 2, 2], 'each blob fetched once per remote repository')

  ok(t, await c.skopeo(['copy', '--src-tls-verify=false', `docker://${c.host}/mirror/library/app:1`, `oci:${await newLayout(t)}:3`]), 'second skopeo copy through mirror')
  t.deepEqual(blobGets('library/app', image), [2, 2, 2], 'the second copy came from the cache')
  t.deepEqual(cachedFiles('mirror', 'library/app', image.manifest.digest), ['manifest.json', ...[image.config, ...image.layers].map(d => d.digest)].sort(),
    'the cached manifest artifact holds the whole image (what the mesh replicates)')

  await registry.stop()
  try {
    // mirror's metadataTtl is 5m: the tag is still fresh, no warning.
    const fresh = await oci(node, 'GET', '/v2/mirror/library/app/manifests/1', { auth: null })
    t.is(fresh.status, 200)
    t.is(fresh.headers.get('warning'), null)
    t.is(fresh.headers.get('docker-content-digest'), image.manifest.digest)
    ok(t, await c.skopeo(['copy', '--src-tls-verify=false', `docker://${c.host}/mirror/library/app:1`, `oci:${await newLayout(t)}:4`]), 'skopeo copy through mirror, upstream stopped')
    // hub's metadataTtl is 1s: once past it, the tag is served stale with a warning.
    await waitFor(async () => (await oci(node, 'GET', '/v2/hub/app/manifests/1', { auth: null })).headers.get('warning') === '110 - "Response is Stale"',
      'the tag served stale', 15_000)
    const stale = await newLayout(t)
    ok(t, await c.skopeo(['copy', '--src-tls-verify=false', `docker://${c.host}/hub/app:1`, `oci:${stale}:5`]), 'skopeo copy through hub, upstream stopped, stale tag')
    t.is((await layoutRef(stale, '5')).digest, image.manifest.digest)
    for (const l of image.layers) t.is(digestOf(await readFile(blobPath(stale, l.digest))), l.digest)
    ok(t, await c.podman(['pull', '--tls-verify=false', `${c.host}/hub/app:1`]), 'podman pull through hub, upstream stopped')
    const never = await oci(node, 'GET', '/v2/hub/never/manifests/1', { auth: null })
    t.is(never.status, 502, 'nothing cached and the upstream down')
    t.is(await errorCode(never), 'UNAVAILABLE')
  } finally { await registry.start() }
})

test.serial('an image index (two platforms) is copied with skopeo --all through the remote repository', async t => {
  const c = await clients(t)
  const layout = await newLayout(t)
  const amd = await addImage(layout, [await addLayer(layout, { 'bin/a': 'amd64\n' })], { architecture: 'amd64' })
  const arm = await addImage(layout, [await addLayer(layout, { 'bin/a': 'arm64\n' })], { architecture: 'arm64' })
  const index = await addIndex(layout, [amd.manifest, arm.manifest])
  await writeLayout(layout, { multi: index.descriptor })
  ok(t, await c.skopeo(['copy', '--all', '--dest-tls-verify=false', '--dest-creds', 'pusher:push-pass', `oci:${layout}:multi`, `docker://${registry.host}/team/multi:1`]), 'push the index upstream')
  const out = await newLayout(t)
  ok(t, await c.skopeo(['copy', '--all', '--src-tls-verify=false', `docker://${c.host}/mirror/team/multi:1`, `oci:${out}:1`]), 'skopeo copy --all through mirror')
  t.is((await layoutRef(out, '1')).digest, index.descriptor.digest)
  t.is(await readFile(blobPath(out, arm.manifest.digest), 'utf8'), arm.manifestBytes.toString())
  // The child manifests were asked by digest, once each.
  t.is(registry.count('GET', `/v2/team/multi/manifests/${arm.manifest.digest}`), 1)
  const again = await oci(node, 'GET', `/v2/mirror/team/multi/manifests/${arm.manifest.digest}`, { auth: null })
  t.is(again.status, 200)
  t.is(again.headers.get('content-type'), 'application/vnd.oci.image.manifest.v1+json')
  t.is(registry.count('GET', `/v2/team/multi/manifests/${arm.manifest.digest}`), 1, 'served from the cache')
})

test.serial('12 concurrent pulls of one uncached layer cause one upstream blob request, each verified', async t => {
  const c = await clients(t)
  const image = await pushUpstream(t, c, 'team/big', '1', 6_000_000)
  const layer = image.layers[1]
  const head = await oci(node, 'HEAD', `/v2/mirror/team/big/blobs/${layer.digest}`, { auth: null })
  t.is(head.status, 200)
  t.is(head.headers.get('content-length'), String(layer.size))
  t.is(head.headers.get('docker-content-digest'), layer.digest)
  t.is(registry.count('GET', `/v2/team/big/blobs/${layer.digest}`), 0, 'a HEAD fetches nothing')
  const answers = await Promise.all(Array.from({ length: 12 }, async () => {
    const r = await oci(node, 'GET', `/v2/mirror/team/big/blobs/${layer.digest}`, { auth: null })
    return { status: r.status, cache: r.headers.get('x-akmesh-cache'), digest: digestOf(new Uint8Array(await r.arrayBuffer())) }
  }))
  t.deepEqual(new Set(answers.map(a => `${a.status} ${a.digest}`)), new Set([`200 ${layer.digest}`]))
  t.true(answers.some(a => a.cache === 'miss'), 'the first client was streamed the bytes as they came')
  t.is(registry.count('GET', `/v2/team/big/blobs/${layer.digest}`, 200), 1)
  const headTag = await oci(node, 'HEAD', '/v2/mirror/team/big/manifests/1', { auth: null })
  t.is(headTag.status, 200)
  t.is(headTag.headers.get('docker-content-digest'), image.manifest.digest)
})

test.serial('the upstream\'s token flow: tokens fetched with the configured credentials, reused; a wrong password is a clear 502', async t => {
  const c = await clients(t)
  const image = await pushUpstream(t, c, 'team/tok', '1')
  const before = registry.tokenRequests.length
  for (const d of [image.config, ...image.layers]) t.is((await oci(node, 'GET', `/v2/mirror/team/tok/blobs/${d.digest}`, { auth: null })).status, 200)
  t.is((await oci(node, 'GET', '/v2/mirror/team/tok/manifests/1', { auth: null })).status, 200)
  const asked = registry.tokenRequests.slice(before)
  t.deepEqual(asked, [{ user: 'mirror', scopes: ['repository:team/tok:pull'], status: 200 }], 'one token for four requests of one image')
  t.true(registry.log().some(l => l === `GET /v2/team/tok/blobs/${image.config.digest} 401`), 'the registry did challenge')

  const wrong = await oci(node, 'GET', '/v2/wrongpass/team/tok/manifests/1', { auth: null })
  t.is(wrong.status, 502)
  const body = await wrong.json() as { errors: Array<{ code: string, message: string }> }
  t.is(body.errors[0].code, 'UNAVAILABLE')
  t.regex(body.errors[0].message, /token endpoint http:\/\/127\.0\.0\.1:\d+\/token answered 401/)
  t.false(node.output().includes(PASSWORD), 'the password is never logged')
})

test.serial('a manifest or blob whose bytes do not match its digest is refused and nothing is cached', async t => {
  const byDigest = `/v2/bad/manifests/${digestOf(HONEST)}`
  for (let i = 1; i <= 2; i++) {
    const r = await oci(node, 'GET', `/v2/liar${byDigest.slice(3)}`, { auth: null })
    t.is(r.status, 502)
    t.is(await errorCode(r), 'UNAVAILABLE')
    t.is(liar.hits.get(byDigest), i, 'nothing cached: the next request asks the upstream again')
  }
  const tag = await oci(node, 'GET', '/v2/liar/bad/manifests/latest', { auth: null })
  t.is(tag.status, 502)
  t.regex(((await tag.json()) as { errors: Array<{ message: string }> }).errors[0].message, /have digest sha256:[0-9a-f]{64}, but the upstream declared/)
  const html = await oci(node, 'GET', '/v2/liar/bad/manifests/html', { auth: null })
  t.is(html.status, 502)
  const blobDigest = digestOf(Buffer.alloc(BLOB.length, 'c'))
  const blob = await oci(node, 'GET', `/v2/liar/bad/blobs/${blobDigest}`, { auth: null })
  // Refused before its first bytes went out: a 502; after: cut off, never complete.
  if (blob.status === 200) await t.throwsAsync(async () => await blob.arrayBuffer())
  else t.is(blob.status, 502)
  await waitFor(() => node.output().includes('upstream content refused; nothing cached'), 'the refusal in the log')
  const blobAgain = await oci(node, 'GET', `/v2/liar/bad/blobs/${blobDigest}`, { auth: null })
  await blobAgain.arrayBuffer().catch(() => {})
  t.is(liar.hits.get(`/v2/bad/blobs/${blobDigest}`), 2)
  const unknown = await oci(node, 'GET', '/v2/liar/bad/manifests/nope', { auth: null })
  t.is(unknown.status, 404)
  t.is(await errorCode(unknown), 'MANIFEST_UNKNOWN')
})

test.serial('a push to a remote repository is refused with an OCI error; referrers are answered from the cache', async t => {
  const c = await clients(t)
  const layout = await newLayout(t)
  const image = await addImage(layout, [await addLayer(layout, { a: 'a\n' })])
  await writeLayout(layout, { '1': image.manifest })
  const push = await c.skopeo(['copy', '--dest-tls-verify=false', '--dest-creds', `admin:${node.adminToken}`, `oci:${layout}:1`, `docker://${c.host}/mirror/pushed/img:1`])
  t.not(push.code, 0)
  t.regex(push.stderr, /remote repository/)
  const upload = await oci(node, 'POST', '/v2/mirror/pushed/img/blobs/uploads/')
  t.is(upload.status, 405)
  const body = await upload.json() as { errors: Array<{ code: string, message: string }> }
  t.is(body.errors[0].code, 'UNSUPPORTED')
  t.regex(body.errors[0].message, /mirror is a remote repository \(a cache of http:\/\/127\.0\.0\.1:\d+\/\); push to a local OCI repository instead/)
  const manifest = await oci(node, 'PUT', '/v2/mirror/pushed/img/manifests/1', { body: image.manifestBytes, headers: { 'Content-Type': image.manifest.mediaType } })
  t.is(manifest.status, 405)

  // docker-registry 2.8 has no referrers API (404): the answer comes from the cached manifests.
  const referrers = await oci(node, 'GET', `/v2/mirror/library/app/referrers/${digestOf('x')}`, { auth: null })
  t.is(referrers.status, 200)
  t.deepEqual(await referrers.json(), { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [] })
  const tags = await oci(node, 'GET', '/v2/hub/app/tags/list', { auth: null })
  t.deepEqual(await tags.json(), { name: 'hub/app', tags: ['1'] })
})

test.serial('referrers from an upstream with the API are passed through, filtered by artifactType, and kept for the TTL', async t => {
  const path = `/v2/liar/bad/referrers/${digestOf(HONEST)}`
  const all = await oci(node, 'GET', path, { auth: null })
  t.is(all.status, 200)
  t.deepEqual(await all.json(), REFERRERS)
  const sboms = await oci(node, 'GET', `${path}?artifactType=application/vnd.example.sbom`, { auth: null })
  t.is(sboms.headers.get('oci-filters-applied'), 'artifactType')
  t.deepEqual((await sboms.json() as typeof REFERRERS).manifests, [REFERRERS.manifests[0]])
  t.is(liar.hits.get(`/v2/bad/referrers/${digestOf(HONEST)}`), 1, 'the second answer came from the cache')
})

test.serial('dockerHubLibrary belongs to remote OCI repositories only', async t => {
  const dir = await makeTempDir(t)
  for (const [i, repo] of ['{ name: d, format: oci, dockerHubLibrary: true }', '{ name: g, format: generic, type: remote, upstream: "http://x/", dockerHubLibrary: true }'].entries()) {
    const file = join(dir, `bad-${i}.yaml`)
    await writeFile(file, `repositories:\n  - ${repo}\n`)
    const r = await akmesh(['repo', 'list', '--config', file])
    t.not(r.code, 0)
    t.regex(r.stderr, /repositories\[0\]\.dockerHubLibrary: only remote OCI repositories \(type: remote, format: oci\) have dockerHubLibrary/)
  }
})
