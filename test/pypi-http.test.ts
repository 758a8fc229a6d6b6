// The PyPI format over HTTP against a real node process, with wheels and sdists built in memory:
// upload validation, the Simple API (PEP 503/691/658/592/700), downloads, yanking, auth, limits.
// test/pypi.test.ts drives the same node with the real twine and pip.
import test, { type ExecutionContext } from 'ava'
import { randomBytes } from 'node:crypto'
import { readdir } from 'node:fs/promises'
import { get } from 'node:http'
import { join } from 'node:path'
import { akmesh, startTestNode, type TestNode } from './helpers/node.ts'
import { coreMetadata, makeSdist, makeWheel, sha256, upload, uploadForm, type Dist } from './helpers/pypi-dists.ts'

const JSON_TYPE = 'application/vnd.pypi.simple.v1+json'
const bearer = (token: string) => ({ Authorization: `Bearer ${token}` })

// Tests that use distinct project names share one node (each node is a process to start); it
// lives as long as the file, so its cleanups are collected here rather than in one test's `t`.
const cleanups: Array<() => unknown> = []
const fileScope = { teardown: (fn: () => unknown) => { cleanups.push(fn) } } as unknown as ExecutionContext
let shared: Promise<TestNode> | undefined
const sharedNode = async () => await (shared ??= startTestNode(fileScope))
test.after.always(async () => { for (const fn of cleanups.reverse()) await fn() })

async function storedFiles (node: TestNode): Promise<{ blobs: number, tmp: number }> {
  let blobs = 0
  for (const sub of await readdir(join(node.dataDir, 'blobs'))) blobs += (await readdir(join(node.dataDir, 'blobs', sub))).length
  return { blobs, tmp: (await readdir(join(node.dataDir, 'tmp'))).length }
}

async function uploadOk (t: any, node: TestNode, dist: Dist, name: string, version: string, path?: string): Promise<void> {
  const r = await upload(node, await uploadForm(dist, name, version), { path })
  t.is(r.status, 200, `upload of ${dist.filename}: ${r.status} ${r.statusText}`)
  await r.body?.cancel()
}

/** node:http rather than fetch: fetch adds "Cache-Control: no-cache" to conditional requests,
 *  which (rightly) defeats a 304; pip's HTTP cache sends the validator alone. */
async function statusOf (url: string, headers: Record<string, string>): Promise<number> {
  return await new Promise((resolve, reject) => {
    get(url, { headers }, (res) => { res.resume(); resolve(res.statusCode as number) }).once('error', reject)
  })
}

const page = async (node: TestNode, project: string, accept?: string) =>
  await fetch(`${node.url}/pypi/simple/${project}/`, { headers: accept == null ? {} : { Accept: accept } })

