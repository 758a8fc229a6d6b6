// Lockfile bundles for air-gapped sites (issue 11): node A has remote npm and PyPI repositories in
// front of a real Verdaccio and a real nginx PEP 503/691 index; `npm install --package-lock-only`
// through A writes a package-lock.json (packuments only: no tarball is fetched yet) and the test
// writes a requirements.txt with hashes. `akmesh export --lockfile` makes A fetch what is missing
// and bundles exactly that set; node B, whose npm remote is offline and whose PyPI upstream is a
// closed port, imports it, and `npm ci` and `pip install --require-hashes -r` succeed against B
// with A stopped. A wrong integrity, an entry the upstream lacks and a git dependency each fail
// the export by name with nothing written; --allow-missing bundles the rest and lists them. An
// image list (name:tag, name@digest) through a remote OCI repository in front of a real
// docker-registry: B, offline, serves `skopeo copy` of exactly the listed images.
import test from 'ava'
import * as dagCbor from '@ipld/dag-cbor'
import { existsSync } from 'node:fs'
import { copyFile, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseNpmLockfile } from '../node/bundle/lockfiles/npm.ts'
import { parseImageList } from '../node/bundle/lockfiles/oci-images.ts'
import { parseRequirements } from '../node/bundle/lockfiles/requirements.ts'
import type { NpmEntry, OciEntry, PypiEntry } from '../node/bundle/lockfiles/types.ts'
import { exportBundle, importBundle, readBundle } from './helpers/bundle.ts'
import { startRegistry, type Registry } from './helpers/docker-registry.ts'
import { addImage, addLayer, blobPath, layoutRef, writeLayout, type Image } from './helpers/oci-image.ts'
import { skopeoEnv } from './helpers/skopeo.ts'
import { requireClient, run } from './helpers/clients.ts'
import { identity } from './helpers/mesh.ts'
import { freePort, hookTeardowns } from './helpers/nginx.ts'
import { makeTempDir, startTestNode, type TestNode } from './helpers/node.ts'
import { npmClient, runNode } from './helpers/npm-client.ts'
import { packageTree, type TreePackage } from './helpers/npm-tree.ts'
import { makeWheel, sha256, type Dist } from './helpers/pypi-dists.ts'
import { makeVenv, mustRun, pythonEnv, sharedPip } from './helpers/pypi-project.ts'
import { startPypiUpstream, type PypiUpstream } from './helpers/pypi-upstream.ts'
import { startVerdaccio, verdaccioInstalled, VERDACCIO, type Verdaccio } from './helpers/verdaccio.ts'

interface Setup {
  v: Verdaccio
  up: PypiUpstream
  registry: Registry
  a: TestNode
  b: TestNode
  tree: TreePackage[]
  py: { lib: Dist, app: Dist, extra: Dist }
  /** The npm project (package.json + package-lock.json written through A) and its check. */
  project: { dir: string, code: string, expected: number, lock: string }
  requirements: string
}
let s: Setup
const hook = hookTeardowns()
test.after.always(async () => { if (process.env.DUMP != null) console.log(s?.a.output().slice(-6000), s?.b.output().slice(-6000)); await hook.run() })

const metadata = (name: string, version: string, requires: string[] = []) =>
  `Metadata-Version: 2.1\nName: ${name}\nVersion: ${version}\n${requires.map(r => `Requires-Dist: ${r}\n`).join('')}\n`
const tarballPath = (p: TreePackage) => `/${p.manifest.name}/-/${p.manifest.name.split('/').pop() as string}-${p.manifest.version}.tgz`

/** The project's direct dependencies (lk-04 needs lk-00 to lk-03; lk-05 to lk-09 stay out). */
const DIRECT = ['lk-04', '@lk/scoped']

