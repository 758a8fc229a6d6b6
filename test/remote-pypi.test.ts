// A remote PyPI repository (type: remote) in front of a real nginx serving a PEP 503/691 index:
// pip installs a project and its dependency through it, then again with the upstream stopped;
// pages are rewritten (URLs here, hashes, Requires-Python, yanks and PEP 658 metadata kept) in
// both representations; 20 concurrent requests for one uncached file reach the upstream once; a
// file whose bytes do not match the index's sha256 (small: 502; large: cut off mid-stream), and
// index pages that are not index pages, are refused with nothing cached; uploads (twine) are
// refused; after a restart with the upstream down, pages are built from what is cached.
import test, { type ExecutionContext } from 'ava'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { requireClient, run, type RunResult } from './helpers/clients.ts'
import { hookTeardowns } from './helpers/nginx.ts'
import { makeTempDir, startTestNode, type TestNode } from './helpers/node.ts'
import { makeWheel, sha256, upload, uploadForm, type Dist } from './helpers/pypi-dists.ts'
import { makeVenv, mustRun, pythonEnv, sharedPip } from './helpers/pypi-project.ts'
import { SIMPLE_JSON, startPypiUpstream, type PypiUpstream } from './helpers/pypi-upstream.ts'
import { deterministicBytes } from './helpers/streams.ts'

const STALE = '110 - "Response is Stale"'

interface Setup { up: PypiUpstream, node: TestNode, lib1: Dist, lib2: Dist, app: Dist }
let s: Setup
const hook = hookTeardowns()
test.after.always(hook.run)

const metadata = (name: string, version: string, requires: string[] = []) =>
  `Metadata-Version: 2.1\nName: ${name}\nVersion: ${version}\nSummary: akmesh remote test\n${requires.map(r => `Requires-Dist: ${r}\n`).join('')}\n`

test.before(async () => {
  const { t } = hook
  const up = await startPypiUpstream(t)
  const lib1 = await makeWheel('akm-lib', '1.0', { metadata: metadata('akm-lib', '1.0') })
  const lib2 = await makeWheel('akm-lib', '2.0', { metadata: metadata('akm-lib', '2.0') })
  const app = await makeWheel('Akm.App', '1.0', { metadata: metadata('Akm.App', '1.0', ['akm-lib>=1.0']) })
  // akm-lib is HTML only (as pypiserver serves), akm-app JSON too: both parsers are on pip's path.
  await up.project('akm-lib', [
    { dist: lib1, metadata: true, requiresPython: '>=3.8' },
    { dist: lib2, metadata: true, yanked: 'broken build' }
  ], { html: true })
  await up.project('akm-app', [{ dist: app, metadata: true, requiresPython: '>=3.8, <4' }])
  const node = await startTestNode(t, {
    config: `
repositories:
  - { name: pyremote, format: pypi, type: remote, upstream: "${up.nginx.url}/simple/", metadataTtl: 0s }
  - { name: pypinned, format: pypi, type: remote, upstream: "${up.nginx.url}/simple/" }
`
  })
  s = { up, node, lib1, lib2, app }
})

const get = async (path: string, headers: Record<string, string> = {}) => await fetch(`${s.node.url}/${path}`, { headers, redirect: 'manual' })

/** `pip install` into a fresh venv with no pip cache, from the node only; returns its python. */
async function pipInstall (t: ExecutionContext, python: string, requirement: string): Promise<{ venv: string, out: RunResult }> {
  const venv = await makeVenv(t, python, { withPip: false })
  const out = await run(await sharedPip(python), ['-m', 'pip', '--python', venv, 'install', '--no-cache-dir',
    '--index-url', `${s.node.url}/pyremote/simple/`, requirement], { env: pythonEnv() })
  return { venv, out }
}

