// Hostile and broken requests: each gets a clear 4xx with an npm-style `{ error }` body, the node
// stays up, and nothing is stored (no packument, no blob files).
import test, { type ExecutionContext } from 'ava'
import { randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { request } from 'node:http'
import { join } from 'node:path'
import { akmesh, makeTempDir, startTestNode, type TestNode } from './helpers/node.ts'
import { listFiles, makeTarball, npmClient, publishBody, writePackage } from './helpers/npm-client.ts'

interface Reply { status: number, body: any, text: string }

/** A request with the path sent byte for byte (fetch would resolve `..` before sending). */
async function raw (node: TestNode, method: string, path: string, body?: string | Buffer, headers: Record<string, string> = {}): Promise<Reply> {
  const url = new URL(node.url)
  return await new Promise((resolve, reject) => {
    const req = request({
      host: url.hostname, port: url.port, method, path,
      headers: { authorization: `Bearer ${node.adminToken}`, 'content-type': 'application/json', ...headers }
    }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c) => { text += c })
      res.on('end', () => {
        let parsed: any
        try { parsed = JSON.parse(text) } catch { parsed = undefined }
        resolve({ status: res.statusCode as number, body: parsed, text })
      })
    })
    req.on('error', reject)
    req.end(body)
  })
}

const put = async (node: TestNode, name: string, body: unknown) =>
  await raw(node, 'PUT', `/npm/${encodeURIComponent(name).replace(/^%40/, '@')}`, typeof body === 'string' ? body : JSON.stringify(body))

/** Asserts a 4xx with an npm error body whose message matches. */
function assertRefused (t: ExecutionContext, r: Reply, status: number, message: RegExp, what: string): void {
  t.is(r.status, status, `${what}: ${r.text}`)
  t.is(typeof r.body?.error, 'string', `${what}: body ${r.text}`)
  t.regex(r.body?.error ?? '', message, what)
}

/** The node still serves, and none of `names` exists, nor any blob. */
async function assertNothingStored (t: ExecutionContext, node: TestNode, names: string[]): Promise<void> {
  t.is((await raw(node, 'GET', '/healthz')).status, 200)
  for (const name of names) {
    const r = await raw(node, 'GET', `/npm/${encodeURIComponent(name).replace(/^%40/, '@')}`)
    t.true(r.status === 404 || r.status === 400, `${name} should not exist: ${r.status} ${r.text}`)
  }
  t.deepEqual(await listFiles(join(node.dataDir, 'blobs')), [])
}

test('path traversal in package and file names is refused', async (t) => {
  const node = await startTestNode(t)
  const paths = [
    '/npm/..%2f..%2fetc', '/npm/%2e%2e', '/npm/..', '/npm/@scope/..', '/npm/@..%2fetc%2fpasswd',
    '/npm/pkg/-/..%2f..%2fetc%2fpasswd', '/npm/pkg/-/../../../etc/passwd', '/npm/pkg/-/..',
    '/npm/pkg/-/x%5c..%5c..%5cy.tgz', '/npm/pkg/-/x%00.tgz', '/npm/%2fetc%2fpasswd', '/npm/pkg/%zz'
  ]
  for (const path of paths) assertRefused(t, await raw(node, 'GET', path), 400, /./, `GET ${path}`)

  const tgz = await makeTarball(await makeTempDir(t), { name: '../evil', version: '1.0.0' })
  assertRefused(t, await raw(node, 'PUT', '/npm/..%2fevil', JSON.stringify(publishBody('../evil', '1.0.0', tgz))), 400, /invalid package name/, 'PUT ../evil')
  assertRefused(t, await raw(node, 'DELETE', '/npm/pkg/-/..%2f..%2fx.tgz/-rev/1-x'), 400, /./, 'DELETE traversal')
  await assertNothingStored(t, node, ['../evil', 'evil'])
})