test('upload, PEP 503 HTML, PEP 691 JSON, PEP 658 metadata and downloads', async t => {
  const node = await sharedNode()
  const wheel = await makeWheel('Demo.Pkg_One', '1.0', { requiresPython: '>=3.8, <4' })
  const sdist = await makeSdist(t, 'Demo.Pkg_One', '1.0', { requiresPython: '>=3.8, <4' })
  const up = await upload(node, await uploadForm(wheel, 'Demo.Pkg_One', '1.0'))
  t.is(up.status, 200)
  t.like(await up.json(), { project: 'demo-pkg-one', version: '1.0', filename: wheel.filename, sha256: sha256(wheel.bytes) })
  await uploadOk(t, node, sdist, 'Demo.Pkg_One', '1.0', '/pypi/legacy/') // twine's other spelling of the URL

  const index = await fetch(`${node.url}/pypi/simple/`)
  t.is(index.headers.get('content-type'), 'text/html; charset=utf-8')
  t.regex(index.headers.get('vary') ?? '', /Accept(,|$)/)
  t.regex(await index.text(), /<a href="demo-pkg-one\/">demo-pkg-one<\/a>/)
  const indexJson = await fetch(`${node.url}/pypi/simple/`, { headers: { Accept: JSON_TYPE } })
  t.is(indexJson.headers.get('content-type'), JSON_TYPE)
  t.true((await indexJson.json() as any).projects.some((p: any) => p.name === 'demo-pkg-one'))

  // PEP 503: other spellings of the name, and a missing slash, redirect to the normalised URL.
  for (const path of ['Demo.Pkg_One/', 'demo__pkg.one/', 'demo-pkg-one']) {
    const r = await fetch(`${node.url}/pypi/simple/${path}`, { redirect: 'manual' })
    t.is(r.status, 301, path)
    t.is(r.headers.get('location'), `${node.url}/pypi/simple/demo-pkg-one/`, path)
  }

  const html = await (await page(node, 'demo-pkg-one')).text()
  const metadataHash = sha256(wheel.metadata)
  for (const dist of [wheel, sdist]) {
    const anchor = new RegExp(`<a href="${node.url}/pypi/packages/demo-pkg-one/${dist.filename.replace(/\./g, '\\.')}#sha256=${sha256(dist.bytes)}"([^>]*)>${dist.filename.replace(/\./g, '\\.')}</a>`).exec(html)
    t.truthy(anchor, `anchor for ${dist.filename} in\n${html}`)
    t.regex(anchor?.[1] ?? '', / data-requires-python="&gt;=3\.8, &lt;4"/)
    t.regex(anchor?.[1] ?? '', new RegExp(` data-core-metadata="sha256=${metadataHash}" data-dist-info-metadata="sha256=${metadataHash}"`))
    t.notRegex(anchor?.[1] ?? '', /data-yanked/)
  }

  const res = await page(node, 'demo-pkg-one', JSON_TYPE)
  t.is(res.headers.get('content-type'), JSON_TYPE)
  const doc = await res.json() as any
  t.deepEqual(doc.meta, { 'api-version': '1.1' })
  t.is(doc.name, 'demo-pkg-one')
  t.deepEqual(doc.versions, ['1.0'])
  const file = doc.files.find((f: any) => f.filename === wheel.filename)
  t.like(file, {
    url: `${node.url}/pypi/packages/demo-pkg-one/${wheel.filename}`,
    hashes: { sha256: sha256(wheel.bytes) },
    'requires-python': '>=3.8, <4',
    'core-metadata': { sha256: metadataHash },
    'dist-info-metadata': { sha256: metadataHash },
    yanked: false,
    size: wheel.bytes.length
  })
  t.regex(file['upload-time'], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/)
  t.truthy(doc.files.find((f: any) => f.filename === sdist.filename))

  // PEP 658: the metadata file beside each distribution, extracted at upload (wheel METADATA,
  // sdist PKG-INFO), with the hash the index announced.
  for (const dist of [wheel, sdist]) {
    const meta = await fetch(`${node.url}/pypi/packages/demo-pkg-one/${dist.filename}.metadata`)
    t.is(meta.status, 200)
    const text = await meta.text()
    t.is(text, dist.metadata)
    t.is(sha256(text), metadataHash)
  }

  const download = await fetch(file.url)
  t.is(download.status, 200)
  t.deepEqual(Buffer.from(await download.arrayBuffer()), wheel.bytes)
  t.is(download.headers.get('x-checksum-sha256'), sha256(wheel.bytes))
  const ranged = await fetch(file.url, { headers: { Range: 'bytes=0-3' } })
  t.is(ranged.status, 206)
  t.deepEqual(Buffer.from(await ranged.arrayBuffer()), wheel.bytes.subarray(0, 4))
  t.is((await fetch(`${node.url}/pypi/packages/demo-pkg-one/nope-1.0.tar.gz`)).status, 404)

  // An unchanged index revalidates to a 304.
  const first = await page(node, 'demo-pkg-one')
  await first.body?.cancel()
  t.is(first.headers.get('cache-control'), 'no-cache')
  t.is(await statusOf(`${node.url}/pypi/simple/demo-pkg-one/`, { 'If-None-Match': first.headers.get('etag') ?? '' }), 304)
  t.is((await page(node, 'no-such-project')).status, 404)
})