test.before(async () => {
  if (!verdaccioInstalled()) return
  const { t } = hook
  const v = await startVerdaccio(t)
  const tree = await packageTree('lk', 10)
  for (const p of tree) await v.publish(p.manifest, p.tgz, p.tag)
  const up = await startPypiUpstream(t)
  const lib = await makeWheel('akm-lib', '1.0', { metadata: metadata('akm-lib', '1.0') })
  const app = await makeWheel('Akm.App', '1.0', { metadata: metadata('Akm.App', '1.0', ['akm-lib>=1.0']) })
  const extra = await makeWheel('akm-extra', '1.0')
  await up.project('akm-lib', [{ dist: lib, metadata: true }])
  await up.project('akm-app', [{ dist: app, metadata: true }])
  await up.project('akm-extra', [{ dist: extra }])
  const registry = await startRegistry(t)

  // One mesh, two sites that never connect.
  const [ia, ib] = [await identity(t), await identity(t)]
  const a = await startTestNode(t, {
    dataDir: ia.dataDir,
    peering: { allow: [ib.peerId] },
    config: `
repositories:
  - { name: npm, format: npm, type: remote, upstream: "${v.url}/" }
  - { name: pypi, format: pypi, type: remote, upstream: "${up.nginx.url}/simple/" }
  - { name: oci, format: oci, type: remote, upstream: "${registry.url}" }
  - { name: npm-local, format: npm }
  - { name: npm-all, format: npm, type: virtual, members: [npm-local, npm], defaultLocal: npm-local }
`
  })
  const closed = await freePort()
  const b = await startTestNode(t, {
    dataDir: ib.dataDir,
    peering: { allow: [ia.peerId] },
    config: `
repositories:
  - { name: npm, format: npm, type: remote, upstream: "http://127.0.0.1:${closed}/", offline: true }
  - { name: pypi, format: pypi, type: remote, upstream: "http://127.0.0.1:${closed}/simple/" }
  - { name: oci, format: oci, type: remote, upstream: "http://127.0.0.1:${closed}", offline: true }
`
  })

  // The npm project, locked through A without fetching a tarball.
  const npm = await npmClient(t, a, null)
  if (npm == null) throw new Error('npm is required')
  const dir = await makeTempDir(t, 'akmesh-lockproject-')
  const direct = tree.filter(p => p.tag == null && DIRECT.includes(p.manifest.name))
  await writeFile(join(dir, 'package.json'), JSON.stringify({
    name: 'air-consumer', version: '1.0.0', private: true,
    dependencies: Object.fromEntries(direct.map(p => [p.manifest.name, `^${p.manifest.version}`]))
  }))
  const locked = await npm.run(['install', '--package-lock-only'], { cwd: dir })
  if (locked.code !== 0) throw new Error(`npm install --package-lock-only: ${locked.stderr}`)
  const code = `console.log(${direct.map(p => `require(${JSON.stringify(p.manifest.name)})`).join(' + ')})`
  const project = { dir, code, expected: direct.reduce((sum, p) => sum + p.value, 0), lock: join(dir, 'package-lock.json') }

  const requirements = join(dir, 'requirements.txt')
  await writeFile(requirements, [
    '# written by hand, as pip-compile --generate-hashes would',
    `akm-app==1.0 \\\n    --hash=sha256:${sha256(app.bytes)}`,
    `akm-lib==1.0 --hash=sha256:${sha256(lib.bytes)}`,
    ''
  ].join('\n'))
  s = { v, up, registry, a, b, tree, py: { lib, app, extra }, project, requirements }
})

function needsVerdaccio (t: { fail: (m: string) => void, pass: () => void }): boolean {
  if (verdaccioInstalled()) return true
  if (process.env.CI === 'true') t.fail(`Verdaccio is not installed at ${VERDACCIO}; .ci/run must install it`)
  else { console.warn(`\n!!! SKIPPING: Verdaccio is not installed (${VERDACCIO}); run .ci/run's install step. !!!\n`); t.pass() }
  return false
}

/** The config file startTestNode wrote for A (the export needs its repositories). */
const configOf = (node: TestNode) => join(node.dataDir, '..', `${node.dataDir.split('/').pop() as string}.yaml`)
const lockfileArgs = (...files: string[]) => [...files.flatMap(f => ['--lockfile', f]), '--repo', 'npm,pypi,oci', '--config', configOf(s.a), '--url', s.a.url, '--token', s.a.adminToken]
/** The same through the virtual npm repository (its rows land in its remote member). */
const virtualArgs = (...files: string[]) => lockfileArgs(...files).map(a => a === 'npm,pypi,oci' ? 'npm-all,pypi' : a)

