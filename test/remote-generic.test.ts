// A generic remote repository (type: remote) in front of a real nginx: fetched through and
// cached, served with nginx stopped, one upstream request for 20 concurrent clients, negative
// caching, Range from the cache, immutability, credentials sent upstream and kept out of logs,
// 502 with nothing cached, PUT refused, and offline mode.
import test from 'ava'
import { createHash } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { akmesh, makeTempDir, startTestNode, waitFor, type TestNode } from './helpers/node.ts'
import { freePort, hookTeardowns, startNginx, type Nginx } from './helpers/nginx.ts'
import { deterministicBytes } from './helpers/streams.ts'

const PASSWORD = 'upstream-pa55word-never-logged'
const TOKEN = 'upstream-token-never-logged'
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')

interface Setup { nginx: Nginx, node: TestNode, configFile: string, config: (offline: boolean) => string }
let s: Setup
const hook = hookTeardowns()
test.after.always(hook.run)

test.before(async () => {
  const { t } = hook
  const nginx = await startNginx(t, {
    files: { htpasswd: `reader:{PLAIN}${PASSWORD}\n` },
    server: `
      location /private/ { auth_basic "upstream"; auth_basic_user_file htpasswd; }
      location /token/ { if ($http_authorization != "Bearer ${TOKEN}") { return 401; } }`
  })
  const closed = await freePort() // nothing listens here
  const config = (offline: boolean) => `
repositories:
  - { name: up, format: generic, type: remote, upstream: "${nginx.url}/", metadataTtl: 0s }
  - { name: pinned, format: generic, type: remote, upstream: "${nginx.url}/", offline: ${offline} }
  - name: basic
    format: generic
    type: remote
    upstream: "${nginx.url}/private"
    auth: { username: reader, password: "\${UPSTREAM_PASSWORD}" }
  - { name: token, format: generic, type: remote, upstream: "${nginx.url}/token/", auth: { token: "${TOKEN}" } }
  - { name: down, format: generic, type: remote, upstream: "http://127.0.0.1:${closed}/" }
  - { name: local, format: generic }
`
  const node = await startTestNode(t, { config: config(false), env: { UPSTREAM_PASSWORD: PASSWORD } })
  const configFile = join(node.dataDir, '..', `${node.dataDir.split('/').pop() as string}.yaml`)
  s = { nginx, node, configFile, config }
})

const get = async (path: string, headers: Record<string, string> = {}) => await fetch(`${s.node.url}/${path}`, { headers })

test.serial('a file is fetched from upstream, cached, and still served once the upstream is gone', async t => {
  const body = deterministicBytes(300 * 1024, 'seed1')
  await s.nginx.put('dist/app-1.0.tar.gz', body)
  const first = await get('pinned/dist/app-1.0.tar.gz')
  t.is(first.status, 200)
  t.is(first.headers.get('x-akmesh-cache'), 'miss')
  t.truthy(first.headers.get('last-modified'), 'the upstream Last-Modified is passed on')
  t.truthy(first.headers.get('x-upstream-etag'))
  t.is(sha256(new Uint8Array(await first.arrayBuffer())), sha256(body))

  const second = await get('pinned/dist/app-1.0.tar.gz')
  t.is(second.headers.get('x-akmesh-cache'), 'hit')
  t.is(second.headers.get('x-checksum-sha256'), sha256(body))
  t.is(second.headers.get('last-modified'), first.headers.get('last-modified'))
  t.is(sha256(new Uint8Array(await second.arrayBuffer())), sha256(body))
  t.is(await s.nginx.count('GET', '/dist/app-1.0.tar.gz'), 1, 'the second download came from the cache')

  const listing = await (await get('pinned/dist/')).json() as { files: string[], cached: boolean, upstream: string }
  t.deepEqual(listing.files, ['dist/app-1.0.tar.gz'])
  t.true(listing.cached)

  await s.nginx.stop()
  try {
    const offline = await get('pinned/dist/app-1.0.tar.gz')
    t.is(offline.status, 200)
    t.is(sha256(new Uint8Array(await offline.arrayBuffer())), sha256(body))
    const missing = await get('up/never-fetched.bin')
    t.is(missing.status, 502)
    t.regex((await missing.json() as { error: string }).error, /upstream http:\/\/127\.0\.0\.1:\d+\/never-fetched\.bin is unreachable/)
  } finally { await s.nginx.start() }
})

