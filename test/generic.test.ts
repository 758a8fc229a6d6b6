// Generic files over HTTP against a real node process: uploads, downloads, ranges, caching,
// checksums, auth, path safety, limits, listings and compression.
import test from 'ava'
import { createHash } from 'node:crypto'
import { readdir } from 'node:fs/promises'
import { connect } from 'node:net'
import { join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import { akmesh, startTestNode, type TestNode } from './helpers/node.ts'
import { MiB, deterministicBytes, deterministicStream, rawRequest, sha256Hex } from './helpers/streams.ts'

const hex = (algo: string, data: Uint8Array) => createHash(algo).update(data).digest('hex')
const bearer = (token: string) => ({ Authorization: `Bearer ${token}` })

async function put (node: TestNode, path: string, body: Uint8Array | string, headers: Record<string, string> = {}): Promise<Response> {
  return await fetch(`${node.url}/files/${path}`, { method: 'PUT', body, headers: { ...bearer(node.adminToken), ...headers } })
}

async function createToken (node: TestNode, scope: string, repo: string): Promise<{ id: string, token: string }> {
  const r = await akmesh(['token', 'create', '--name', `t-${scope}`, '--scope', scope, '--repo', repo, '--json', '--data', node.dataDir])
  if (r.code !== 0) throw new Error(`token create failed: ${r.stderr}`)
  return JSON.parse(r.stdout)
}

/** Everything the server sends for one request on a fresh connection, bytes exactly. */
async function rawExchange (node: TestNode, request: string): Promise<Buffer> {
  const { hostname, port } = new URL(node.url)
  return await new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => { socket.end(request) })
    const pieces: Buffer[] = []
    socket.on('data', (b: Buffer) => pieces.push(b))
    socket.once('end', () => { resolve(Buffer.concat(pieces)) })
    socket.once('error', reject)
  })
}

async function storedFiles (node: TestNode): Promise<{ blobs: string[], tmp: string[] }> {
  const blobs: string[] = []
  for (const sub of await readdir(join(node.dataDir, 'blobs'))) blobs.push(...await readdir(join(node.dataDir, 'blobs', sub)))
  return { blobs, tmp: await readdir(join(node.dataDir, 'tmp')) }
}

