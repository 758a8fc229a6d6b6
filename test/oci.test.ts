// The OCI Distribution API over plain HTTP against a real node process: uploads (monolithic,
// chunked, mounts), manifests, deletes, discovery, errors and the token flow.
import test from 'ava'
import { randomBytes } from 'node:crypto'
import { listTempFiles } from '../store/blobs.ts'
import { akmesh, startTestNode, type TestNode } from './helpers/node.ts'
import { OCI_TEST_CONFIG as CONFIG, basic, digestOf, errorCode, oci, pushBlob, pushImage } from './helpers/oci-http.ts'
import type { ExecutionContext } from 'ava'

const start = (t: ExecutionContext) => startTestNode(t, { config: CONFIG })

async function addUser (t: ExecutionContext, node: TestNode, name: string, password: string, scopes: string, repos: string): Promise<void> {
  const r = await akmesh(['user', 'add', name, '--password', password, '--scope', scopes, '--repo', repos, '--data', node.dataDir])
  t.is(r.code, 0, r.stderr)
}

test('chunked upload: POST, PATCH in order, 416 out of order, status GET, closing PUT; then ranged reads', async t => {
  const node = await start(t)
  const blob = randomBytes(300_000)
  const started = await oci(node, 'POST', '/v2/docker/chunky/blobs/uploads/', { headers: { 'Content-Length': '0' } })
  t.is(started.status, 202)
  t.is(started.headers.get('content-length'), '0')
  t.is(started.headers.get('range'), '0-0')
  const uuid = started.headers.get('docker-upload-uuid')
  t.truthy(uuid)
  let location = started.headers.get('location') as string
  t.true(location.endsWith(`/v2/docker/chunky/blobs/uploads/${uuid}`))

  const patch = (from: number, to: number, loc: string) => oci(node, 'PATCH', loc, {
    body: blob.subarray(from, to + 1), headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${from}-${to}` }
  })
  const first = await patch(0, 99_999, location)
  t.is(first.status, 202)
  t.is(first.headers.get('range'), '0-99999')
  location = first.headers.get('location') as string

  const outOfOrder = await patch(150_000, 199_999, location)
  t.is(outOfOrder.status, 416)
  t.is(outOfOrder.headers.get('range'), '0-99999')
  t.is(await errorCode(outOfOrder), 'BLOB_UPLOAD_INVALID')

  const status = await oci(node, 'GET', location)
  t.is(status.status, 204)
  t.is(status.headers.get('range'), '0-99999')
  t.is(status.headers.get('docker-upload-uuid'), uuid)

  const second = await patch(100_000, 199_999, location)
  t.is(second.status, 202)
  t.is(second.headers.get('range'), '0-199999')

  const digest = digestOf(blob)
  const closed = await oci(node, 'PUT', `${second.headers.get('location')}?digest=${digest}`, {
    body: blob.subarray(200_000), headers: { 'Content-Range': `200000-${blob.length - 1}` }
  })
  t.is(closed.status, 201, await closed.clone().text())
  t.is(closed.headers.get('docker-content-digest'), digest)
  t.true((closed.headers.get('location') as string).endsWith(`/v2/docker/chunky/blobs/${digest}`))
  t.is(await errorCode(await oci(node, 'GET', location)), 'BLOB_UPLOAD_UNKNOWN')

  const head = await oci(node, 'HEAD', `/v2/docker/chunky/blobs/${digest}`, { auth: null })
  t.is(head.status, 200)
  t.is(head.headers.get('content-length'), String(blob.length))
  t.is(head.headers.get('docker-content-digest'), digest)
  const ranged = await oci(node, 'GET', `/v2/docker/chunky/blobs/${digest}`, { auth: null, headers: { Range: 'bytes=1000-1999' } })
  t.is(ranged.status, 206)
  t.deepEqual(Buffer.from(await ranged.arrayBuffer()), blob.subarray(1000, 2000))
  const whole = await oci(node, 'GET', `/v2/docker/chunky/blobs/${digest}`, { auth: null })
  t.deepEqual(Buffer.from(await whole.arrayBuffer()), blob)
  // Blobs are scoped to the image they were pushed to.
  t.is(await errorCode(await oci(node, 'GET', `/v2/docker/elsewhere/blobs/${digest}`)), 'BLOB_UNKNOWN')
})

test('monolithic uploads (POST ?digest=, POST then PUT) and digest, name and method errors', async t => {
  const node = await start(t)
  const a = randomBytes(5000)
  const single = await oci(node, 'POST', `/v2/docker/mono/blobs/uploads/?digest=${digestOf(a)}`, { body: a })
  t.is(single.status, 201)
  t.is(single.headers.get('docker-content-digest'), digestOf(a))

  const b = randomBytes(7000)
  const session = await oci(node, 'POST', '/v2/docker/mono/blobs/uploads/')
  t.is(session.status, 202)
  const put = await oci(node, 'PUT', `${session.headers.get('location')}?digest=${digestOf(b)}`, { body: b })
  t.is(put.status, 201)
  t.is((await oci(node, 'HEAD', `/v2/docker/mono/blobs/${digestOf(b)}`)).status, 200)

  const c = randomBytes(100)
  const wrong = await oci(node, 'POST', `/v2/docker/mono/blobs/uploads/?digest=${digestOf('something else')}`, { body: c })
  t.is(wrong.status, 400)
  t.is(await errorCode(wrong), 'DIGEST_INVALID')
  t.is((await oci(node, 'HEAD', `/v2/docker/mono/blobs/${digestOf(c)}`)).status, 404)
  const missingDigest = await oci(node, 'PUT', (await oci(node, 'POST', '/v2/docker/mono/blobs/uploads/')).headers.get('location') as string, { body: c })
  t.is(await errorCode(missingDigest), 'DIGEST_INVALID')

  t.is(await errorCode(await oci(node, 'GET', '/v2/docker/mono/blobs/sha256:nothex')), 'DIGEST_INVALID')
  t.is(await errorCode(await oci(node, 'GET', `/v2/docker/mono/blobs/sha512:${'a'.repeat(128)}`)), 'DIGEST_INVALID')
  t.is(await errorCode(await oci(node, 'GET', '/v2/docker/Upper/tags/list')), 'NAME_INVALID')
  t.is(await errorCode(await oci(node, 'GET', '/v2/docker/a..b/tags/list')), 'NAME_INVALID')
  t.is(await errorCode(await oci(node, 'GET', '/v2/docker/manifests/latest')), 'NAME_INVALID')
  t.is(await errorCode(await oci(node, 'GET', '/v2/nowhere/x/manifests/latest')), 'NAME_UNKNOWN')
  const unsupported = await oci(node, 'POST', '/v2/docker/mono/manifests/latest')
  t.is(unsupported.status, 405)
  t.is(await errorCode(unsupported), 'UNSUPPORTED')
})

test('manifests: pushed bytes served identically by tag and digest, for every manifest type; missing references refused', async t => {
  const node = await start(t)
  const image = await pushImage(node, 'docker/app', 'v1')
  for (const ref of ['v1', image.digest]) {
    const res = await oci(node, 'GET', `/v2/docker/app/manifests/${ref}`, { auth: null })
    t.is(res.status, 200)
    t.is(res.headers.get('content-type'), 'application/vnd.oci.image.manifest.v1+json')
    t.is(res.headers.get('docker-content-digest'), image.digest)
    t.deepEqual(Buffer.from(await res.arrayBuffer()), image.bytes)
  }
  const head = await oci(node, 'HEAD', '/v2/docker/app/manifests/v1')
  t.is(head.headers.get('content-length'), String(image.bytes.length))

  const docker = await pushImage(node, 'docker/app', 'docker', { mediaType: 'application/vnd.docker.distribution.manifest.v2+json' })
  t.is((await oci(node, 'GET', '/v2/docker/app/manifests/docker')).headers.get('content-type'), 'application/vnd.docker.distribution.manifest.v2+json')

  for (const type of ['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json']) {
    const child = type.includes('docker') ? docker : image
    const index = Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: type,
      manifests: [{ mediaType: child === docker ? 'application/vnd.docker.distribution.manifest.v2+json' : 'application/vnd.oci.image.manifest.v1+json', digest: child.digest, size: child.bytes.length, platform: { os: 'linux', architecture: 'amd64' } }]
    }))
    const put = await oci(node, 'PUT', `/v2/docker/app/manifests/${digestOf(index)}`, { body: index, headers: { 'Content-Type': type } })
    t.is(put.status, 201)
    const got = await oci(node, 'GET', `/v2/docker/app/manifests/${digestOf(index)}`)
    t.is(got.headers.get('content-type'), type)
    t.deepEqual(Buffer.from(await got.arrayBuffer()), index)
  }

  const ghost = digestOf('never uploaded')
  const missingLayer = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: image.config, size: JSON.parse(image.bytes.toString()).config.size },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: ghost, size: 14 }]
  }))
  const refused = await oci(node, 'PUT', '/v2/docker/app/manifests/broken', { body: missingLayer, headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' } })
  t.is(refused.status, 400)
  const body = await refused.json() as { errors: Array<{ code: string, detail: { digest: string } }> }
  t.is(body.errors[0].code, 'MANIFEST_BLOB_UNKNOWN')
  t.is(body.errors[0].detail.digest, ghost)
  t.is((await oci(node, 'GET', '/v2/docker/app/manifests/broken')).status, 404)

  const orphanIndex = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: ghost, size: 10 }] })
  const refusedIndex = await oci(node, 'PUT', '/v2/docker/app/manifests/idx', { body: orphanIndex, headers: { 'Content-Type': 'application/vnd.oci.image.index.v1+json' } })
  t.is(await errorCode(refusedIndex), 'MANIFEST_BLOB_UNKNOWN')

  const mismatch = await oci(node, 'PUT', `/v2/docker/app/manifests/${digestOf('other bytes')}`, { body: image.bytes, headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' } })
  t.is(await errorCode(mismatch), 'DIGEST_INVALID')
  const notJson = await oci(node, 'PUT', '/v2/docker/app/manifests/bad', { body: '{not json', headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' } })
  t.is(await errorCode(notJson), 'MANIFEST_INVALID')
  const schema1 = await oci(node, 'PUT', '/v2/docker/app/manifests/old', { body: '{"schemaVersion":1}', headers: { 'Content-Type': 'application/vnd.docker.distribution.manifest.v1+json' } })
  t.is(await errorCode(schema1), 'MANIFEST_INVALID')
  t.is(await errorCode(await oci(node, 'GET', '/v2/docker/app/manifests/nope')), 'MANIFEST_UNKNOWN')
})

test('deletes: a tag, a manifest by digest (and its tags), a blob; each then 404', async t => {
  const node = await start(t)
  const image = await pushImage(node, 'docker/del', 'one')
  t.is((await oci(node, 'HEAD', `/v2/docker/del/blobs/${image.digest}`)).status, 200, 'a manifest is readable as a blob too')
  const retag = await oci(node, 'PUT', '/v2/docker/del/manifests/two', { body: image.bytes, headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' } })
  t.is(retag.status, 201)

  t.is((await oci(node, 'DELETE', '/v2/docker/del/manifests/one')).status, 202)
  t.is(await errorCode(await oci(node, 'GET', '/v2/docker/del/manifests/one')), 'MANIFEST_UNKNOWN')
  t.is((await oci(node, 'GET', `/v2/docker/del/manifests/${image.digest}`)).status, 200)
  t.is(await errorCode(await oci(node, 'DELETE', '/v2/docker/del/manifests/one')), 'MANIFEST_UNKNOWN')

  t.is((await oci(node, 'DELETE', `/v2/docker/del/manifests/${image.digest}`)).status, 202)
  t.is((await oci(node, 'GET', `/v2/docker/del/manifests/${image.digest}`)).status, 404)
  t.is((await oci(node, 'GET', '/v2/docker/del/manifests/two')).status, 404, 'tags of a deleted manifest go with it')
  t.is((await oci(node, 'HEAD', `/v2/docker/del/blobs/${image.digest}`)).status, 404, 'nor is it readable as a blob')

  const layer = image.layers[0]
  t.is((await oci(node, 'DELETE', `/v2/docker/del/blobs/${layer}`)).status, 202)
  t.is((await oci(node, 'HEAD', `/v2/docker/del/blobs/${layer}`)).status, 404)
  t.is(await errorCode(await oci(node, 'DELETE', `/v2/docker/del/blobs/${layer}`)), 'BLOB_UNKNOWN')
  t.is((await oci(node, 'DELETE', `/v2/docker/del/blobs/${image.config}`, { auth: null })).status, 401)
})

test('tags/list and _catalog paginate with n, last and a Link to the next page', async t => {
  const node = await start(t)
  const image = await pushImage(node, 'docker/paged', 'e')
  for (const tag of ['c', 'a', 'd', 'b']) {
    const r = await oci(node, 'PUT', `/v2/docker/paged/manifests/${tag}`, { body: image.bytes, headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' } })
    t.is(r.status, 201)
  }
  const all = await (await oci(node, 'GET', '/v2/docker/paged/tags/list', { auth: null })).json()
  t.deepEqual(all, { name: 'docker/paged', tags: ['a', 'b', 'c', 'd', 'e'] })

  const pages: string[][] = []
  let next: string | null = '/v2/docker/paged/tags/list?n=2'
  while (next != null) {
    const res = await oci(node, 'GET', next)
    pages.push(((await res.json()) as { tags: string[] }).tags)
    next = /<([^>]+)>;\s*rel="next"/.exec(res.headers.get('link') ?? '')?.[1] ?? null
  }
  t.deepEqual(pages, [['a', 'b'], ['c', 'd'], ['e']])
  t.deepEqual(((await (await oci(node, 'GET', '/v2/docker/paged/tags/list?n=10&last=c')).json()) as { tags: string[] }).tags, ['d', 'e'])
  const none = await oci(node, 'GET', '/v2/docker/paged/tags/list?n=0')
  t.deepEqual(((await none.json()) as { tags: string[] }).tags, [])
  t.is(none.headers.get('link'), null)
  t.is(await errorCode(await oci(node, 'GET', '/v2/docker/unknown/tags/list')), 'NAME_UNKNOWN')

  await pushImage(node, 'docker/zeta', 'latest')
  await pushImage(node, 'other/alpha', 'latest')
  await pushImage(node, 'private/secret', 'latest')
  const seen: string[] = []
  next = '/v2/_catalog?n=1'
  while (next != null) {
    const res = await oci(node, 'GET', next)
    t.is(res.status, 200)
    seen.push(...((await res.json()) as { repositories: string[] }).repositories)
    next = /<([^>]+)>;\s*rel="next"/.exec(res.headers.get('link') ?? '')?.[1] ?? null
  }
  t.deepEqual(seen, ['docker/paged', 'docker/zeta', 'other/alpha', 'private/secret'])
  const anonymous = await oci(node, 'GET', '/v2/_catalog', { auth: null })
  t.is(anonymous.status, 401, 'an anonymous caller cannot see the private repository, so it is asked to log in')
  t.regex(anonymous.headers.get('www-authenticate') ?? '', /scope="registry:catalog:\*"/)
})

test('referrers API: manifests with a subject, artifactType filtering, OCI-Subject on push', async t => {
  const node = await start(t)
  const subject = await pushImage(node, 'docker/signed', 'v1')
  const subjectDescriptor = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: subject.digest, size: subject.bytes.length }
  const empty = '{}'
  const pushReferrer = async (tag: string, extra: Record<string, unknown>, configMediaType: string) => {
    const res = await pushImage(node, 'docker/signed', tag, { config: empty, configMediaType, layers: [`payload ${tag}`], extra: { subject: subjectDescriptor, ...extra } })
    const got = await oci(node, 'HEAD', `/v2/docker/signed/manifests/${res.digest}`)
    t.is(got.status, 200)
    return res
  }
  const sbom1 = await pushReferrer('sbom', { artifactType: 'application/vnd.example.sbom.v1', annotations: { 'org.example.kind': 'sbom' } }, 'application/vnd.oci.empty.v1+json')
  const sig = await pushReferrer('sig', {}, 'application/vnd.example.signature.config.v1+json')

  // OCI-Subject is sent on the push response itself.
  const again = await oci(node, 'PUT', '/v2/docker/signed/manifests/sig2', { body: sig.bytes, headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' } })
  t.is(again.headers.get('oci-subject'), subject.digest)
  t.is((await oci(node, 'PUT', '/v2/docker/signed/manifests/plain', { body: subject.bytes, headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' } })).headers.get('oci-subject'), null)

  const all = await oci(node, 'GET', `/v2/docker/signed/referrers/${subject.digest}`, { auth: null })
  t.is(all.status, 200)
  t.is(all.headers.get('content-type'), 'application/vnd.oci.image.index.v1+json')
  t.is(all.headers.get('oci-filters-applied'), null)
  const index = await all.json() as { manifests: Array<{ digest: string, artifactType?: string, annotations?: Record<string, string>, size: number }> }
  t.deepEqual(index.manifests.map(m => m.digest).sort(), [sbom1.digest, sig.digest].sort())
  const sigEntry = index.manifests.find(m => m.digest === sig.digest)
  t.is(sigEntry?.artifactType, 'application/vnd.example.signature.config.v1+json', 'without artifactType, the config media type stands in')
  t.is(sigEntry?.size, sig.bytes.length)

  const filtered = await oci(node, 'GET', `/v2/docker/signed/referrers/${subject.digest}?artifactType=application/vnd.example.sbom.v1`)
  t.is(filtered.headers.get('oci-filters-applied'), 'artifactType')
  const f = await filtered.json() as { manifests: Array<{ digest: string, annotations?: Record<string, string> }> }
  t.deepEqual(f.manifests.map(m => m.digest), [sbom1.digest])
  t.deepEqual(f.manifests[0].annotations, { 'org.example.kind': 'sbom' })

  const none = await oci(node, 'GET', `/v2/docker/signed/referrers/${digestOf('no such subject')}`)
  t.is(none.status, 200)
  t.deepEqual(((await none.json()) as { manifests: unknown[] }).manifests, [])
  t.is(await errorCode(await oci(node, 'GET', '/v2/docker/signed/referrers/sha256:zz')), 'DIGEST_INVALID')
})

test('cross-repository mount: 201 when the caller can read the source, else an upload session (202)', async t => {
  const node = await start(t)
  const layer = randomBytes(20_000)
  const digest = await pushBlob(node, 'docker/src', layer)
  const secret = await pushBlob(node, 'private/src', randomBytes(1000))
  await addUser(t, node, 'mounter', 'mounter-password', 'read,write', 'docker,other')
  const auth = basic('mounter', 'mounter-password')

  const within = await oci(node, 'POST', `/v2/docker/dst/blobs/uploads/?mount=${digest}&from=docker/src`, { auth })
  t.is(within.status, 201)
  t.is(within.headers.get('docker-content-digest'), digest)
  t.true((within.headers.get('location') as string).endsWith(`/v2/docker/dst/blobs/${digest}`))
  const mounted = await oci(node, 'GET', `/v2/docker/dst/blobs/${digest}`, { auth })
  t.deepEqual(Buffer.from(await mounted.arrayBuffer()), layer)

  const across = await oci(node, 'POST', `/v2/other/dst/blobs/uploads/?mount=${digest}&from=docker/src`, { auth })
  t.is(across.status, 201, 'mounts work across akmesh repositories too')

  const forbidden = await oci(node, 'POST', `/v2/docker/dst/blobs/uploads/?mount=${secret}&from=private/src`, { auth })
  t.is(forbidden.status, 202, 'no read access to the source: an ordinary upload session instead')
  t.truthy(forbidden.headers.get('docker-upload-uuid'))
  t.is((await oci(node, 'HEAD', `/v2/docker/dst/blobs/${secret}`)).status, 404)
  t.is((await oci(node, 'DELETE', forbidden.headers.get('location') as string, { auth })).status, 204)

  const unknown = await oci(node, 'POST', `/v2/docker/dst/blobs/uploads/?mount=${digestOf('absent')}&from=docker/src`, { auth })
  t.is(unknown.status, 202)
  t.is((await listTempFiles(node.dataDir)).length, 1, 'the open session holds one temp file')
  t.is((await oci(node, 'DELETE', unknown.headers.get('location') as string, { auth })).status, 204)
  t.deepEqual(await listTempFiles(node.dataDir), [], 'cancelled sessions leave no temp file')
})

test('token flow: challenge, anonymous and password tokens, Basic on endpoints, wrong credentials, DENIED', async t => {
  const node = await start(t)
  await pushImage(node, 'private/app', 'v1')
  await addUser(t, node, 'alice', 'alice-password', 'read,write', 'private,docker')
  await addUser(t, node, 'reader', 'reader-password', 'read', '*')

  const ping = await oci(node, 'GET', '/v2/', { auth: null })
  t.is(ping.status, 401)
  t.is(ping.headers.get('www-authenticate'), `Bearer realm="${node.url}/v2/token",service="akmesh"`)
  t.is(await errorCode(ping), 'UNAUTHORIZED')

  const anon = await (await oci(node, 'GET', '/v2/token?service=akmesh&scope=repository:private/app:pull', { auth: null })).json() as { token: string }
  const denied = await oci(node, 'GET', '/v2/private/app/manifests/v1', { auth: `Bearer ${anon.token}` })
  t.is(denied.status, 401)
  t.is(denied.headers.get('www-authenticate'), `Bearer realm="${node.url}/v2/token",service="akmesh",scope="repository:private/app:pull"`)
  t.is((await oci(node, 'GET', '/v2/', { auth: `Bearer ${anon.token}` })).status, 200)

  const issued = await oci(node, 'GET', '/v2/token?service=akmesh&scope=repository:private/app:pull,push', { auth: basic('alice', 'alice-password') })
  t.is(issued.status, 200)
  const body = await issued.json() as { token: string, access_token: string, expires_in: number, issued_at: string }
  t.notRegex(body.token, /^akm_/, 'a scoped token, not one of the user\'s akm_ tokens')
  t.is(body.access_token, body.token)
  t.is(body.expires_in, 300)
  t.false(Number.isNaN(Date.parse(body.issued_at)))
  t.is((await oci(node, 'GET', '/v2/private/app/manifests/v1', { auth: `Bearer ${body.token}` })).status, 200)

  const own = await (await oci(node, 'GET', '/v2/token?service=akmesh&scope=repository:private/app:pull', { auth: basic('admin', node.adminToken) })).json() as { token: string }
  t.not(own.token, node.adminToken, 'an akm_ token presented as the password is exchanged for a scoped token')
  t.is((await oci(node, 'GET', '/v2/private/app/manifests/v1', { auth: `Bearer ${own.token}` })).status, 200)

  t.is((await oci(node, 'GET', '/v2/private/app/manifests/v1', { auth: basic('alice', 'alice-password') })).status, 200)

  const wrong = await oci(node, 'GET', '/v2/token?service=akmesh', { auth: basic('alice', 'not-her-password') })
  t.is(wrong.status, 401)
  t.regex(wrong.headers.get('www-authenticate') ?? '', /^Bearer realm=".*\/v2\/token",service="akmesh"/)
  const wrongDirect = await oci(node, 'GET', '/v2/private/app/manifests/v1', { auth: basic('alice', 'not-her-password') })
  t.is(wrongDirect.status, 401)
  t.regex(wrongDirect.headers.get('www-authenticate') ?? '', /scope="repository:private\/app:pull"/)

  const readOnly = await oci(node, 'POST', '/v2/private/app/blobs/uploads/', { auth: basic('reader', 'reader-password') })
  t.is(readOnly.status, 403)
  t.is(await errorCode(readOnly), 'DENIED')
})
