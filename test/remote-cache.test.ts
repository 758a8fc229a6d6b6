// Cache management of remote repositories, over a real nginx (generic, and a PEP 503 tree for PyPI),
// a real Verdaccio (npm) and a real docker-registry (OCI):
// a quota evicts the least recently used cached blob, whose next request is fetched from the
// upstream again (counted there) as the same CID; bytes a local artifact shares are never evicted;
// `akmesh cache prune --older-than` (a clock given to the admin API, so no waiting) and --dry-run;
// listings, search, status, inventory and the admin API show cached artifacts with their upstream;
// evicted PyPI files and OCI blobs and manifests are fetched again; a lowered quota is enforced at
// start; `quota` sizes in the config.
import test from 'ava'
import { createHash } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { akmesh, makeTempDir, startTestNode, waitFor, type TestNode } from './helpers/node.ts'
import { startRegistry, type Registry } from './helpers/docker-registry.ts'
import { hookTeardowns, type Nginx } from './helpers/nginx.ts'
import { makeTarball } from './helpers/npm-client.ts'
import { digestOf } from './helpers/oci-http.ts'
import { makeWheel } from './helpers/pypi-dists.ts'
import { startPypiUpstream, type PypiUpstream } from './helpers/pypi-upstream.ts'
import { deterministicBytes } from './helpers/streams.ts'
import { startVerdaccio, verdaccioInstalled, VERDACCIO, type Verdaccio } from './helpers/verdaccio.ts'

const KIB = 1024
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')

interface Listed { name: string, version: string, cached: boolean, upstream?: string, files: Array<{ cid: string, present: boolean, size: number }>, lastUsedAt?: number | null }
interface Report { dryRun: boolean, evicted: Array<{ repo: string, cid: string, size: number, artifacts: string[] }>, bytes: number, spared: { local: number } }

let nginx: Nginx
let pypi: PypiUpstream
let registry: Registry
let v: Verdaccio
let node: TestNode
const hook = hookTeardowns()
test.after.always(async () => { if (process.env.DUMP != null) console.log(node?.output().slice(-8000)); await hook.run() })

test.before(async () => {
  if (!verdaccioInstalled()) throw new Error(`Verdaccio is not installed at ${VERDACCIO} (.ci/run installs it)`)
  const { t } = hook
  // One nginx: generic files, and a PEP 503/691 tree under /simple/.
  pypi = await startPypiUpstream(t)
  nginx = pypi.nginx
  v = await startVerdaccio(t)
  registry = await startRegistry(t)
  node = await startTestNode(t, {
    config: `
repositories:
  - { name: quota, format: generic, type: remote, upstream: "${nginx.url}/", quota: 250KiB }
  - { name: aged, format: generic, type: remote, upstream: "${nginx.url}/" }
  - { name: local, format: generic }
  - { name: npmr, format: npm, type: remote, upstream: "${v.url}/" }
  - { name: pyr, format: pypi, type: remote, upstream: "${nginx.url}/simple/", metadataTtl: 0s }
  - { name: ocir, format: oci, type: remote, upstream: "${registry.url}/" }
`
  })
})

