// A remote npm repository (type: remote) in front of a real Verdaccio holding a tree of 33
// packages: npm, yarn and pnpm install a project with 31 dependencies through it, and npm again
// with Verdaccio stopped; 20 concurrent requests for one uncached tarball reach Verdaccio once;
// scoped names, abbreviated documents and dist-tags; a stale packument with a Warning once the
// TTL passed and Verdaccio is down; publish refused. A small hand-written server plays the
// upstreams Verdaccio cannot be made into: an HTML page where JSON belongs, a tarball that does
// not match its integrity, a tarball changed upstream after it was cached.
import test from 'ava'
import { createHash } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { requireClient, run } from './helpers/clients.ts'
import { hookTeardowns } from './helpers/nginx.ts'
import { makeTempDir, startTestNode, waitFor, type TestNode } from './helpers/node.ts'
import { clientEnv, makeTarball, npmClient, publishBody, runNode, writePackage, writeProject } from './helpers/npm-client.ts'
import { packageTree, type TreePackage } from './helpers/npm-tree.ts'
import { tgzBytes } from './helpers/archives.ts'
import { startVerdaccio, verdaccioInstalled, VERDACCIO, type Verdaccio } from './helpers/verdaccio.ts'

const ABBREVIATED = 'application/vnd.npm.install-v1+json'
const sha1 = (b: Uint8Array) => createHash('sha1').update(b).digest('hex')
const integrity = (b: Uint8Array) => 'sha512-' + createHash('sha512').update(b).digest('base64')

let v: Verdaccio
let node: TestNode
let tree: TreePackage[]
let bad: { url: string, hits: Map<string, number>, changed: boolean }
const hook = hookTeardowns()
test.after.always(async () => { if (process.env.DUMP != null) console.log(node?.output().slice(-8000)); await hook.run() })

/** The upstream that misbehaves on purpose (each path counts its hits). */
async function badUpstream (): Promise<typeof bad> {
  const good = await tgzBytes([{ path: 'package/package.json', text: '{"name":"mutable","version":"1.0.0"}' }])
  const other = await tgzBytes([{ path: 'package/package.json', text: '{"name":"mutable","version":"1.0.0","changed":true}' }])
  const liar = await tgzBytes([{ path: 'package/package.json', text: '{"name":"liar","version":"1.0.0"}' }])
  const state = { url: '', hits: new Map<string, number>(), changed: false }
  const packument = (name: string, tgz: Buffer, declared = tgz) => JSON.stringify({
    name, 'dist-tags': { latest: '1.0.0' },
    versions: { '1.0.0': { name, version: '1.0.0', dist: { integrity: integrity(declared), shasum: sha1(declared), tarball: `${state.url}/${name}/-/${name}-1.0.0.tgz` } } }
  })
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname
    state.hits.set(path, (state.hits.get(path) ?? 0) + 1)
    const json = (body: string) => res.writeHead(200, { 'content-type': 'application/json' }).end(body)
    switch (path) {
      case '/html-page': res.writeHead(200, { 'content-type': 'text/html' }).end('<html><body>Sign in to continue</body></html>'); return
      case '/liar': json(packument('liar', liar, Buffer.from('what it should have been'))); return
      case '/liar/-/liar-1.0.0.tgz': res.end(liar); return
      case '/mutable': json(packument('mutable', state.changed ? other : good)); return
      case '/mutable/-/mutable-1.0.0.tgz': res.end(state.changed ? other : good); return
      default: res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}')
    }
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  hook.t.teardown(async () => { server.closeAllConnections(); await new Promise(resolve => server.close(resolve)) })
  state.url = `http://127.0.0.1:${(server.address() as { port: number }).port}`
  return state
}

test.before(async () => {
  if (!verdaccioInstalled()) return
  v = await startVerdaccio(hook.t)
  tree = await packageTree('fx', 32)
  for (const p of tree) await v.publish(p.manifest, p.tgz, p.tag)
  bad = await badUpstream()
  node = await startTestNode(hook.t, {
    config: `
repositories:
  - { name: npm, format: npm, type: remote, upstream: "${v.url}/", metadataTtl: 1s }
  - { name: bad, format: npm, type: remote, upstream: "${bad.url}/", metadataTtl: 0s }
  - { name: npm-local, format: npm }
  - { name: npm-all, format: npm, type: virtual, members: [npm, npm-local], defaultLocal: npm-local }
`
  })
})

/** Fails under CI (which must install Verdaccio), skips loudly elsewhere. */
function needsVerdaccio (t: { fail: (m: string) => void, pass: () => void }): boolean {
  if (verdaccioInstalled()) return true
  if (process.env.CI === 'true') t.fail(`Verdaccio is not installed at ${VERDACCIO}; .ci/run must install it`)
  else { console.warn(`\n!!! SKIPPING: Verdaccio is not installed (${VERDACCIO}); run .ci/run's install step. !!!\n`); t.pass() }
  return false
}