/** `repo name@version` of every artifact manifest in a bundle. */
async function bundled (file: string): Promise<string[]> {
  const { blocks } = await readBundle(file)
  const out = new Set<string>()
  for (const b of blocks) {
    if (b.manifest == null) continue
    const { payload } = dagCbor.decode<{ payload: Uint8Array }>(b.bytes)
    const m = dagCbor.decode<{ repo: string, name: string, version: string }>(payload)
    out.add(`${m.repo} ${m.name}@${m.version}`)
  }
  return [...out].sort()
}

/** What package-lock.json pins: `npm name@version` of each entry. */
async function lockedSet (lock: string): Promise<string[]> {
  const doc = JSON.parse(await readFile(lock, 'utf8')) as { packages: Record<string, { version: string, name?: string }> }
  return [...new Set(Object.entries(doc.packages).filter(([k]) => k !== '').map(([k, e]) => `npm ${e.name ?? k.slice(k.lastIndexOf('node_modules/') + 13)}@${e.version}`))].sort()
}

test.serial('export --lockfile from A fetches what is missing and bundles exactly the locked set; on B with no upstream, npm ci and pip install --require-hashes succeed', async t => {
  if (!needsVerdaccio(t)) return
  const npmLocked = await lockedSet(s.project.lock)
  t.true(npmLocked.length >= 6, npmLocked.join(', '))
  const lockedTree = s.tree.filter(p => npmLocked.includes(`npm ${p.manifest.name}@${p.manifest.version}`))
  for (const p of lockedTree) t.is(s.v.count('GET', tarballPath(p)), 0, `${tarballPath(p)} not fetched before the export`)
  // Cached on A but not in the lockfiles: must stay out of the bundle.
  const other = s.tree.find(p => p.manifest.name === 'lk-08') as TreePackage
  t.false(npmLocked.includes(`npm lk-08@${other.manifest.version}`))
  t.is((await fetch(`${s.a.url}/npm${tarballPath(other)}`).then(async r => { await r.arrayBuffer(); return r.status })), 200)
  t.is((await fetch(`${s.a.url}/pypi/packages/akm-extra/${s.py.extra.filename}`).then(async r => { await r.arrayBuffer(); return r.status })), 200)

  const out = join(await makeTempDir(t, 'akmesh-lockbundle-'), 'air.car')
  const r = await exportBundle(s.a.dataDir, out, [...lockfileArgs(s.project.lock, s.requirements), '--json'])
  t.is(r.code, 0, r.stderr)
  const report = JSON.parse(r.stdout) as { mode: string, lockfile: { entries: number, artifacts: number, skipped: unknown[] } }
  t.is(report.mode, 'artifacts')
  t.deepEqual(report.lockfile, { entries: npmLocked.length + 2, artifacts: npmLocked.length + 2, skipped: [] })
  for (const p of lockedTree) t.is(s.v.count('GET', tarballPath(p)), 1, `${tarballPath(p)} fetched once, by the export`)
  t.deepEqual(await bundled(out), [...npmLocked, 'pypi akm-app@1.0', 'pypi akm-lib@1.0'].sort(), 'exactly the lockfiles\' set')

  const imported = await importBundle(s.b.dataDir, out, { node: s.b })
  t.is(imported.code, 0, imported.stderr)
  await s.a.stop()
  // B never held these packuments or pages in memory: it serves them from the imported rows
  // (its npm remote is offline, its PyPI upstream a closed port).
  const packument = await fetch(`${s.b.url}/npm/lk-04`, { headers: { accept: 'application/vnd.npm.install-v1+json' } })
  t.is(packument.status, 200)
  t.deepEqual(Object.keys((await packument.json() as { versions: object }).versions), [(s.tree.find(p => p.manifest.name === 'lk-04') as TreePackage).manifest.version])
  t.is((await fetch(`${s.b.url}/npm/lk-08`)).status, 404, 'offline, and not in the bundle')
  const page = await fetch(`${s.b.url}/pypi/simple/akm-app/`, { headers: { accept: 'application/vnd.pypi.simple.v1+json' } })
  t.is(page.status, 200)
  t.deepEqual((await page.json() as { files: Array<{ filename: string }> }).files.map(f => f.filename), [s.py.app.filename])

  // npm ci on B: the lockfile's resolved URLs name A; replace-registry-host=always sends them to B.
  const npm = await npmClient(t, s.b, null)
  if (npm == null) return
  const dir = await makeTempDir(t, 'akmesh-farside-')
  await copyFile(join(s.project.dir, 'package.json'), join(dir, 'package.json'))
  await copyFile(s.project.lock, join(dir, 'package-lock.json'))
  const ci = await npm.run(['ci', '--replace-registry-host=always'], { cwd: dir })
  t.is(ci.code, 0, ci.stdout + ci.stderr)
  t.is((await runNode(dir, s.project.code)).stdout.trim(), String(s.project.expected))

  const python = await requireClient(t, 'python3')
  if (python == null) return
  const venv = await makeVenv(t, python, { withPip: false })
  const pip = await run(await sharedPip(python), ['-m', 'pip', '--python', venv, 'install', '--no-cache-dir', '--require-hashes',
    '--index-url', `${s.b.url}/pypi/simple/`, '-r', s.requirements], { env: pythonEnv() })
  t.is(pip.code, 0, pip.stdout + pip.stderr)
  t.is((await mustRun(venv, ['-c', 'import akm_app, akm_lib; print(akm_app.VERSION, akm_lib.VERSION)'])).stdout.trim(), '1.0 1.0')
  await s.a.restart()
})