const get = async (path: string) => await fetch(`${node.url}/${path}`, { headers: { authorization: `Bearer ${node.adminToken}` } })
const body = async (path: string): Promise<Buffer> => {
  const res = await get(path)
  if (res.status !== 200) throw new Error(`GET ${path}: ${res.status} ${await res.text()}`)
  return Buffer.from(await res.arrayBuffer())
}
const admin = async <T>(method: string, path: string): Promise<T> => {
  const res = await fetch(`${node.url}${path}`, { method, headers: { authorization: `Bearer ${node.adminToken}` } })
  if (res.status !== 200) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`)
  return await res.json() as T
}
const artifacts = async (repo: string) => (await admin<{ artifacts: Listed[] }>('GET', `/-/artifacts?repo=${repo}`)).artifacts
const artifact = async (repo: string, name: string) => {
  const a = (await artifacts(repo)).find(x => x.name === name)
  if (a == null) throw new Error(`${repo} has no ${name}`)
  return a
}
/** Pushes an image (config, one layer, manifest) with the registry's own API (it runs without auth). */
async function pushToRegistry (name: string, tag: string, layer: Uint8Array): Promise<{ digest: string, config: string, layers: string[] }> {
  const blob = async (bytes: Uint8Array): Promise<string> => {
    const digest = digestOf(bytes)
    const started = await fetch(`${registry.url}/v2/${name}/blobs/uploads/`, { method: 'POST' })
    if (started.status !== 202) throw new Error(`upload start: ${started.status}`)
    const location = new URL(started.headers.get('location') as string, registry.url)
    location.searchParams.set('digest', digest)
    const done = await fetch(location, { method: 'PUT', body: bytes, headers: { 'content-type': 'application/octet-stream' } })
    if (done.status !== 201) throw new Error(`upload: ${done.status} ${await done.text()}`)
    return digest
  }
  const configBytes = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }))
  const config = await blob(configBytes)
  const layerDigest = await blob(layer)
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config, size: configBytes.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layerDigest, size: layer.byteLength }]
  }))
  const res = await fetch(`${registry.url}/v2/${name}/manifests/${tag}`, { method: 'PUT', body: manifest, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } })
  if (res.status !== 201) throw new Error(`manifest push: ${res.status} ${await res.text()}`)
  return { digest: digestOf(manifest), config, layers: [layerDigest] }
}

const cli = async (args: string[]) => await akmesh(['cache', ...args, '--url', node.url, '--token', node.adminToken])

test.serial('over its quota, a remote repository evicts the least recently used blob; the next request fetches it again', async t => {
  const files = { 'q/a.bin': deterministicBytes(100 * KIB, 'a'), 'q/b.bin': deterministicBytes(100 * KIB, 'b'), 'q/c.bin': deterministicBytes(100 * KIB, 'c') }
  for (const [path, bytes] of Object.entries(files)) await nginx.put(path, bytes)
  t.is(sha256(await body('quota/q/a.bin')), sha256(files['q/a.bin']))
  t.is(sha256(await body('quota/q/b.bin')), sha256(files['q/b.bin']))
  const hit = await get('quota/q/a.bin') // a is now used later than b
  t.is(hit.headers.get('x-akmesh-cache'), 'hit')
  await hit.arrayBuffer()
  // 300 KiB > 250 KiB: b goes (the least recently used; c, just fetched, is never the one).
  t.is(sha256(await body('quota/q/c.bin')), sha256(files['q/c.bin']))
  const evicted = await waitFor(async () => { const b = await artifact('quota', 'q/b.bin'); return b.files[0].present ? undefined : b }, 'b evicted') as Listed
  t.true((await artifact('quota', 'q/a.bin')).files[0].present)
  t.true((await artifact('quota', 'q/c.bin')).files[0].present)
  t.true(evicted.cached, 'the row stays, still marked cached')
  await waitFor(() => node.output().includes('cache quota exceeded: evicted least recently used blobs'), 'the eviction logged')
  const line = node.output().split('\n').find(l => l.includes('cache quota exceeded')) as string
  t.regex(line, /"artifacts":\["q\/b\.bin"\]/)
  t.regex(line, /"level":30/, 'logged at info')

  // Evicted: fetched from nginx again, verified to be the same blob.
  t.is(await nginx.count('GET', '/q/b.bin'), 1)
  const again = await get('quota/q/b.bin')
  t.is(again.status, 200)
  t.is(sha256(new Uint8Array(await again.arrayBuffer())), sha256(files['q/b.bin']))
  t.is(await nginx.count('GET', '/q/b.bin'), 2, 'the evicted file was asked upstream again')
  await waitFor(async () => (await artifact('quota', 'q/b.bin')).files[0].present, 'b present again')
  t.is((await artifact('quota', 'q/b.bin')).files[0].cid, evicted.files[0].cid)
  const hitAgain = await get('quota/q/b.bin')
  t.is(hitAgain.headers.get('x-akmesh-cache'), 'hit')
  t.is(sha256(new Uint8Array(await hitAgain.arrayBuffer())), sha256(files['q/b.bin']))
  t.is(await nginx.count('GET', '/q/a.bin'), 1, 'a (used after b) was never asked again')
})

test.serial('bytes a local artifact also uses are never evicted, by quota or prune', async t => {
  const shared = deterministicBytes(120 * KIB, 'shared')
  const put = await fetch(`${node.url}/local/s/shared.bin`, { method: 'PUT', body: shared, headers: { authorization: `Bearer ${node.adminToken}` } })
  t.is(put.status, 201)
  await nginx.put('s/shared.bin', shared)
  await nginx.put('s/other1.bin', deterministicBytes(100 * KIB, 'o1'))
  await nginx.put('s/other2.bin', deterministicBytes(100 * KIB, 'o2'))
  t.is(sha256(await body('quota/s/shared.bin')), sha256(shared))
  const cid = (await artifact('quota', 's/shared.bin')).files[0].cid
  t.is((await artifact('local', 's/shared.bin')).files[0].cid, cid, 'the cached and the local file are one blob')
  await body('quota/s/other1.bin')
  await body('quota/s/other2.bin')
  // 250 KiB: two of the 100 KiB files; the shared blob is not the cache's bytes.
  await waitFor(async () => (await artifacts('quota')).filter(a => a.name !== 's/shared.bin' && a.files[0].present).length <= 2, 'quota enforced')
  t.true((await artifact('quota', 's/other2.bin')).files[0].present)
  t.true((await artifact('quota', 's/shared.bin')).files[0].present, 'the shared blob (least recently used) stayed')

  const r = await admin<Report>('POST', '/-/cache/prune?older-than=0s&repo=quota')
  t.false(r.evicted.some(e => e.cid === cid))
  t.true(r.spared.local >= 1)
  t.true((await artifact('quota', 's/shared.bin')).files[0].present)
  t.is(sha256(await body('local/s/shared.bin')), sha256(shared))
  t.false((await artifacts('quota')).some(a => a.name !== 's/shared.bin' && a.files[0].present), 'everything else was pruned')
})

test.serial('cache prune --older-than evicts what was not used for that long; --dry-run only lists', async t => {
  await nginx.put('p/old.bin', deterministicBytes(64 * KIB, 'old'))
  await nginx.put('p/new.bin', deterministicBytes(64 * KIB, 'new'))
  await body('aged/p/old.bin')
  await body('aged/p/new.bin')
  const cached = (await admin<{ artifacts: Array<{ name: string, lastUsedAt: number }> }>('GET', '/-/cache?repo=aged')).artifacts
  const used = Object.fromEntries(cached.map(a => [a.name, a.lastUsedAt]))
  t.true(used['p/old.bin'] < used['p/new.bin'], `old used before new: ${JSON.stringify(used)}`)
  // As of one hour after new.bin's last use, older than 1h is exactly what was used before it.
  const asOf = used['p/new.bin'] + 3_600_000
  const dry = await admin<Report>('POST', `/-/cache/prune?older-than=1h&repo=aged&dry-run=1&now=${asOf}`)
  t.deepEqual(dry.evicted.map(e => e.artifacts), [['p/old.bin']])
  t.true((await artifact('aged', 'p/old.bin')).files[0].present, 'a dry run evicts nothing')
  const r = await admin<Report>('POST', `/-/cache/prune?older-than=1h&repo=aged&now=${asOf}`)
  t.deepEqual(r.evicted.map(e => e.artifacts), [['p/old.bin']])
  t.is(r.bytes, 64 * KIB)
  t.false((await artifact('aged', 'p/old.bin')).files[0].present)
  t.true((await artifact('aged', 'p/new.bin')).files[0].present)

  // The CLI, through the running node.
  const dryCli = await cli(['prune', '--older-than', '0s', '--repo', 'aged', '--dry-run'])
  t.is(dryCli.code, 0, dryCli.stderr)
  t.regex(dryCli.stdout, /would evict aged p\/new\.bin 65536 bytes/)
  t.regex(dryCli.stdout, /would evict 1 cached blob\(s\), 65536 bytes freed \(dry run\)/)
  const listed = await cli(['list', '--repo', 'aged'])
  t.regex(listed.stdout, /aged\s+p\/old\.bin {2}0 of 65536 bytes here, last used .*, from http:\/\/127\.0\.0\.1:\d+\/p\/old\.bin/)
  const pruned = await cli(['prune', '--older-than', '0s', '--repo', 'aged'])
  t.is(pruned.code, 0, pruned.stderr)
  t.regex(pruned.stdout, /evicted 1 cached blob\(s\), 65536 bytes freed;/)
  const bad = await cli(['prune', '--older-than', '0s', '--repo', 'local'])
  t.not(bad.code, 0)
  t.regex(bad.stderr, /local is not a remote repository of this node/)
  // Beside a running node, only the node may evict.
  const direct = await akmesh(['cache', 'prune', '--older-than', '1d', '--data', node.dataDir])
  t.not(direct.code, 0)
  t.regex(direct.stderr, /has .* open \(a running node\?\): pass --url/)

  // Both were evicted: fetched again on request.
  t.is(sha256(await body('aged/p/old.bin')), sha256(deterministicBytes(64 * KIB, 'old')))
  t.is(await nginx.count('GET', '/p/old.bin'), 2)
})

test.serial('listings, search and the admin API mark cached artifacts with their upstream; an evicted npm tarball is fetched again', async t => {
  const root = await makeTempDir(t)
  const tgz = await makeTarball(root, { name: 'cached-pkg', version: '1.0.0', description: 'from upstream' })
  await v.publish({ name: 'cached-pkg', version: '1.0.0', description: 'from upstream' }, tgz)
  const doc = await (await get('npmr/cached-pkg')).json() as { versions: Record<string, { dist: { tarball: string } }> }
  const tarballPath = new URL(doc.versions['1.0.0'].dist.tarball).pathname.slice(1)
  t.is(sha256(await body(tarballPath)), sha256(tgz))

  const [npmRow] = await artifacts('npmr')
  t.like(npmRow, { name: 'cached-pkg', version: '1.0.0', cached: true })
  t.regex(npmRow.upstream as string, new RegExp(`^${v.url}/cached-pkg/-/cached-pkg-1\\.0\\.0\\.tgz$`))
  t.false((await artifact('local', 's/shared.bin')).cached, 'a local artifact is not marked cached')

  const search = await (await get('npmr/-/v1/search?text=cached-pkg')).json() as { objects: Array<{ package: { name: string, cached?: boolean, upstream?: string } }> }
  t.like(search.objects[0].package, { name: 'cached-pkg', cached: true, upstream: npmRow.upstream })

  const folder = await (await get('quota/q/')).json() as { entries: Array<{ path: string, cached: boolean, upstream: string, held: boolean }> }
  const a = folder.entries.find(e => e.path === 'q/a.bin')
  t.like(a, { cached: true, upstream: `${nginx.url}/q/a.bin` })

  const status = await admin<{ cache: Array<{ repo: string, quota: number | null, blobs: number, bytes: number }> }>('GET', '/-/mesh/status')
  t.like(status.cache.find(c => c.repo === 'quota'), { quota: 250 * KIB })
  t.like(status.cache.find(c => c.repo === 'npmr'), { quota: null, blobs: 1, bytes: tgz.length })
  t.regex((await cli(['list', '--repo', 'npmr'])).stdout, new RegExp(`npmr: 1 cached blob\\(s\\), ${tgz.length} bytes here\n`))

  const inventory = await akmesh(['inventory', '--data', node.dataDir])
  t.is(inventory.code, 0, inventory.stderr)
  const inv = JSON.parse(inventory.stdout) as { cached: Array<{ repo: string, upstreams: string[], artifacts: number }> }
  t.like(inv.cached.find(c => c.repo === 'npmr'), { artifacts: 1, upstreams: [npmRow.upstream] })

  const r = await admin<Report>('POST', '/-/cache/prune?older-than=0s&repo=npmr')
  t.deepEqual(r.evicted.map(e => e.artifacts), [['cached-pkg@1.0.0']])
  const tgzGets = () => v.requests().filter(l => l.startsWith('GET ') && l.endsWith('.tgz')).length
  t.is(tgzGets(), 1)
  t.is(sha256(await body(tarballPath)), sha256(tgz))
  t.is(tgzGets(), 2, 'the evicted tarball was fetched from Verdaccio again')
  t.true((await artifact('npmr', 'cached-pkg')).files[0].present)
})

test.serial('an evicted PyPI file: the project page still answers with its hash, the file is fetched again', async t => {
  const wheel = await makeWheel('akm-cached', '1.0')
  await pypi.project('akm-cached', [{ dist: wheel }])
  const page = async () => {
    const res = await get('pyr/simple/akm-cached/')
    t.is(res.status, 200)
    return await res.text()
  }
  const href = /href="([^"]+)"/.exec(await page())?.[1] as string
  const fileUrl = new URL(href, `${node.url}/pyr/simple/akm-cached/`)
  const download = async () => {
    const res = await fetch(fileUrl, { headers: { authorization: `Bearer ${node.adminToken}` } })
    if (res.status !== 200) throw new Error(`GET ${fileUrl}: ${res.status} ${await res.text()}`)
    return Buffer.from(await res.arrayBuffer())
  }
  t.is(sha256(await download()), sha256(wheel.bytes))
  const [row] = await artifacts('pyr')
  t.like(row, { name: 'akm-cached', cached: true })
  t.regex(row.upstream as string, /\/files\/akm_cached-1\.0-py3-none-any\.whl$/)

  const r = await admin<Report>('POST', '/-/cache/prune?older-than=0s&repo=pyr')
  t.is(r.evicted.length, 1)
  t.false((await artifact('pyr', 'akm-cached')).files[0].present)
  t.regex(await page(), new RegExp(`#sha256=${sha256(wheel.bytes)}`), 'the page is built while the file is evicted')
  t.is(await pypi.gets(wheel.filename), 1)
  t.is(sha256(await download()), sha256(wheel.bytes))
  t.is(await pypi.gets(wheel.filename), 2, 'the evicted file was asked upstream again')
  t.true((await artifact('pyr', 'akm-cached')).files[0].present)
})