const direct = () => tree.filter(p => p.tag == null && p.manifest.name !== 'fx-31' && p.manifest.name !== 'fx-30')
const tarballUrl = (p: TreePackage) => `/${p.manifest.name}/-/${p.manifest.name.split('/').pop() as string}-${p.manifest.version}.tgz`

/** A project depending on 31 packages of the tree, and the code that proves they all came. */
async function project (t: Parameters<typeof writeProject>[0]): Promise<{ dir: string, code: string, expected: number }> {
  const dir = await writeProject(t)
  const deps = direct()
  await writeFile(join(dir, 'package.json'), JSON.stringify({
    name: 'consumer', version: '1.0.0', private: true,
    dependencies: Object.fromEntries(deps.map(p => [p.manifest.name, `^${p.manifest.version}`]))
  }))
  const code = `console.log(${deps.map(p => `require(${JSON.stringify(p.manifest.name)})`).join(' + ')})`
  return { dir, code, expected: deps.reduce((s, p) => s + p.value, 0) }
}

test.serial('npm, yarn and pnpm install a project with 31 dependencies through the remote; each tarball reaches Verdaccio once', async t => {
  if (!needsVerdaccio(t)) return
  t.true(direct().length >= 30)
  const npm = await npmClient(t, node, null)
  if (npm == null) return
  const p = await project(t)
  const r = await npm.run(['install'], { cwd: p.dir })
  t.is(r.code, 0, r.stderr)
  t.is((await runNode(p.dir, p.code)).stdout.trim(), String(p.expected))

  const yarn = await requireClient(t, 'yarn')
  if (yarn != null) {
    const y = await project(t)
    const cache = await makeTempDir(t, 'akmesh-yarn-cache-')
    const yr = await run(yarn, ['install', '--registry', npm.registry, '--cache-folder', cache, '--non-interactive', '--no-lockfile'], { cwd: y.dir, env: { ...clientEnv(), YARN_IGNORE_PATH: '1' } })
    t.is(yr.code, 0, `${yr.stdout}\n${yr.stderr}`)
    t.is((await runNode(y.dir, y.code)).stdout.trim(), String(y.expected))
  }
  const pnpm = await requireClient(t, 'pnpm')
  if (pnpm != null) {
    const q = await project(t)
    const store = await makeTempDir(t, 'akmesh-pnpm-')
    const pr = await run(pnpm, ['install', '--registry', npm.registry, '--store-dir', join(store, 'store'), '--cache-dir', join(store, 'cache'), '--config.update-notifier=false'], { cwd: q.dir, env: clientEnv() })
    t.is(pr.code, 0, `${pr.stdout}\n${pr.stderr}`)
    t.is((await runNode(q.dir, q.code)).stdout.trim(), String(q.expected))
  }
  const installed = tree.filter(x => x.tag == null && !['fx-30', 'fx-31'].includes(x.manifest.name))
  for (const x of installed) t.is(v.count('GET', tarballUrl(x)), 1, `${tarballUrl(x)} fetched from Verdaccio once`)
})

test.serial('dependency confusion through a virtual of the remote and a local repository: a local internal-lib is served, never the upstream\'s higher version; remote-only packages still install', async t => {
  if (!needsVerdaccio(t)) return
  const root = await makeTempDir(t)
  const upstreamTgz = await makeTarball(root, { name: 'internal-lib', version: '9.0.0', main: 'index.js' })
  await v.publish({ name: 'internal-lib', version: '9.0.0', main: 'index.js', license: 'MIT', dependencies: {} }, upstreamTgz)
  const localTgz = await makeTarball(root, { name: 'internal-lib', version: '1.0.0' })
  const put = await fetch(`${node.url}/npm-local/internal-lib`, {
    method: 'PUT', headers: { authorization: `Bearer ${node.adminToken}`, 'content-type': 'application/json' }, body: JSON.stringify(publishBody('internal-lib', '1.0.0', localTgz))
  })
  t.is(put.status, 201, await put.text())
  const before = v.requests().filter(r => r.includes('internal-lib')).length
  const doc = await (await fetch(`${node.url}/npm-all/internal-lib`)).json() as { versions: Record<string, unknown>, 'dist-tags': Record<string, string> }
  t.deepEqual(Object.keys(doc.versions), ['1.0.0'])
  t.is(doc['dist-tags'].latest, '1.0.0')
  const npm = await npmClient(t, node, null)
  if (npm == null) return
  const dir = await writeProject(t)
  const r = await npm.run(['install', 'internal-lib', 'fx-00@1', '--registry', `${node.url}/npm-all/`], { cwd: dir })
  t.is(r.code, 0, r.stderr)
  t.is(JSON.parse(await readFile(join(dir, 'node_modules/internal-lib/package.json'), 'utf8')).version, '1.0.0')
  t.truthy(JSON.parse(await readFile(join(dir, 'node_modules/fx-00/package.json'), 'utf8')).version)
  // The upstream was never asked for the name a local member has.
  t.is(v.requests().filter(r => r.includes('internal-lib')).length, before)
})