test.serial('20 concurrent clients asking for the same uncached file cause one upstream request', async t => {
  const body = deterministicBytes(900 * 1024, 'seed2')
  await s.nginx.put('burst/big.bin', body)
  const answers = await Promise.all(Array.from({ length: 20 }, async () => {
    const r = await get('up/burst/big.bin')
    return { status: r.status, sha: sha256(new Uint8Array(await r.arrayBuffer())) }
  }))
  t.deepEqual(new Set(answers.map(a => `${a.status} ${a.sha}`)), new Set([`200 ${sha256(body)}`]))
  t.is(await s.nginx.count('GET', '/burst/big.bin'), 1)
})

test.serial('upstream down with nothing cached answers 502 naming the upstream', async t => {
  const r = await get('down/some/file.txt')
  t.is(r.status, 502)
  const { error } = await r.json() as { error: string }
  t.regex(error, /^upstream http:\/\/127\.0\.0\.1:\d+\/some\/file\.txt is unreachable or broke off \(ECONNREFUSED\)/)
})

test.serial('a 404 from upstream is remembered: the second request does not reach it', async t => {
  const a = await get('pinned/absent/thing.zip')
  t.is(a.status, 404)
  t.regex((await a.json() as { error: string }).error, /not found upstream .* answered 404\); remembered for 60s/)
  const b = await get('pinned/absent/thing.zip')
  t.is(b.status, 404)
  t.is(await s.nginx.count('GET', '/absent/thing.zip'), 1)
})

test.serial('a Range request is served from the cache', async t => {
  const body = deterministicBytes(64 * 1024, 'seed3')
  await s.nginx.put('ranged.bin', body)
  const r = await get('up/ranged.bin', { Range: 'bytes=1000-1999' })
  t.is(r.status, 206)
  t.is(r.headers.get('content-range'), `bytes 1000-1999/${body.length}`)
  t.true(Buffer.from(await r.arrayBuffer()).equals(body.subarray(1000, 2000)))
  const again = await get('up/ranged.bin', { Range: 'bytes=-10' })
  t.is(again.status, 206)
  t.is(again.headers.get('x-akmesh-cache'), 'hit')
  t.true(Buffer.from(await again.arrayBuffer()).equals(body.subarray(body.length - 10)))
  t.is(await s.nginx.count('GET', '/ranged.bin'), 1)
})

test.serial('a cached file is immutable: an upstream change is refused and logged, the cached bytes stay', async t => {
  const before = Buffer.from('version one\n')
  await s.nginx.put('pinned.txt', before)
  t.is(await (await get('up/pinned.txt')).text(), 'version one\n')
  await s.nginx.put('pinned.txt', 'version two, longer than the first\n')
  // metadataTtl 0s: every read checks the upstream in the background.
  const served = await get('up/pinned.txt')
  t.is(await served.text(), 'version one\n')
  await waitFor(() => s.node.output().includes('upstream changed content that is already cached'), 'the refusal in the log')
  t.is(await (await get('up/pinned.txt')).text(), 'version one\n')
})

test.serial('credentials go to the upstream (basic and token) and never into the log', async t => {
  await s.nginx.put('private/report.txt', 'basic secret file\n')
  await s.nginx.put('token/report.txt', 'token secret file\n')
  const unauthenticated = await fetch(`${s.nginx.url}/private/report.txt`)
  t.is(unauthenticated.status, 401, 'nginx refuses without credentials, so the test can fail')
  const basic = await get('basic/report.txt')
  t.is(basic.status, 200)
  t.is(await basic.text(), 'basic secret file\n')
  const token = await get('token/report.txt')
  t.is(token.status, 200)
  t.is(await token.text(), 'token secret file\n')
  t.true((await s.nginx.log()).some(l => l === 'GET /private/report.txt 200 yes'))
  const out = s.node.output()
  t.false(out.includes(PASSWORD))
  t.false(out.includes(TOKEN))
  t.false(out.includes(Buffer.from(`reader:${PASSWORD}`).toString('base64')))
  const listed = await akmesh(['repo', 'list', '--json', '--config', s.configFile], { env: { UPSTREAM_PASSWORD: PASSWORD } })
  t.is(listed.code, 0, listed.stderr)
  t.false(listed.stdout.includes(PASSWORD))
  t.false(listed.stdout.includes(TOKEN))
  t.is((JSON.parse(listed.stdout) as Array<{ name: string, auth?: unknown }>).find(r => r.name === 'basic')?.auth, '[redacted]')
})