test('bodies over limits.metadataBytes get 413, from npm publish and from raw requests', async (t) => {
  const node = await startTestNode(t, { config: 'limits:\n  metadataBytes: 65536\n' })
  const npm = await npmClient(t, node)
  if (npm == null) return
  const dir = await writePackage(await makeTempDir(t), { name: 'too-big', version: '1.0.0', source: 'module.exports = 1\n' })
  await writeFile(join(dir, 'noise.bin'), randomBytes(200_000)) // incompressible: the tarball alone is over the limit
  const r = await npm.run(['publish', '--fetch-retries=0'], { cwd: dir })
  t.not(r.code, 0)
  t.regex(r.stderr, /413/)
  t.regex(r.stderr, /limit of 65536 bytes/)

  const declared = await raw(node, 'PUT', '/npm/too-big', Buffer.alloc(70_000, 0x20))
  assertRefused(t, declared, 413, /exceeds the limit of 65536 bytes/, 'Content-Length over the limit')
  const chunked = await raw(node, 'PUT', '/npm/too-big', Buffer.alloc(70_000, 0x20), { 'transfer-encoding': 'chunked' })
  assertRefused(t, chunked, 413, /exceeds the limit of 65536 bytes/, 'chunked body over the limit')
  await assertNothingStored(t, node, ['too-big'])
})

test('malformed JSON and non-document bodies get 400', async (t) => {
  const node = await startTestNode(t)
  assertRefused(t, await put(node, 'pkg', '{"name": "pkg", "versions": '), 400, /malformed JSON/, 'truncated JSON')
  assertRefused(t, await put(node, 'pkg', ''), 400, /empty request body/, 'empty body')
  assertRefused(t, await put(node, 'pkg', '[1, 2]'), 400, /JSON object/, 'array body')
  assertRefused(t, await put(node, 'pkg', '"pkg"'), 400, /JSON object/, 'string body')
  assertRefused(t, await put(node, 'pkg', { name: 'pkg', versions: {}, _attachments: 'nope' }), 400, /exactly one version/, 'no version')
  await assertNothingStored(t, node, ['pkg'])
})

test('a wrong shasum or integrity is rejected before anything is stored', async (t) => {
  const node = await startTestNode(t)
  const tgz = await makeTarball(await makeTempDir(t), { name: 'digests', version: '1.0.0' })

  const badSha1 = publishBody('digests', '1.0.0', tgz)
  badSha1.versions['1.0.0'].dist.shasum = '0'.repeat(40)
  assertRefused(t, await put(node, 'digests', badSha1), 400, /sha1 mismatch/, 'wrong shasum')

  const badSha512 = publishBody('digests', '1.0.0', tgz)
  badSha512.versions['1.0.0'].dist.integrity = 'sha512-' + Buffer.alloc(64, 7).toString('base64')
  assertRefused(t, await put(node, 'digests', badSha512), 400, /sha512 mismatch/, 'wrong integrity')

  const garbled = publishBody('digests', '1.0.0', tgz)
  garbled.versions['1.0.0'].dist.integrity = 'sha512-tooshort'
  assertRefused(t, await put(node, 'digests', garbled), 400, /integrity/, 'malformed integrity')

  const shortData = publishBody('digests', '1.0.0', tgz)
  shortData._attachments['digests-1.0.0.tgz'].length = tgz.length + 1
  assertRefused(t, await put(node, 'digests', shortData), 400, /declares length/, 'attachment length')

  const renamed = publishBody('digests', '1.0.0', tgz)
  renamed._attachments = { 'other-1.0.0.tgz': renamed._attachments['digests-1.0.0.tgz'] }
  assertRefused(t, await put(node, 'digests', renamed), 400, /exactly one file, "digests-1\.0\.0\.tgz"/, 'attachment name')
  await assertNothingStored(t, node, ['digests'])

  // The control: the same tarball with its true digests is stored, as one blob file.
  t.is((await put(node, 'digests', publishBody('digests', '1.0.0', tgz))).status, 201)
  t.is((await listFiles(join(node.dataDir, 'blobs'))).length, 1)
})

test('a tarball whose package.json disagrees with the metadata is rejected', async (t) => {
  const node = await startTestNode(t)
  const root = await makeTempDir(t)
  const otherName = await makeTarball(root, { name: 'someone-else', version: '1.0.0' })
  assertRefused(t, await put(node, 'honest', publishBody('honest', '1.0.0', otherName)), 400, /package\.json is "someone-else"/, 'name differs')
  const otherVersion = await makeTarball(root, { name: 'honest', version: '6.6.6' })
  assertRefused(t, await put(node, 'honest', publishBody('honest', '1.0.0', otherVersion)), 400, /"6\.6\.6"/, 'version differs')
  const notATarball = Buffer.from('this is not a gzipped tar archive at all')
  assertRefused(t, await put(node, 'honest', publishBody('honest', '1.0.0', notATarball)), 400, /not a valid gzipped tar/, 'not a tarball')
  await assertNothingStored(t, node, ['honest', 'someone-else'])
})