test.serial('a wrong integrity in the lockfile, an entry the upstream lacks and a git dependency fail the export by name, nothing written; --allow-missing (through a virtual repository) bundles the rest and lists them', async t => {
  if (!needsVerdaccio(t)) return
  const doc = JSON.parse(await readFile(s.project.lock, 'utf8')) as { packages: Record<string, Record<string, unknown>> }
  const victim = Object.keys(doc.packages).find(k => k.endsWith('node_modules/lk-03')) as string
  t.truthy(victim)
  const wrong = 'sha512-' + Buffer.alloc(64, 7).toString('base64')
  doc.packages[victim] = { ...doc.packages[victim], integrity: wrong }
  const dir = await makeTempDir(t, 'akmesh-badlock-')
  const bad = join(dir, 'package-lock.json')
  await writeFile(bad, JSON.stringify(doc))
  const out = join(dir, 'bad.car')
  const r = await exportBundle(s.a.dataDir, out, lockfileArgs(bad))
  t.not(r.code, 0)
  t.regex(r.stderr, new RegExp(`integrity: ${victim} \\(lk-03@[0-9.]+\\): integrity mismatch: the lockfile pins ${wrong.replace(/[+/]/g, '\\$&')}`))
  t.false(existsSync(out), 'no partial bundle')

  doc.packages[victim] = { ...doc.packages[victim], integrity: undefined }
  doc.packages['node_modules/lk-nope'] = { version: '9.9.9', resolved: `${s.a.url}/npm/lk-nope/-/lk-nope-9.9.9.tgz`, integrity: wrong }
  doc.packages['node_modules/from-git'] = { version: '1.0.0', resolved: 'git+ssh://git@example.invalid/x/from-git.git#0123456789abcdef0123456789abcdef01234567' }
  await writeFile(bad, JSON.stringify(doc))
  const two = await exportBundle(s.a.dataDir, out, lockfileArgs(bad))
  t.not(two.code, 0)
  t.regex(two.stderr, /2 lockfile entries cannot be bundled, nothing written/)
  t.regex(two.stderr, /missing: node_modules\/lk-nope \(lk-nope@9\.9\.9\): npm and its upstream have no package lk-nope/)
  t.regex(two.stderr, /unsupported: node_modules\/from-git: git\+ssh:\S+ is not a registry package/)
  t.false(existsSync(out))

  const allowed = await exportBundle(s.a.dataDir, out, [...virtualArgs(bad), '--allow-missing'])
  t.is(allowed.code, 0, allowed.stderr)
  t.regex(allowed.stdout, /skipped \(missing\) node_modules\/lk-nope/)
  t.regex(allowed.stdout, /skipped \(unsupported\) node_modules\/from-git/)
  t.deepEqual(await bundled(out), await lockedSet(s.project.lock))

  // pylock.toml (PEP 751): the index packages by their files' hashes; a VCS package is named.
  const pylock = join(dir, 'pylock.toml')
  await writeFile(pylock, [
    'lock-version = "1.0"', 'created-by = "hand"', '',
    '[[packages]]', 'name = "Akm.App"', 'version = "1.0"',
    '[[packages.wheels]]', `name = "${s.py.app.filename}"`, 'url = "https://files.example.invalid/a.whl"', `hashes = { sha256 = "${sha256(s.py.app.bytes)}" }`, '',
    '[[packages]]', 'name = "akm-lib"', 'version = "1.0"',
    '[[packages.wheels]]', `name = "${s.py.lib.filename}"`, `hashes = { sha256 = "${sha256(s.py.lib.bytes)}" }`, '',
    '[[packages]]', 'name = "from-vcs"', 'vcs = { type = "git", url = "https://example.invalid/x.git", commit-id = "0123456789abcdef" }', ''
  ].join('\n'))
  const locked = await exportBundle(s.a.dataDir, join(dir, 'pylock.car'), lockfileArgs(pylock))
  t.not(locked.code, 0)
  t.regex(locked.stderr, /unsupported: .*pylock\.toml \[\[packages\]\] from-vcs: a vcs package, not an index package/)
  const pylockOut = join(dir, 'pylock.car')
  t.is((await exportBundle(s.a.dataDir, pylockOut, [...lockfileArgs(pylock), '--allow-missing'])).code, 0)
  t.deepEqual(await bundled(pylockOut), ['pypi akm-app@1.0', 'pypi akm-lib@1.0'])

  const reqs = join(dir, 'requirements.txt')
  await writeFile(reqs, `akm-lib==1.0 --hash=sha256:${'0'.repeat(64)}\n`)
  const py = await exportBundle(s.a.dataDir, join(dir, 'py.car'), lockfileArgs(reqs))
  t.not(py.code, 0)
  t.regex(py.stderr, /integrity: .*requirements\.txt line 1 \(akm-lib==1\.0\): integrity mismatch: none of the 1 file\(s\) of akm-lib 1\.0 on the index/)
})