test.serial('evicted OCI blobs and manifests are fetched from the registry again, verified by digest', async t => {
  const layer = deterministicBytes(80 * KIB, 'layer')
  const image = await pushToRegistry('team/app', '1', layer)
  const pull = async () => {
    const m = await get('v2/ocir/team/app/manifests/1')
    t.is(m.status, 200)
    t.is(m.headers.get('docker-content-digest'), image.digest)
    await m.arrayBuffer()
    for (const d of [image.config, ...image.layers]) {
      const b = await get(`v2/ocir/team/app/blobs/${d}`)
      t.is(b.status, 200)
      t.is(digestOf(new Uint8Array(await b.arrayBuffer())), d)
    }
  }
  await pull()
  const layerPath = `/v2/team/app/blobs/${image.layers[0]}`
  t.is(registry.count('GET', layerPath), 1)
  const [row] = await artifacts('ocir')
  t.like(row, { name: 'team/app', version: image.digest, cached: true })
  await waitFor(async () => (await artifact('ocir', 'team/app')).files.length === 3, 'the manifest row names its blobs')

  const r = await admin<Report>('POST', '/-/cache/prune?older-than=0s&repo=ocir')
  t.is(r.evicted.length, 3, 'manifest, config and layer')
  t.true((await artifact('ocir', 'team/app')).files.every(f => !f.present))
  await pull()
  t.is(registry.count('GET', layerPath), 2, 'the evicted layer was asked upstream again')
  const byDigest = await get(`v2/ocir/team/app/manifests/${image.digest}`)
  t.is(byDigest.status, 200)
  t.is(digestOf(new Uint8Array(await byDigest.arrayBuffer())), image.digest)
  t.true((await artifact('ocir', 'team/app')).files.every(f => f.present))
})