test('PEP 691 content negotiation follows Accept and its q-values', async t => {
  const node = await sharedNode()
  await uploadOk(t, node, await makeWheel('negotiated', '1.0'), 'negotiated', '1.0')
  const cases: Array<[string | undefined, string]> = [
    [undefined, 'text/html; charset=utf-8'],
    ['*/*', 'text/html; charset=utf-8'],
    ['text/html', 'text/html; charset=utf-8'],
    [JSON_TYPE, JSON_TYPE],
    ['application/vnd.pypi.simple.latest+json', JSON_TYPE],
    ['application/vnd.pypi.simple.v1+html', 'application/vnd.pypi.simple.v1+html'],
    // pip's header: JSON preferred, HTML as fallbacks.
    [`${JSON_TYPE}, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01`, JSON_TYPE],
    [`text/html;q=0.5, ${JSON_TYPE};q=0.9`, JSON_TYPE],
    [`${JSON_TYPE};q=0.2, text/html`, 'text/html; charset=utf-8'],
    [`${JSON_TYPE};q=0, */*;q=0.1`, 'text/html; charset=utf-8'],
    ['application/x-unknown', 'text/html; charset=utf-8'] // nothing acceptable: PEP 691 lets us pick HTML
  ]
  for (const [accept, expected] of cases) {
    const r = await page(node, 'negotiated', accept)
    t.is(r.status, 200, String(accept))
    t.is(r.headers.get('content-type'), expected, String(accept))
    t.regex(r.headers.get('vary') ?? '', /Accept(,|$)/)
    const body = await r.text()
    if (expected === JSON_TYPE) t.is(JSON.parse(body).name, 'negotiated')
    else t.regex(body, /^<!DOCTYPE html>/)
  }
  const viaQuery = await fetch(`${node.url}/pypi/simple/negotiated/?format=${encodeURIComponent(JSON_TYPE)}`)
  t.is(viaQuery.headers.get('content-type'), JSON_TYPE)
  await viaQuery.body?.cancel()
})

test('a duplicate file is a 409 whose reason phrase says so; other files join the release', async t => {
  const node = await sharedNode()
  const wheel = await makeWheel('dup-pkg', '3.1')
  await uploadOk(t, node, wheel, 'dup-pkg', '3.1')
  const again = await upload(node, await uploadForm(wheel, 'Dup_Pkg', '3.1'))
  t.is(again.status, 409)
  t.regex(again.statusText, /^File already exists: dup_pkg-3\.1-py3-none-any\.whl/) // what twine prints
  t.regex(await again.text(), /File already exists/)
  await uploadOk(t, node, await makeSdist(t, 'dup-pkg', '3.1'), 'dup-pkg', '3.1')
  const doc = await (await page(node, 'dup-pkg', JSON_TYPE)).json() as any
  t.deepEqual(doc.files.map((f: any) => f.filename), ['dup_pkg-3.1-py3-none-any.whl', 'dup_pkg-3.1.tar.gz'])
})