test.serial('an image list through a remote OCI repository: the listed images (tag, digest) and nothing else; skopeo copy from B with no upstream', async t => {
  if (!needsVerdaccio(t)) return
  const skopeo = await requireClient(t, 'skopeo')
  if (skopeo == null) return
  const cl = await skopeoEnv(t, [s.a, s.b])
  const root = await makeTempDir(t, 'akmesh-lockoci-')
  const push = async (name: string, tag: string, seed: string): Promise<Image> => {
    const layout = join(root, `${name.replace(/\//g, '_')}-${tag}`)
    const image = await addImage(layout, [await addLayer(layout, { 'etc/os-release': `ID=${seed}\n`, 'bin/tool': { random: 150_000 } })])
    await writeLayout(layout, { [tag]: image.manifest })
    const r = await cl.skopeo(['copy', '--dest-tls-verify=false', `oci:${layout}:${tag}`, `docker://${s.registry.host}/${name}:${tag}`])
    if (r.code !== 0) throw new Error(r.stderr)
    return image
  }
  const app = await push('air/app', '1', 'app')
  const tool = await push('air/tool', '2', 'tool')
  const unlisted = await push('air/other', '1', 'other')
  // Cached on A, not listed: stays out.
  t.is((await cl.skopeo(['copy', '--src-tls-verify=false', `docker://${new URL(s.a.url).host}/oci/air/other:1`, `oci:${join(root, 'pulled-other')}:1`])).code, 0)

  const list = join(root, 'images.txt')
  await writeFile(list, `# images for the far site\n${s.registry.host}/air/app:1\nair/tool@${tool.manifest.digest}\n`)
  const out = join(root, 'oci.car')
  const r = await exportBundle(s.a.dataDir, out, lockfileArgs(list))
  t.is(r.code, 0, r.stderr)
  const names = await bundled(out)
  t.deepEqual(names, [`oci air/app@${app.manifest.digest}`, `oci air/tool@${tool.manifest.digest}`])
  t.false(names.some(n => n.includes(unlisted.manifest.digest)))
  const imported = await importBundle(s.b.dataDir, out, { node: s.b })
  t.is(imported.code, 0, imported.stderr)

  const b = new URL(s.b.url).host
  const appOut = join(root, 'b-app')
  const copied = await cl.skopeo(['copy', '--src-tls-verify=false', `docker://${b}/oci/air/app:1`, `oci:${appOut}:1`])
  t.is(copied.code, 0, copied.stderr)
  t.is((await layoutRef(appOut, '1')).digest, app.manifest.digest)
  for (const l of app.layers) t.true(existsSync(blobPath(appOut, l.digest)))
  const toolOut = join(root, 'b-tool')
  const byDigest = await cl.skopeo(['copy', '--src-tls-verify=false', `docker://${b}/oci/air/tool@${tool.manifest.digest}`, `oci:${toolOut}:2`])
  t.is(byDigest.code, 0, byDigest.stderr)
  t.not((await cl.skopeo(['copy', '--src-tls-verify=false', `docker://${b}/oci/air/other:1`, `oci:${join(root, 'b-other')}:1`])).code, 0, 'not listed, not on B')

  await writeFile(list, `air/app@sha256:${'0'.repeat(64)}\n`)
  const wrong = await exportBundle(s.a.dataDir, join(root, 'wrong.car'), lockfileArgs(list))
  t.not(wrong.code, 0)
  t.regex(wrong.stderr, /missing: .*images\.txt line 1 \(air\/app@sha256:0{64}\): oci and its upstream have no manifest air\/app@sha256:0{64}/)
})