test.serial('a config naming an unset environment variable, a member-less virtual or upstream-less remote is refused clearly', async t => {
  const dir = await makeTempDir(t)
  const cases: Array<[string, RegExp]> = [
    ['- { name: r, format: generic, type: remote, upstream: "http://x/", auth: { token: "${AKMESH_TEST_UNSET}" } }', /repositories\[0\]\.auth\.token: environment variable AKMESH_TEST_UNSET is not set/],
    ['- { name: r, format: generic, type: virtual }', /repositories\[0\]\.members: a virtual repository needs members/],
    ['- { name: r, format: generic, type: remote }', /repositories\[0\]\.upstream: a remote repository needs upstream/],
    ['- { name: r, format: generic, type: remote, upstream: "http://u:p@x/" }', /must not carry credentials; put them under auth/],
    ['- { name: r, format: generic, upstream: "http://x/" }', /only remote repositories \(type: remote\) have an upstream/],
    // (Every format has remote hooks now; config/remote-schema.ts still refuses one that has none.)
  ]
  for (const [i, [repo, message]] of cases.entries()) {
    const file = join(dir, `bad-${i}.yaml`)
    await writeFile(file, `repositories:\n  ${repo}\n`)
    const r = await akmesh(['repo', 'list', '--config', file])
    t.not(r.code, 0)
    t.regex(r.stderr, message)
  }
})

test.serial('HEAD of an uncached file asks the upstream with HEAD and caches nothing', async t => {
  await s.nginx.put('head-only.bin', deterministicBytes(5000, 'seed5'))
  const r = await fetch(`${s.node.url}/up/head-only.bin`, { method: 'HEAD' })
  t.is(r.status, 200)
  t.is(r.headers.get('content-length'), '5000')
  t.is(r.headers.get('x-akmesh-cache'), 'miss')
  t.is(await s.nginx.count('HEAD', '/head-only.bin'), 1)
  t.is(await s.nginx.count('GET', '/head-only.bin'), 0)
  t.deepEqual((await (await get('up/')).json() as { files: string[] }).files.filter(f => f === 'head-only.bin'), [])
})

test.serial('PUT to a remote repository is refused with 405', async t => {
  const r = await fetch(`${s.node.url}/up/new.txt`, { method: 'PUT', body: 'x', headers: { Authorization: `Bearer ${s.node.adminToken}` } })
  t.is(r.status, 405)
  t.regex((await r.json() as { error: string }).error, /up is a remote repository \(a cache of http:\/\/127\.0\.0\.1:\d+\/\); publish to a local repository/)
})

test.serial('offline: true serves only the cache and never contacts the upstream', async t => {
  const body = deterministicBytes(10 * 1024, 'seed4')
  await s.nginx.put('offline/kept.bin', body)
  t.is((await get('pinned/offline/kept.bin')).status, 200)
  await s.nginx.put('offline/later.bin', 'not fetched while offline')
  await writeFile(s.configFile, s.config(true))
  await s.node.restart()
  const kept = await get('pinned/offline/kept.bin')
  t.is(kept.status, 200)
  t.is(sha256(new Uint8Array(await kept.arrayBuffer())), sha256(body))
  const later = await get('pinned/offline/later.bin')
  t.is(later.status, 404)
  t.regex((await later.json() as { error: string }).error, /offline\/later\.bin is not cached in pinned, and the repository is offline/)
  t.is(await s.nginx.count('GET', '/offline/later.bin'), 0)
})