test.serial('the same install works with Verdaccio stopped: fresh node_modules and npm cache, everything from the node', async t => {
  if (!needsVerdaccio(t)) return
  const npm = await npmClient(t, node, null)
  if (npm == null) return
  const p = await project(t)
  await v.stop()
  try {
    t.is((await fetch(`${v.url}/-/ping`).catch(() => undefined)), undefined, 'Verdaccio is really down')
    const r = await npm.run(['install'], { cwd: p.dir })
    t.is(r.code, 0, r.stderr)
    t.is((await runNode(p.dir, p.code)).stdout.trim(), String(p.expected))
    // Past the 1s TTL, with the upstream down: the packument is served stale, with a Warning.
    const stale = await waitFor(async () => {
      const res = await fetch(`${node.url}/npm/fx-05`, { headers: { accept: ABBREVIATED } })
      return res.headers.get('warning') != null ? res : undefined
    }, 'a stale packument', 10_000) as Response
    t.is(stale.status, 200)
    t.is(stale.headers.get('warning'), '110 - "Response is Stale"')
    t.is(((await stale.json()) as { name: string }).name, 'fx-05')
    await waitFor(() => node.output().includes('serving stale metadata'), 'the stale warning in the log')
    const never = await fetch(`${node.url}/npm/fx-never-fetched`)
    t.is(never.status, 502)
    t.regex((await never.json() as { error: string }).error, /is unreachable or broke off/)
  } finally { await v.start() }
})

test.serial('after a restart with Verdaccio down, the cached versions are served from their rows (stale) and install', async t => {
  if (!needsVerdaccio(t)) return
  const npm = await npmClient(t, node, null)
  if (npm == null) return
  const fx05 = tree.find(x => x.manifest.name === 'fx-05') as TreePackage
  await v.stop()
  try {
    await node.restart() // nothing in memory: no packument was fetched by this process
    const r = await fetch(`${node.url}/npm/fx-05`, { headers: { accept: ABBREVIATED } })
    t.is(r.status, 200)
    t.is(r.headers.get('warning'), '110 - "Response is Stale"')
    const doc = await r.json() as any
    t.deepEqual(Object.keys(doc.versions), [fx05.manifest.version])
    t.is(doc.versions[fx05.manifest.version].dist.tarball, `${node.url}/npm/fx-05/-/fx-05-${fx05.manifest.version}.tgz`)
    t.is(doc.versions[fx05.manifest.version].dist.integrity, integrity(fx05.tgz))
    t.is(doc.versions[fx05.manifest.version].cached, undefined, 'the cache bookkeeping stays out of the version document')
    t.is((await fetch(`${node.url}/npm/fx-31`)).status, 502, 'a package never cached is still a 502')
    const p = await project(t)
    const installed = await npm.run(['install'], { cwd: p.dir })
    t.is(installed.code, 0, installed.stderr)
    t.is((await runNode(p.dir, p.code)).stdout.trim(), String(p.expected))
  } finally { await v.start() }
})

test.serial('20 concurrent requests for the same uncached tarball: one request reaches Verdaccio', async t => {
  if (!needsVerdaccio(t)) return
  const p = tree.find(x => x.manifest.name === 'fx-31') as TreePackage
  const url = `${node.url}/npm${tarballUrl(p)}`
  const answers = await Promise.all(Array.from({ length: 20 }, async () => {
    const r = await fetch(url)
    return `${r.status} ${sha1(new Uint8Array(await r.arrayBuffer()))}`
  }))
  t.deepEqual(new Set(answers), new Set([`200 ${sha1(p.tgz)}`]))
  await waitFor(() => v.count('GET', tarballUrl(p)) >= 1, 'the request in the Verdaccio log')
  t.is(v.count('GET', tarballUrl(p)), 1)
  const hit = await fetch(url)
  t.is(hit.headers.get('x-akmesh-cache'), 'hit')
  t.is(hit.headers.get('x-checksum-sha1'), sha1(p.tgz))
})