test('bad uploads are refused with 400 and a message naming the problem', async t => {
  const node = await sharedNode()
  const wheel = await makeWheel('bad-input', '1.0')
  const cases: Array<[string, () => Promise<FormData | string>, RegExp]> = [
    ['wheel of another project', async () => await uploadForm(await makeWheel('other', '1.0'), 'bad-input', '1.0'), /does not match the project and version bad-input-1\.0/],
    ['wheel of another version', async () => await uploadForm(wheel, 'bad-input', '2.0'), /does not match the project and version/],
    ['sdist of another project', async () => await uploadForm(await makeSdist(t, 'other', '1.0'), 'bad-input', '1.0'), /sdist filename .* does not match/],
    ['invalid version', async () => await uploadForm(wheel, 'bad-input', 'banana'), /not a PEP 440 version/],
    ['invalid name', async () => await uploadForm(wheel, 'bad input!', '1.0'), /invalid project name/],
    ['egg', async () => await uploadForm(wheel, 'bad-input', '1.0', { filetype: 'bdist_egg' }), /only wheels \(bdist_wheel\) and sdists/],
    ['filetype disagrees with the filename', async () => await uploadForm(wheel, 'bad-input', '1.0', { filetype: 'sdist' }), /does not match the filename/],
    ['other action', async () => await uploadForm(wheel, 'bad-input', '1.0', { ':action': 'submit' }), /unsupported :action "submit"/],
    ['no digest', async () => await uploadForm(wheel, 'bad-input', '1.0', { sha256_digest: null, md5_digest: null, blake2_256_digest: null }), /declares no digest/],
    ['malformed digest', async () => await uploadForm(wheel, 'bad-input', '1.0', { sha256_digest: 'xyz' }), /sha256_digest must be 64 hex/],
    ['metadata names another project', async () => await uploadForm(await makeWheel('bad-input', '1.0', { metadata: coreMetadata('other', '1.0') }), 'bad-input', '1.0'), /names project "other"/],
    ['metadata says another version', async () => await uploadForm(await makeWheel('bad-input', '1.0', { metadata: coreMetadata('bad-input', '1.1') }), 'bad-input', '1.0'), /says version "1\.1"/],
    ['wheel without METADATA', async () => await uploadForm(await makeWheel('bad-input', '1.0', { metadata: null }), 'bad-input', '1.0'), /has no bad_input-1\.0\.dist-info\/METADATA/],
    ['not a zip', async () => await uploadForm({ ...wheel, bytes: randomBytes(2000) }, 'bad-input', '1.0'), /not a valid zip/],
    ['not a tar.gz', async () => await uploadForm({ filename: 'bad_input-1.0.tar.gz', bytes: randomBytes(2000), metadata: '' }, 'bad-input', '1.0'), /not a valid gzipped tar/],
    ['fields after the content', async () => await uploadForm(wheel, 'bad-input', '1.0', {}, { contentFirst: true }), /must come before the content part/],
    ['no content part', async () => { const f = await uploadForm(wheel, 'bad-input', '1.0'); f.delete('content'); return f }, /no "content" file part/],
    ['not multipart', async () => '{"name": "bad-input"}', /multipart\/form-data/]
  ]
  for (const [what, makeBody, message] of cases) {
    const body = await makeBody()
    const r = typeof body === 'string'
      ? await fetch(`${node.url}/pypi/`, { method: 'POST', body, headers: { ...bearer(node.adminToken), 'Content-Type': 'application/json' } })
      : await upload(node, body)
    t.is(r.status, 400, what)
    t.regex(r.statusText, message, what)
    t.regex(await r.text(), message, what)
  }
  t.is((await page(node, 'bad-input')).status, 404, 'nothing was published')

  // Different spellings of the same version are one release, stored under the normal form.
  const rc = await makeWheel('bad-input', '1.0.0rc1', { metadata: coreMetadata('Bad_Input', '1.0.0-RC1') })
  await uploadOk(t, node, rc, 'Bad.Input', '1.0.0-RC1')
  t.deepEqual((await (await page(node, 'bad-input', JSON_TYPE)).json() as any).versions, ['1.0.0rc1'])
})

test('uploads and yanks need write access', async t => {
  const node = await sharedNode()
  const wheel = await makeWheel('guarded', '1.0')
  const anonymous = await upload(node, await uploadForm(wheel, 'guarded', '1.0'), { token: null })
  t.is(anonymous.status, 401)
  t.regex(anonymous.headers.get('www-authenticate') ?? '', /Basic/) // twine then retries with credentials
  const bad = await upload(node, await uploadForm(wheel, 'guarded', '1.0'), { token: 'akm_' + 'x'.repeat(43) })
  t.is(bad.status, 401)
  const created = await akmesh(['token', 'create', '--name', 'reader', '--scope', 'read', '--repo', 'pypi', '--json', '--data', node.dataDir])
  t.is(created.code, 0, created.stderr)
  const reader = JSON.parse(created.stdout).token as string
  const forbidden = await upload(node, await uploadForm(wheel, 'guarded', '1.0'), { token: reader })
  t.is(forbidden.status, 403)
  t.is((await page(node, 'guarded')).status, 404)

  await uploadOk(t, node, wheel, 'guarded', '1.0')
  t.is((await fetch(`${node.url}/pypi/-/yank/guarded/1.0`, { method: 'POST' })).status, 401)
  t.is((await fetch(`${node.url}/pypi/-/yank/guarded/1.0`, { method: 'POST', headers: bearer(reader) })).status, 403)
  t.false(JSON.parse(await (await page(node, 'guarded', JSON_TYPE)).text()).files[0].yanked)
})