test('lockfile parsers: v1 nesting and aliases, links and bundled entries; requirements continuations, markers, unpinned and URL lines; image references with a host', t => {
  const v1 = parseNpmLockfile(JSON.stringify({
    lockfileVersion: 1,
    dependencies: {
      a: { version: '1.0.0', integrity: 'sha512-x', dependencies: { b: { version: '2.0.0' }, c: { version: '1.0.0', bundled: true } } },
      alias: { version: 'npm:@s/real@3.0.0' },
      g: { version: 'git+https://example.invalid/g.git#abc' }
    }
  }), 'v1.json')
  t.deepEqual(v1.entries.map(e => `${e.where} ${(e as NpmEntry).name}@${(e as NpmEntry).version}`), ['node_modules/a a@1.0.0', 'node_modules/a/node_modules/b b@2.0.0', 'node_modules/alias @s/real@3.0.0'])
  t.deepEqual(v1.problems.map(p => [p.where, p.problem]), [['node_modules/g', 'unsupported']])
  const v3 = parseNpmLockfile(JSON.stringify({
    lockfileVersion: 3,
    packages: { '': { name: 'root' }, 'node_modules/w': { resolved: 'packages/w', link: true }, 'packages/w': { version: '1.0.0' }, 'node_modules/x': { version: '1.0.0', inBundle: true }, 'node_modules/f': { version: '1.0.0', resolved: 'file:../f.tgz' } }
  }), 'v3.json')
  t.deepEqual(v3.entries, [])
  t.deepEqual(v3.problems.map(p => p.where), ['node_modules/w', 'node_modules/f'])

  const h = 'a'.repeat(64)
  const req = parseRequirements(['# top', `Foo_Bar[extra]==1.0 ; python_version >= "3.8" \\`, `    --hash=sha256:${h} \\`, `    --hash=sha256:${'b'.repeat(64)}`, 'baz>=1.0', `qux @ https://example.invalid/q.whl --hash=sha256:${h}`, '--index-url https://example.invalid/simple', 'nohash==2.0'].join('\n'), 'r.txt')
  t.deepEqual(req.entries.map(e => [e.where, (e as PypiEntry).project, (e as PypiEntry).version, (e as PypiEntry).sha256.length]), [['r.txt line 2 (Foo_Bar==1.0)', 'foo-bar', '1.0', 2]])
  t.deepEqual(req.problems.map(p => p.where), ['r.txt line 5', 'r.txt line 6', 'r.txt line 8'])

  const images = parseImageList(`127.0.0.1:5000/air/app:1\nlocalhost/x\nalpine\nbad name\nair/tool:2@sha256:${h}\n`, 'i.txt')
  t.deepEqual(images.entries.map(e => { const o = e as OciEntry; return `${o.name} ${o.tag ?? '-'} ${o.digest ?? '-'}` }), ['air/app 1 -', 'x latest -', 'alpine latest -', `air/tool 2 sha256:${h}`])
  t.deepEqual(images.problems.map(p => p.problem), ['unsupported'])
})