test.serial('scoped packages by either spelling, abbreviated documents, dist-tags and versions, tarball URLs on this node', async t => {
  if (!needsVerdaccio(t)) return
  const encoded = await (await fetch(`${node.url}/npm/@fx%2fscoped`)).json() as any
  const plain = await (await fetch(`${node.url}/npm/@fx/scoped`)).json() as any
  t.is(encoded.name, '@fx/scoped')
  t.deepEqual(plain.versions, encoded.versions)
  t.is(encoded.versions['1.0.0'].dist.tarball, `${node.url}/npm/@fx/scoped/-/scoped-1.0.0.tgz`)
  const scoped = tree.find(x => x.manifest.name === '@fx/scoped') as TreePackage
  t.is(encoded.versions['1.0.0'].dist.integrity, integrity(scoped.tgz))
  const tgz = await fetch(encoded.versions['1.0.0'].dist.tarball)
  t.is(tgz.status, 200)
  t.is(sha1(new Uint8Array(await tgz.arrayBuffer())), sha1(scoped.tgz))

  const abbreviated = await fetch(`${node.url}/npm/fx-00`, { headers: { accept: `${ABBREVIATED}; q=1.0, application/json; q=0.8, */*` } })
  t.is(abbreviated.headers.get('content-type'), ABBREVIATED)
  const a = await abbreviated.json() as any
  t.deepEqual(Object.keys(a.versions).sort(), ['1.0.0', '2.0.0-beta.1'])
  t.deepEqual(a['dist-tags'], { latest: '1.0.0', next: '2.0.0-beta.1' })
  t.is(a.readme, undefined, 'the abbreviated document leaves out what installers do not need')
  t.is(a.versions['1.0.0'].dist.tarball, `${node.url}/npm/fx-00/-/fx-00-1.0.0.tgz`)
  t.deepEqual(await (await fetch(`${node.url}/npm/-/package/fx-00/dist-tags`)).json(), { latest: '1.0.0', next: '2.0.0-beta.1' })
  const next = await (await fetch(`${node.url}/npm/fx-00/next`)).json() as any
  t.is(next.version, '2.0.0-beta.1')
  t.is(next.dist.tarball, `${node.url}/npm/fx-00/-/fx-00-2.0.0-beta.1.tgz`)
  t.is((await fetch(`${node.url}/npm/fx-00/-/fx-00-9.9.9.tgz`)).status, 404)
})

test.serial('npm publish to a remote repository is refused with 405, and npm shows why', async t => {
  if (!needsVerdaccio(t)) return
  const npm = await npmClient(t, node)
  if (npm == null) return
  const dir = await writePackage(npm.dir, { name: 'fx-new', version: '1.0.0', source: 'module.exports = 1\n' })
  const r = await npm.run(['publish'], { cwd: dir })
  t.not(r.code, 0)
  t.regex(r.stderr, /405/)
  t.regex(r.stderr, /npm is a remote repository \(a cache of http:\/\/127\.0\.0\.1:\d+\/\); publish to a local npm repository instead/)
  t.is(v.count('PUT', '/fx-new'), 0)
})

test.serial('an HTML page where a packument belongs is a 502, and nothing is cached', async t => {
  if (!needsVerdaccio(t)) return
  for (let i = 1; i <= 2; i++) {
    const r = await fetch(`${node.url}/bad/html-page`)
    t.is(r.status, 502)
    t.regex((await r.json() as { error: string }).error, /sent text\/html where a JSON packument belongs; refused, nothing cached/)
    t.is(bad.hits.get('/html-page'), i, 'each request asks the upstream again')
  }
})

test.serial('a tarball that does not match the integrity of its packument is refused, and nothing is cached', async t => {
  if (!needsVerdaccio(t)) return
  for (let i = 1; i <= 2; i++) {
    const r = await fetch(`${node.url}/bad/liar/-/liar-1.0.0.tgz`)
    t.is(r.status, 502)
    t.regex((await r.json() as { error: string }).error, /sent bytes that do not match what it declared .*refused, nothing cached/)
    t.is(bad.hits.get('/liar/-/liar-1.0.0.tgz'), i)
  }
})

test.serial('an upstream that changes a cached tarball is refused and logged: the cached bytes and integrity stay', async t => {
  if (!needsVerdaccio(t)) return
  const first = await fetch(`${node.url}/bad/mutable/-/mutable-1.0.0.tgz`)
  t.is(first.status, 200)
  const cached = Buffer.from(await first.arrayBuffer())
  bad.changed = true
  const doc = await (await fetch(`${node.url}/bad/mutable`)).json() as any
  t.is(doc.versions['1.0.0'].dist.integrity, integrity(cached), 'the packument keeps the integrity of the cached bytes')
  t.is(doc.versions['1.0.0'].dist.shasum, sha1(cached))
  await waitFor(() => node.output().includes('upstream changed the tarball of a version that is already cached'), 'the refusal in the log')
  const again = await fetch(`${node.url}/bad/mutable/-/mutable-1.0.0.tgz`)
  t.true(Buffer.from(await again.arrayBuffer()).equals(cached))
  t.is(bad.hits.get('/mutable/-/mutable-1.0.0.tgz'), 1)
})