test('invalid names, versions and mismatched documents are rejected', async (t) => {
  const node = await startTestNode(t)
  const root = await makeTempDir(t)
  const names = ['.hidden', '_private', 'node_modules', 'has space', 'x'.repeat(215), 'crème', '@scope/', '@/x', 'a/b']
  for (const name of names) {
    const tgz = await makeTarball(root, { name, version: '1.0.0' })
    assertRefused(t, await put(node, name, publishBody(name, '1.0.0', tgz)), 400, /invalid package name|scoped package name/, `name ${JSON.stringify(name)}`)
  }
  for (const version of ['1.0', 'v1.0.0', 'latest', '1.0.0.0', '01.0.0', '1.0.0+build']) {
    const tgz = await makeTarball(root, { name: 'versioned', version })
    assertRefused(t, await put(node, 'versioned', publishBody('versioned', version, tgz)), 400, /invalid version/, `version ${version}`)
  }
  const tgz = await makeTarball(root, { name: 'mismatch', version: '1.0.0' })
  assertRefused(t, await put(node, 'not-mismatch', publishBody('mismatch', '1.0.0', tgz)), 400, /does not match the URL/, 'URL name ≠ body name')
  const docName = publishBody('mismatch', '1.0.0', tgz)
  docName.versions['1.0.0'].name = 'other'
  assertRefused(t, await put(node, 'mismatch', docName), 400, /\.name \("other"\) does not match/, 'version doc name')
  const docVersion = publishBody('mismatch', '1.0.0', tgz)
  docVersion.versions['1.0.0'].version = '2.0.0'
  assertRefused(t, await put(node, 'mismatch', docVersion), 400, /\.version \("2\.0\.0"\) does not match/, 'version doc version')
  const badTag = publishBody('mismatch', '1.0.0', tgz)
  badTag['dist-tags'] = { '1.x': '1.0.0' }
  assertRefused(t, await put(node, 'mismatch', badTag), 400, /semver range/, 'tag that is a range')
  await assertNothingStored(t, node, ['mismatch', 'not-mismatch', 'versioned', ...names.filter(n => !n.includes('/'))])
})

test('names the public registry hosts from before its new-name rules (core module names, uppercase) publish and serve', async (t) => {
  const node = await startTestNode(t)
  const root = await makeTempDir(t)
  for (const name of ['punycode', 'JSONStream']) {
    const tgz = await makeTarball(root, { name, version: '1.0.0' })
    const r = await put(node, name, publishBody(name, '1.0.0', tgz))
    t.true(r.status === 200 || r.status === 201, `${name}: ${r.text}`)
    const packument = await raw(node, 'GET', `/npm/${name}`)
    t.is(packument.status, 200, packument.text)
    t.is(packument.body?.['dist-tags']?.latest, '1.0.0')
  }
})

test('writes need a token with write access', async (t) => {
  const node = await startTestNode(t)
  const tgz = await makeTarball(await makeTempDir(t), { name: 'guarded', version: '1.0.0' })
  const body = JSON.stringify(publishBody('guarded', '1.0.0', tgz))
  assertRefused(t, await raw(node, 'PUT', '/npm/guarded', body, { authorization: '' }), 401, /authentication required/, 'anonymous publish')
  assertRefused(t, await raw(node, 'PUT', '/npm/guarded', body, { authorization: 'Bearer akm_not-a-real-token' }), 401, /invalid/, 'bad token')
  const created = await akmesh(['token', 'create', '--name', 'reader', '--scope', 'read', '--data', node.dataDir, '--json'])
  t.is(created.code, 0, created.stderr)
  const reader = `Bearer ${JSON.parse(created.stdout).token as string}`
  assertRefused(t, await raw(node, 'PUT', '/npm/guarded', body, { authorization: reader }), 403, /no write access/, 'read-only token')
  assertRefused(t, await raw(node, 'GET', '/npm/-/whoami', undefined, { authorization: '' }), 401, /not logged in/, 'anonymous whoami')
  assertRefused(t, await raw(node, 'DELETE', '/npm/-/package/guarded/dist-tags/beta', undefined, { authorization: '' }), 401, /authentication required/, 'anonymous dist-tag rm')
  await assertNothingStored(t, node, ['guarded'])
})