test.serial('pip installs a project and its dependency through the remote repository, and again with the upstream stopped', async t => {
  const python = await requireClient(t, 'python3')
  if (python == null) return
  const first = await pipInstall(t, python, 'akm_app')
  t.is(first.out.code, 0, first.out.stderr)
  // The yanked akm-lib 2.0 was passed through, so pip's resolver skipped it.
  t.is((await mustRun(first.venv, ['-c', 'import akm_app, akm_lib; print(akm_app.VERSION, akm_lib.VERSION)'])).stdout.trim(), '1.0 1.0')
  t.is(await s.up.gets('/files/akm_lib-1.0-py3-none-any.whl.metadata'), 1, 'pip read the PEP 658 metadata the page announced')
  t.is(await s.up.gets('/files/akm_lib-1.0-py3-none-any.whl '), 1)
  t.is(await s.up.gets('/files/akm_app-1.0-py3-none-any.whl '), 1)
  t.is(await s.up.gets('/files/akm_lib-2.0'), 0, 'nothing of the yanked release was fetched')

  await s.up.nginx.stop()
  try {
    const page = await get('pyremote/simple/akm-app/', { Accept: SIMPLE_JSON })
    t.is(page.status, 200)
    t.is(page.headers.get('warning'), STALE, 'a page past its TTL served because the upstream is down says so')
    const again = await pipInstall(t, python, 'akm-app')
    t.is(again.out.code, 0, again.out.stderr)
    t.is((await mustRun(again.venv, ['-c', 'import akm_app, akm_lib; print(akm_app.VERSION, akm_lib.VERSION)'])).stdout.trim(), '1.0 1.0')
    const missing = await get('pyremote/simple/never-fetched/')
    t.is(missing.status, 502, 'nothing cached and no upstream: a clear 502')
    t.regex(await missing.text(), /upstream http:\/\/127\.0\.0\.1:\d+\/simple\/never-fetched\/ is unreachable/)
  } finally { await s.up.nginx.start() }
})