test.serial('on a stopped node, cache list and prune work on its data directory; last use survives the stop', async t => {
  await nginx.put('stop/late.bin', deterministicBytes(32 * KIB, 'late'))
  await body('aged/stop/late.bin')
  await body('aged/stop/late.bin')
  await nginx.put('stop/q1.bin', deterministicBytes(100 * KIB, 'q1'))
  await nginx.put('stop/q2.bin', deterministicBytes(100 * KIB, 'q2'))
  await body('quota/stop/q1.bin')
  await body('quota/stop/q2.bin') // 200 KiB held: under 250 KiB
  const configFile = `${node.dataDir}.yaml`
  await node.stop()
  // Restarted with a lower quota: enforced at start.
  await writeFile(configFile, (await readFile(configFile, 'utf8')).replace('quota: 250KiB', 'quota: 150KiB'))
  try {
    const flags = ['--config', configFile, '--data', node.dataDir]
    const listed = await akmesh(['cache', 'list', '--repo', 'aged', ...flags])
    t.is(listed.code, 0, listed.stderr)
    t.regex(listed.stdout, /aged\s+stop\/late\.bin {2}32768 bytes, last used /, 'the last use was written at stop')
    const pruned = await akmesh(['cache', 'prune', '--older-than', '0s', '--repo', 'aged', '--json', ...flags])
    t.is(pruned.code, 0, pruned.stderr)
    const r = JSON.parse(pruned.stdout) as Report
    // p/old.bin, fetched again at the end of the prune test, goes too.
    t.deepEqual(r.evicted.map(e => e.artifacts).sort(), [['p/old.bin'], ['stop/late.bin']])
    t.is(r.bytes, 64 * KIB + 32 * KIB)
  } finally { await node.restart() }
  await waitFor(async () => !(await artifact('quota', 'stop/q1.bin')).files[0].present, 'the lowered quota enforced at start')
  t.true((await artifact('quota', 'stop/q2.bin')).files[0].present, 'the more recently used one stays')
  t.false((await artifact('aged', 'stop/late.bin')).files[0].present)
  t.is(sha256(await body('aged/stop/late.bin')), sha256(deterministicBytes(32 * KIB, 'late')))
  t.is(await nginx.count('GET', '/stop/late.bin'), 2)
})