test('yank and unyank a release or one of its files (PEP 592)', async t => {
  const node = await sharedNode()
  const wheel = await makeWheel('yankee', '2.0')
  const sdist = await makeSdist(t, 'yankee', '2.0')
  await uploadOk(t, node, wheel, 'yankee', '2.0')
  await uploadOk(t, node, sdist, 'yankee', '2.0')
  const post = async (action: string, body?: string, type = 'application/json') =>
    await fetch(`${node.url}/pypi/-/${action}`, { method: 'POST', body, headers: { ...bearer(node.adminToken), 'Content-Type': type } })
  const states = async () => Object.fromEntries((await (await page(node, 'yankee', JSON_TYPE)).json() as any).files.map((f: any) => [f.filename, f.yanked]))

  const yanked = await post('yank/Yankee/2.0', JSON.stringify({ reason: 'broken <build> & "more"' }))
  t.is(yanked.status, 200)
  t.like(await yanked.json(), { project: 'yankee', version: '2.0', yanked: 'broken <build> & "more"' })
  t.deepEqual(await states(), { [wheel.filename]: 'broken <build> & "more"', [sdist.filename]: 'broken <build> & "more"' })
  const html = await (await page(node, 'yankee')).text()
  t.is(html.split(' data-yanked="broken &lt;build&gt; &amp; &quot;more&quot;"').length - 1, 2, html)
  // Yanked files stay downloadable (an == pin still installs them).
  t.is((await fetch(`${node.url}/pypi/packages/yankee/${wheel.filename}`)).status, 200)

  t.is((await post('unyank/yankee/2.0')).status, 200)
  t.deepEqual(await states(), { [wheel.filename]: false, [sdist.filename]: false })
  t.notRegex(await (await page(node, 'yankee')).text(), /data-yanked/)

  // One file, no reason (a form body this time): yanked with an empty reason.
  t.is((await post('yank/yankee/2.0', `filename=${wheel.filename}`, 'application/x-www-form-urlencoded')).status, 200)
  t.deepEqual(await states(), { [wheel.filename]: true, [sdist.filename]: false })
  t.regex(await (await page(node, 'yankee')).text(), new RegExp(`data-yanked="">${wheel.filename.replace(/\./g, '\\.')}<`))

  t.is((await post('yank/yankee/9.9')).status, 404)
  t.is((await post('yank/yankee/2.0', JSON.stringify({ filename: 'nope.whl' }))).status, 404)
  t.is((await post('yank/yankee/2.0', JSON.stringify({ reason: 7 }))).status, 400)
})

test('a digest mismatch is a 400 and stores nothing', async t => {
  const node = await startTestNode(t)
  const wheel = await makeWheel('checked', '1.0')
  const before = await storedFiles(node)
  const wrong = 'f'.repeat(64)
  for (const [field, value, message] of [
    ['sha256_digest', wrong, /sha256 mismatch/],
    ['md5_digest', 'f'.repeat(32), /md5 mismatch/],
    ['blake2_256_digest', wrong, /blake2_256 mismatch/]
  ] as const) {
    const r = await upload(node, await uploadForm(wheel, 'checked', '1.0', { [field]: value }))
    t.is(r.status, 400, field)
    t.regex(r.statusText, message)
    await r.body?.cancel()
  }
  t.deepEqual(await storedFiles(node), before, 'no blob and no temp file left behind')
  t.is((await page(node, 'checked')).status, 404)
  await uploadOk(t, node, wheel, 'checked', '1.0') // the same bytes with the right digests are fine
  t.is((await storedFiles(node)).blobs, before.blobs + 2, 'the wheel and its METADATA')
})

test('a streamed upload over limits.uploadBytes is a 413 and the node keeps serving', async t => {
  const node = await startTestNode(t, { config: 'limits:\n  uploadBytes: 64KB\n' })
  const big: Dist = { filename: 'big-1.0-py3-none-any.whl', bytes: randomBytes(256 * 1024), metadata: '' }
  const form = new Response(await uploadForm(big, 'big', '1.0'))
  const body = Buffer.from(await form.arrayBuffer())
  // Chunked, without Content-Length: the limit is found while streaming, not from the header.
  const stream = new ReadableStream({
    start (controller) {
      for (let i = 0; i < body.length; i += 16 * 1024) controller.enqueue(body.subarray(i, i + 16 * 1024))
      controller.close()
    }
  })
  const r = await fetch(`${node.url}/pypi/`, {
    method: 'POST',
    body: stream,
    duplex: 'half',
    headers: { ...bearer(node.adminToken), 'Content-Type': form.headers.get('content-type') as string }
  } as RequestInit)
  t.is(r.status, 413)
  t.regex(await r.text(), /^body exceeds the limit of 65536 bytes/) // the store's limit, not the Content-Length check
  t.is((await storedFiles(node)).tmp, 0)
  await uploadOk(t, node, await makeWheel('small', '1.0'), 'small', '1.0')
})