test.serial('project pages point at this node and keep hashes, Requires-Python, yanks and core metadata', async t => {
  const base = `${s.node.url}/pypinned`
  const r = await get('pypinned/simple/akm-lib/', { Accept: SIMPLE_JSON })
  t.is(r.status, 200)
  t.is(r.headers.get('content-type'), SIMPLE_JSON)
  const doc = await r.json() as { name: string, versions: string[], files: Array<Record<string, unknown>> }
  t.is(doc.name, 'akm-lib')
  t.deepEqual(doc.versions, ['1.0', '2.0'])
  t.deepEqual(doc.files.map(f => [f.filename, f.url, (f.hashes as { sha256: string }).sha256, f['requires-python'] ?? null, f.yanked, f['core-metadata']]), [
    [s.lib1.filename, `${base}/packages/akm-lib/${s.lib1.filename}`, sha256(s.lib1.bytes), '>=3.8', false, { sha256: sha256(s.lib1.metadata) }],
    [s.lib2.filename, `${base}/packages/akm-lib/${s.lib2.filename}`, sha256(s.lib2.bytes), null, 'broken build', { sha256: sha256(s.lib2.metadata) }]
  ])

  // Upstream JSON read, HTML served: what PEP 503 clients see.
  const html = await (await get('pypinned/simple/akm-app/')).text()
  t.true(html.includes(`href="${base}/packages/akm-app/${s.app.filename}#sha256=${sha256(s.app.bytes)}"`), html)
  t.true(html.includes('data-requires-python="&gt;=3.8, &lt;4"'))
  t.true(html.includes(`data-dist-info-metadata="sha256=${sha256(s.app.metadata)}"`))
  t.false(html.includes(s.up.nginx.url), 'no upstream URL is left on the page')

  const yanked = await (await get('pypinned/simple/akm-lib/')).text()
  t.regex(yanked, /akm_lib-2\.0-py3-none-any\.whl#sha256=[0-9a-f]{64}" data-core-metadata="sha256=[0-9a-f]{64}" data-dist-info-metadata="sha256=[0-9a-f]{64}" data-yanked="broken build">/)

  // PEP 503 names: other spellings redirect to the normalised URL.
  const other = await get('pypinned/simple/Akm.App/')
  t.is(other.status, 301)
  t.is(other.headers.get('location'), `${base}/simple/akm-app/`)

  // The core metadata file and the distribution itself, cached and verified.
  const meta = await get(`pypinned/packages/akm-app/${s.app.filename}.metadata`)
  t.is(meta.status, 200)
  t.is(await meta.text(), s.app.metadata)
  const wheel = await get(`pypinned/packages/akm-app/${s.app.filename}`)
  t.is(sha256(new Uint8Array(await wheel.arrayBuffer())), sha256(s.app.bytes))
  const hit = await get(`pypinned/packages/akm-app/${s.app.filename}`)
  t.is(hit.headers.get('x-akmesh-cache'), 'hit')
  t.is(hit.headers.get('x-checksum-sha256'), sha256(s.app.bytes))
  await hit.arrayBuffer()

  const list = await (await get('pypinned/simple/', { Accept: SIMPLE_JSON })).json() as { projects: Array<{ name: string }> }
  t.deepEqual(list.projects.map(p => p.name), ['akm-app', 'akm-lib'])
})

test.serial('20 concurrent requests for one uncached file cause one upstream request', async t => {
  const big = { filename: 'akm_big-1.0-py3-none-any.whl', bytes: deterministicBytes(2 * 1024 * 1024, 'big'), metadata: metadata('akm-big', '1.0') }
  await s.up.project('akm-big', [{ dist: big }])
  const answers = await Promise.all(Array.from({ length: 20 }, async () => {
    const r = await get(`pyremote/packages/akm-big/${big.filename}`)
    return `${r.status} ${sha256(new Uint8Array(await r.arrayBuffer()))}`
  }))
  t.deepEqual(new Set(answers), new Set([`200 ${sha256(big.bytes)}`]))
  t.is(await s.up.gets(`/files/${big.filename}`), 1)
})

test.serial('a file whose bytes do not match the index sha256 is refused and nothing is cached', async t => {
  const real = await makeWheel('akm-tampered', '1.0')
  await s.up.project('akm-tampered', [{ dist: real, servedBytes: Buffer.concat([real.bytes, Buffer.from('tampered')]) }])
  for (const attempt of [1, 2]) {
    const r = await get(`pypinned/packages/akm-tampered/${real.filename}`)
    t.is(r.status, 502)
    t.regex(await r.text(), /sent bytes that do not match what it declared \(.*sha256.*\); refused, nothing cached/)
    t.is(await s.up.gets(`/files/${real.filename}`), attempt, 'refused bytes were not cached: the next request goes upstream again')
  }
})

test.serial('a large file whose bytes do not match is cut off mid-stream and not cached', async t => {
  const big = { filename: 'akm_bigbad-1.0-py3-none-any.whl', bytes: deterministicBytes(3 * 1024 * 1024, 'indexed'), metadata: '' }
  await s.up.project('akm-bigbad', [{ dist: big, servedBytes: deterministicBytes(3 * 1024 * 1024, 'served') }])
  for (const attempt of [1, 2]) {
    const r = await get(`pypinned/packages/akm-bigbad/${big.filename}`)
    // Headers went out with the first bytes; the body never completes.
    const complete = r.status === 200 ? await r.arrayBuffer().then(() => true, () => false) : false
    t.false(complete, 'a client never receives the whole of a file that failed verification')
    t.is(await s.up.gets(`/files/${big.filename}`), attempt)
  }
})

test.serial('index pages that are not index pages answer 502 and are not cached', async t => {
  // HTML where the JSON index belongs (with the JSON content type); a 200 HTML error page with no
  // links; JSON under a content type no simple index has.
  await s.up.nginx.put('simple/akm-badhtml/index.json', '<html><body><h1>502 Bad Gateway</h1></body></html>')
  await s.up.nginx.put('simple/akm-errorpage/index.html', '<html><body><h1>Service temporarily unavailable</h1></body></html>')
  await s.up.nginx.put('simple/akm-plain/index.json', JSON.stringify({ meta: { 'api-version': '1.1' }, name: 'akm-plain', files: [] }))
  const cases: Array<[string, RegExp]> = [
    ['akm-badhtml', /body is not JSON/],
    ['akm-errorpage', /not a simple index page: no links/],
    ['akm-plain', /content type "text\/plain" is not a simple index page/]
  ]
  for (const [project, why] of cases) {
    for (const attempt of [1, 2]) {
      const r = await get(`pypinned/simple/${project}/`, { Accept: SIMPLE_JSON })
      t.is(r.status, 502, project)
      t.regex(await r.text(), why)
      t.is(await s.up.gets(`/simple/${project}/`), attempt, `${project}: nothing cached, asked again`)
    }
  }
})

test.serial('uploads and yanks are refused with a clear message', async t => {
  const dist = await makeWheel('akm-upload', '1.0')
  const r = await upload(s.node, await uploadForm(dist, 'akm-upload', '1.0'), { path: '/pyremote/' })
  t.is(r.status, 405)
  t.regex(r.statusText, /pyremote is a remote repository \(a cache of http:\/\/127\.0\.0\.1:\d+\/simple\/\): uploads and yanks are refused/)
  const yank = await fetch(`${s.node.url}/pyremote/-/yank/akm-lib/1.0`, { method: 'POST', headers: { Authorization: `Bearer ${s.node.adminToken}` } })
  t.is(yank.status, 405)

  // twine prints the reason phrase of the refusal.
  const twine = await requireClient(t, 'twine')
  if (twine == null) return
  const dir = await makeTempDir(t, 'akmesh-twine-')
  await writeFile(join(dir, dist.filename), dist.bytes)
  const out = await run(twine, ['upload', '--non-interactive', '--disable-progress-bar', '--repository-url', `${s.node.url}/pyremote/`,
    '-u', '__token__', '-p', s.node.adminToken, join(dir, dist.filename)], { env: pythonEnv() })
  t.not(out.code, 0)
  t.regex(out.stdout + out.stderr, /405 .*pyremote is a remote repository/s)
})

test.serial('after a restart with the upstream down, pages are built from the files cached here', async t => {
  await s.up.nginx.stop()
  try {
    await s.node.restart()
    const r = await get('pyremote/simple/akm-lib/', { Accept: SIMPLE_JSON })
    t.is(r.status, 200)
    t.is(r.headers.get('warning'), STALE)
    const doc = await r.json() as { files: Array<Record<string, unknown>> }
    // Only what pip fetched earlier is here: akm-lib 1.0 and its core metadata, not the yanked 2.0.
    t.deepEqual(doc.files.map(f => [f.filename, (f.hashes as { sha256: string }).sha256, f['requires-python'], f['core-metadata']]),
      [[s.lib1.filename, sha256(s.lib1.bytes), '>=3.8', { sha256: sha256(s.lib1.metadata) }]])
    const file = await get(`pyremote/packages/akm-lib/${s.lib1.filename}`)
    t.is(file.headers.get('x-akmesh-cache'), 'hit')
    t.is(sha256(new Uint8Array(await file.arrayBuffer())), sha256(s.lib1.bytes))
    const notCached = await get(`pyremote/packages/akm-lib/${s.lib2.filename}`)
    t.is(notCached.status, 502)
    t.regex(await notCached.text(), /is not cached in pyremote, and the upstream failed: upstream .* is unreachable/)
    const list = await (await get('pyremote/simple/', { Accept: SIMPLE_JSON })).json() as { projects: Array<{ name: string }> }
    t.deepEqual(list.projects.map(p => p.name), ['akm-app', 'akm-big', 'akm-lib'])
  } finally { await s.up.nginx.start() }
})