test('PUT, GET, HEAD, overwrite and DELETE of a path', async t => {
  const node = await startTestNode(t)
  const v1 = deterministicBytes(100_000, 'v1')
  const created = await put(node, 'releases/1.0/app.bin', v1, { 'Content-Type': 'application/x-custom' })
  t.is(created.status, 201)
  t.is(created.headers.get('location'), `${node.url}/files/releases/1.0/app.bin`)
  const info = await created.json() as any
  t.like(info, { repo: 'files', path: 'releases/1.0/app.bin', size: v1.byteLength, checksums: { sha256: hex('sha256', v1) } })
  t.regex(info.cid, /^bafkr4i/)

  const got = await fetch(`${node.url}/files/releases/1.0/app.bin`)
  t.is(got.status, 200)
  t.is(got.headers.get('content-type'), 'application/x-custom')
  t.is(got.headers.get('content-length'), String(v1.byteLength))
  t.deepEqual(Buffer.from(await got.arrayBuffer()), v1)

  // HEAD: the same headers and not one byte of body (read off the socket, not through a client
  // that would drop a body on its own).
  const head = await rawExchange(node, 'HEAD /files/releases/1.0/app.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
  const text = head.toString('latin1')
  t.regex(text, /^HTTP\/1\.1 200 /)
  t.regex(text, new RegExp(`\r\ncontent-length: ${v1.byteLength}\r\n`, 'i'))
  t.regex(text, new RegExp(`\r\netag: "${info.cid}"\r\n`, 'i'))
  t.true(text.endsWith('\r\n\r\n'), 'nothing after the header block')

  const v2 = deterministicBytes(5_000, 'v2')
  const replaced = await put(node, 'releases/1.0/app.bin', v2)
  t.is(replaced.status, 200, 'overwrite answers 200, not 201')
  const after = await fetch(`${node.url}/files/releases/1.0/app.bin`)
  t.deepEqual(Buffer.from(await after.arrayBuffer()), v2)
  t.is(after.headers.get('content-type'), 'application/octet-stream')

  const del = await fetch(`${node.url}/files/releases/1.0/app.bin`, { method: 'DELETE', headers: bearer(node.adminToken) })
  t.is(del.status, 204)
  t.is((await fetch(`${node.url}/files/releases/1.0/app.bin`)).status, 404)
  t.is((await fetch(`${node.url}/files/releases/1.0/app.bin`, { method: 'HEAD' })).status, 404)
  t.is((await fetch(`${node.url}/files/releases/1.0/app.bin`, { method: 'DELETE', headers: bearer(node.adminToken) })).status, 404)
  // A generic path may be uploaded again after a delete.
  t.is((await put(node, 'releases/1.0/app.bin', v1)).status, 201)
  t.deepEqual(Buffer.from(await (await fetch(`${node.url}/files/releases/1.0/app.bin`)).arrayBuffer()), v1)
})

test('Range: first bytes, suffix, open-ended, unsatisfiable, If-Range', async t => {
  const node = await startTestNode(t)
  const data = deterministicBytes(10_000, 'range')
  const { cid } = await (await put(node, 'r.bin', data)).json() as any
  const url = `${node.url}/files/r.bin`
  const range = async (header: string, extra: Record<string, string> = {}) => await fetch(url, { headers: { Range: header, ...extra } })

  const first = await range('bytes=0-99')
  t.is(first.status, 206)
  t.is(first.headers.get('content-range'), `bytes 0-99/${data.byteLength}`)
  t.is(first.headers.get('content-length'), '100')
  t.deepEqual(Buffer.from(await first.arrayBuffer()), data.subarray(0, 100))

  const suffix = await range('bytes=-500')
  t.is(suffix.status, 206)
  t.is(suffix.headers.get('content-range'), `bytes 9500-9999/${data.byteLength}`)
  t.deepEqual(Buffer.from(await suffix.arrayBuffer()), data.subarray(9500))

  const open = await range('bytes=9000-')
  t.is(open.status, 206)
  t.is(open.headers.get('content-range'), `bytes 9000-9999/${data.byteLength}`)
  t.deepEqual(Buffer.from(await open.arrayBuffer()), data.subarray(9000))

  const middle = await range('bytes=4096-8191')
  t.deepEqual(Buffer.from(await middle.arrayBuffer()), data.subarray(4096, 8192))

  const unsatisfiable = await range('bytes=10000-')
  t.is(unsatisfiable.status, 416)
  t.is(unsatisfiable.headers.get('content-range'), `bytes */${data.byteLength}`)

  // If-Range with the current ETag honours the range; with an old one the whole file comes back.
  t.is((await range('bytes=0-9', { 'If-Range': `"${cid}"` })).status, 206)
  const stale = await range('bytes=0-9', { 'If-Range': '"bafkr4iold"' })
  t.is(stale.status, 200)
  t.is((await stale.arrayBuffer()).byteLength, data.byteLength)
})

test('ETag and If-None-Match answer 304 until the content changes', async t => {
  const node = await startTestNode(t)
  const { cid } = await (await put(node, 'cached.txt', 'first version')).json() as any
  const url = `${node.url}/files/cached.txt`
  // node:http rather than fetch: fetch adds Cache-Control: no-cache to conditional requests.
  const get = async (inm: string) => await rawRequest('GET', url, { headers: { 'If-None-Match': inm } })
  const first = await fetch(url)
  t.is(first.headers.get('etag'), `"${cid}"`)
  const notModified = await get(`"${cid}"`)
  t.is(notModified.status, 304)
  t.is(notModified.body.byteLength, 0)
  t.is(notModified.headers.etag, `"${cid}"`)
  t.is((await get(`W/"${cid}"`)).status, 304)
  t.is((await get(`"other", "${cid}"`)).status, 304)
  t.is((await get('"something-else"')).status, 200)

  await put(node, 'cached.txt', 'second version')
  const changed = await get(`"${cid}"`)
  t.is(changed.status, 200)
  t.is(changed.body.toString(), 'second version')
  t.not(changed.headers.etag, `"${cid}"`)
})

test('downloads carry checksum headers; uploads with the right checksums are accepted', async t => {
  const node = await startTestNode(t)
  const data = deterministicBytes(300_000, 'checksums')
  const up = await put(node, 'sum/ok.bin', data, {
    'X-Checksum-Sha256': hex('sha256', data),
    'X-Checksum-Sha1': hex('sha1', data).toUpperCase(),
    'X-Checksum-Md5': hex('md5', data),
    'X-Checksum-Sha512': hex('sha512', data)
  })
  t.is(up.status, 201)
  const got = await fetch(`${node.url}/files/sum/ok.bin`)
  t.is(got.headers.get('x-checksum-sha256'), hex('sha256', data))
  t.is(got.headers.get('x-checksum-sha1'), hex('sha1', data))
  t.is(got.headers.get('x-checksum-md5'), hex('md5', data))
  t.is(got.headers.get('x-checksum-sha512'), hex('sha512', data))
  t.is(got.headers.get('repr-digest'), `sha-256=:${createHash('sha256').update(data).digest('base64')}:`)
  t.is(got.headers.get('x-akmesh-cid'), ((await up.json()) as any).cid)
  t.is(sha256Hex(Buffer.from(await got.arrayBuffer())), hex('sha256', data))
})

test('a wrong checksum is refused with 400 and stores nothing; a malformed one too', async t => {
  const node = await startTestNode(t)
  const data = deterministicBytes(200_000, 'wrong')
  const other = Buffer.from('other bytes')
  for (const [header, value] of [
    ['X-Checksum-Sha256', hex('sha256', other)],
    ['X-Checksum-Sha1', hex('sha1', other)],
    ['X-Checksum-Md5', hex('md5', other)],
    ['X-Checksum-Sha512', hex('sha512', other)]
  ]) {
    const r = await put(node, 'bad.bin', data, { [header]: value })
    t.is(r.status, 400, header)
    t.regex(((await r.json()) as any).error, /mismatch/)
  }
  for (const [header, value] of [
    ['X-Checksum-Sha256', 'abc'],
    ['X-Checksum-Sha256', 'z'.repeat(64)],
    ['X-Checksum-Sha1', hex('sha256', data)],
    ['X-Checksum-Md5', hex('md5', data) + '0'],
    ['X-Checksum-Sha512', hex('sha256', data)]
  ]) {
    const r = await put(node, 'bad.bin', data, { [header]: value })
    t.is(r.status, 400, `${header}: ${value}`)
    t.regex(((await r.json()) as any).error, /hex characters/)
  }
  t.is((await fetch(`${node.url}/files/bad.bin`)).status, 404)
  t.deepEqual(await storedFiles(node), { blobs: [], tmp: [] })

  // A refused overwrite leaves the old content in place.
  await put(node, 'keep.txt', 'original')
  t.is((await put(node, 'keep.txt', 'replacement', { 'X-Checksum-Sha256': hex('sha256', other) })).status, 400)
  t.is(await (await fetch(`${node.url}/files/keep.txt`)).text(), 'original')
})

test('auth: anonymous, read-only, other-repository, revoked and bad credentials', async t => {
  const node = await startTestNode(t, {
    config: 'repositories:\n  - { name: files, format: generic }\n  - { name: private, format: generic, anonymousRead: false }\n'
  })
  t.is((await put(node, 'a.txt', 'hello')).status, 201)

  const anonymous = await fetch(`${node.url}/files/b.txt`, { method: 'PUT', body: 'x' })
  t.is(anonymous.status, 401)
  t.regex(anonymous.headers.get('www-authenticate') ?? '', /Bearer realm="akmesh"/)
  t.is((await fetch(`${node.url}/files/a.txt`, { method: 'DELETE' })).status, 401)
  t.is((await fetch(`${node.url}/files/a.txt`)).status, 200, 'anonymous read where allowed')
  const anonymousPrivate = await fetch(`${node.url}/private/`)
  t.is(anonymousPrivate.status, 401)
  t.truthy(anonymousPrivate.headers.get('www-authenticate'))

  const reader = await createToken(node, 'read', 'files,private')
  t.is((await fetch(`${node.url}/files/b.txt`, { method: 'PUT', body: 'x', headers: bearer(reader.token) })).status, 403)
  t.is((await fetch(`${node.url}/files/a.txt`, { method: 'DELETE', headers: bearer(reader.token) })).status, 403)
  t.is((await fetch(`${node.url}/private/`, { headers: bearer(reader.token) })).status, 200)

  const writer = await createToken(node, 'write', 'private')
  t.is((await fetch(`${node.url}/files/b.txt`, { method: 'PUT', body: 'x', headers: bearer(writer.token) })).status, 403, 'grant is for another repository')
  t.is((await fetch(`${node.url}/private/b.txt`, { method: 'PUT', body: 'x', headers: bearer(writer.token) })).status, 201)
  const basic = { Authorization: `Basic ${Buffer.from(`ci:${writer.token}`).toString('base64')}` }
  t.is((await fetch(`${node.url}/private/c.txt`, { method: 'PUT', body: 'x', headers: basic })).status, 201, 'a token as a basic-auth password')

  t.is((await akmesh(['token', 'revoke', writer.id, '--data', node.dataDir])).code, 0)
  const revoked = await fetch(`${node.url}/private/d.txt`, { method: 'PUT', body: 'x', headers: bearer(writer.token) })
  t.is(revoked.status, 401)
  t.truthy(revoked.headers.get('www-authenticate'))
  t.is((await fetch(`${node.url}/files/a.txt`, { headers: bearer(writer.token) })).status, 401, 'bad credentials never fall back to anonymous')
  t.is((await fetch(`${node.url}/files/a.txt`, { headers: bearer('akm_not-a-token') })).status, 401)
  t.is((await fetch(`${node.url}/private/d.txt`)).status, 401)
  t.is((await fetch(`${node.url}/private/d.txt`, { headers: bearer(node.adminToken) })).status, 404, 'nothing was stored by the refused upload')
})

test('path traversal, encoded slashes, backslashes and NUL are refused and store nothing', async t => {
  const node = await startTestNode(t)
  const bad = [
    '/files/../escape.txt', '/files/a/../../escape.txt', '/files/%2e%2e/escape.txt', '/files/%2E%2E/escape.txt',
    '/files/a/%2e%2e/%2e%2e/escape.txt', '/files/.%2e/escape.txt', '/files/./x.txt', '/files/a%2fb.txt', '/files/a%2Fb.txt',
    '/files/a%5cb.txt', '/files/a\\b.txt', '/files/..\\escape.txt', '/files/a%00b.txt', '/files/a%0ab.txt', '/files/a//b.txt',
    '/files/%zz.txt'
  ]
  for (const rawPath of bad) {
    const r = await rawRequest('PUT', node.url, { rawPath, body: 'x', headers: bearer(node.adminToken) })
    t.is(r.status, 400, rawPath)
    const g = await rawRequest('GET', node.url, { rawPath })
    t.true(g.status === 400 || g.status === 404, `GET ${rawPath}: ${g.status}`)
  }
  const listing = await (await fetch(`${node.url}/files/`)).json() as any
  t.deepEqual(listing.files, [])
  t.deepEqual(await storedFiles(node), { blobs: [], tmp: [] })
  // Unusual but safe names still work.
  t.is((await rawRequest('PUT', node.url, { rawPath: '/files/dir/na%20me..v1%2Btag.txt', body: 'ok', headers: bearer(node.adminToken) })).status, 201)
  t.is(await (await fetch(`${node.url}/files/dir/na%20me..v1%2Btag.txt`)).text(), 'ok')
})

test('an upload over limits.uploadBytes gets 413 and the node stays up', async t => {
  const node = await startTestNode(t, { config: 'limits: { uploadBytes: 1MB }\n' })
  const url = `${node.url}/files/big.bin`
  // Declared up front (Content-Length) and discovered while streaming (chunked).
  const declared = await rawRequest('PUT', url, { body: deterministicBytes(3 * MiB, 'big'), headers: bearer(node.adminToken) })
  t.is(declared.status, 413)
  const streamed = await rawRequest('PUT', url, { body: deterministicStream(3 * MiB, 'big'), headers: bearer(node.adminToken) })
  t.is(streamed.status, 413)
  t.is(streamed.headers['content-length'] != null || streamed.headers['transfer-encoding'] != null, true)

  t.is((await fetch(`${node.url}/healthz`)).status, 200)
  t.is((await fetch(url)).status, 404)
  t.deepEqual(await storedFiles(node), { blobs: [], tmp: [] })
  // Exactly the limit is fine.
  t.is((await put(node, 'limit.bin', deterministicBytes(MiB, 'limit'))).status, 201)
})

test('folder listings name the files under a folder, treating _ and % literally', async t => {
  const node = await startTestNode(t)
  for (const p of ['a/one.txt', 'a/two.txt', 'a/sub/three.txt', 'ab/not-in-a.txt', 'a_b/x.txt', 'axb/y.txt', 'top.txt']) {
    t.is((await put(node, p, p)).status, 201, p)
  }
  const list = async (path: string) => ((await (await fetch(`${node.url}/files/${path}`)).json()) as any).files
  t.deepEqual(await list('a/'), ['a/one.txt', 'a/sub/three.txt', 'a/two.txt'])
  t.deepEqual(await list('a/sub/'), ['a/sub/three.txt'])
  t.deepEqual(await list('a_b/'), ['a_b/x.txt'])
  t.deepEqual(await list('nothing/'), [])
  t.deepEqual(await list(''), ['a/one.txt', 'a/sub/three.txt', 'a/two.txt', 'a_b/x.txt', 'ab/not-in-a.txt', 'axb/y.txt', 'top.txt'])
})

test('JSON responses are gzip-compressed for clients that accept gzip; stored files never are', async t => {
  const node = await startTestNode(t)
  for (let i = 0; i < 60; i++) await put(node, `many/file-number-${String(i).padStart(3, '0')}.txt`, `content ${i}`)
  const plain = await rawRequest('GET', `${node.url}/files/many/`)
  t.is(plain.headers['content-encoding'], undefined)
  const expected = JSON.parse(plain.body.toString())
  t.is(expected.files.length, 60)
  t.true(plain.body.byteLength > 1024, 'large enough to be compressed')

  const gz = await rawRequest('GET', `${node.url}/files/many/`, { headers: { 'Accept-Encoding': 'gzip' } })
  t.is(gz.status, 200)
  t.is(gz.headers['content-encoding'], 'gzip')
  t.regex(String(gz.headers.vary), /Accept-Encoding/i)
  t.deepEqual(JSON.parse(gunzipSync(gz.body).toString()), expected)

  // A stored JSON file is served byte for byte: its length, ETag and checksums describe those bytes.
  const doc = Buffer.from(JSON.stringify({ items: Array.from({ length: 500 }, (_, i) => ({ i, name: `item ${i}` })) }))
  await put(node, 'data/doc.json', doc, { 'Content-Type': 'application/json' })
  const file = await rawRequest('GET', `${node.url}/files/data/doc.json`, { headers: { 'Accept-Encoding': 'gzip' } })
  t.is(file.status, 200)
  t.is(file.headers['content-type'], 'application/json')
  t.is(file.headers['content-encoding'], undefined)
  t.is(file.headers['content-length'], String(doc.byteLength))
  t.deepEqual(file.body, doc)
})

test('/healthz and /readyz; only an admin sees the repository names', async t => {
  const node = await startTestNode(t, { config: 'repositories:\n  - { name: files, format: generic }\n  - { name: hidden, format: generic, anonymousRead: false }\n' })
  const health = await fetch(`${node.url}/healthz`)
  t.is(health.status, 200)
  t.deepEqual(await health.json(), { status: 'ok' })
  const ready = await fetch(`${node.url}/readyz`)
  t.is(ready.status, 200)
  t.deepEqual(await ready.json(), { status: 'ready' }, 'anonymous callers learn no repository names')
  const admin = await fetch(`${node.url}/readyz`, { headers: { Authorization: `Bearer ${node.adminToken}` } })
  t.deepEqual(await admin.json(), { status: 'ready', repositories: ['files', 'hidden'] })
  const r = await akmesh(['token', 'create', '--name', 'reader', '--scope', 'read', '--repo', '*', '--data', node.dataDir])
  const reader = r.stdout.trim().split(/\s+/).find(w => w.startsWith('akm_'))
  t.truthy(reader, r.stdout + r.stderr)
  const byReader = await fetch(`${node.url}/readyz`, { headers: { Authorization: `Bearer ${reader}` } })
  t.deepEqual(await byReader.json(), { status: 'ready' }, 'a reader is no operator')
  t.is((await fetch(`${node.url}/no-such-repo/x`)).status, 404)
})