test('quota: sizes in bytes, KiB/MiB/GiB and kB/MB/GB; refused on a local repository and when malformed', async t => {
  const dir = await makeTempDir(t)
  const repoList = async (repo: string) => {
    const file = `${dir}/c-${Math.random().toString(36).slice(2)}.yaml`
    await writeFile(file, `repositories:\n  - ${repo}\n`)
    return await akmesh(['repo', 'list', '--json', '--config', file, '--data', dir])
  }
  const quotaOf = async (q: string) => {
    const r = await repoList(`{ name: r, format: generic, type: remote, upstream: "http://127.0.0.1:1/", quota: ${q} }`)
    t.is(r.code, 0, r.stderr)
    return (JSON.parse(r.stdout) as Array<{ quota: number }>)[0].quota
  }
  t.is(await quotaOf('500MiB'), 500 * 2 ** 20)
  t.is(await quotaOf('10GB'), 10e9)
  t.is(await quotaOf('1.5GiB'), 1.5 * 2 ** 30)
  t.is(await quotaOf('4096'), 4096)
  const bad = await repoList('{ name: r, format: generic, type: remote, upstream: "http://127.0.0.1:1/", quota: lots }')
  t.not(bad.code, 0)
  t.regex(bad.stderr, /quota.*expected a size such as 500MiB, 10GiB or 10GB, got "lots"/)
  const local = await repoList('{ name: r, format: generic, quota: 1GiB }')
  t.not(local.code, 0)
  t.regex(local.stderr, /quota.*only remote repositories \(type: remote\) have a cache quota/)
})
