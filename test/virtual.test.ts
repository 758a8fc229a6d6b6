// Virtual repositories (type: virtual) on one node, with nginx as the upstream of a generic
// remote member: generic GET resolves to the first member that has the path (local, then
// remote), dependency-confusion protection (a path or package name any local member has is never
// served from a remote member, whatever the member order or version, unless allowRemoteOverride
// names it), npm install through a virtual of two local npm repositories (first member wins for
// a shared version), pip install through a virtual of two local PyPI repositories, and publishes
// (PUT, npm publish, twine-style upload) landing in defaultLocal, or 405 without one.
import test from 'ava'
import { createHash } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { requireClient, run } from './helpers/clients.ts'
import { hookTeardowns, startNginx, type Nginx } from './helpers/nginx.ts'
import { akmesh, makeTempDir, startTestNode, type TestNode } from './helpers/node.ts'
import { makeTarball, npmClient, publishBody, runNode, writePackage, writeProject } from './helpers/npm-client.ts'
import { coreMetadata, makeWheel, upload, uploadForm, type Dist } from './helpers/pypi-dists.ts'
import { makeVenv, mustRun, pythonEnv, sharedPip } from './helpers/pypi-project.ts'
import { VirtualRepository, type VirtualMember } from '../protocols/shared/virtual/virtual-repository.ts'
import type { FormatContext } from '../protocols/format.ts'

const sha256 = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex')

let nginx: Nginx
let node: TestNode
const hook = hookTeardowns()
test.after.always(hook.run)

test.before(async () => {
  const { t } = hook
  nginx = await startNginx(t)
  node = await startTestNode(t, {
    config: `
repositories:
  - { name: files-local, format: generic }
  - { name: files-up, format: generic, type: remote, upstream: "${nginx.url}/" }
  # local first, then the upstream
  - { name: files, format: generic, type: virtual, members: [files-local, files-up], defaultLocal: files-local }
  # the remote member first: dependency-confusion protection must still serve the local copy
  - { name: files-guarded, format: generic, type: virtual, members: [files-up, files-local] }
  - { name: files-open, format: generic, type: virtual, members: [files-up, files-local], allowRemoteOverride: [tools/override.txt] }
  - { name: npm-team, format: npm }
  - { name: npm-shared, format: npm }
  - { name: npm, format: npm, type: virtual, members: [npm-team, npm-shared], defaultLocal: npm-team }
  - { name: npm-nodefault, format: npm, type: virtual, members: [npm-team, npm-shared] }
  - { name: pypi-team, format: pypi }
  - { name: pypi-shared, format: pypi }
  - { name: pypi, format: pypi, type: virtual, members: [pypi-team, pypi-shared], defaultLocal: pypi-team }
`
  })
})

const auth = () => ({ authorization: `Bearer ${node.adminToken}` })
const get = async (path: string) => await fetch(`${node.url}/${path}`, { headers: auth() })
const put = async (path: string, body: string) => await fetch(`${node.url}/${path}`, { method: 'PUT', headers: auth(), body })

test.serial('generic: a path resolves to the first member that has it, local then remote', async t => {
  t.is((await put('files-local/dist/only-local.txt', 'local bytes')).status, 201)
  await nginx.put('dist/only-upstream.txt', 'upstream bytes')

  const local = await get('files/dist/only-local.txt')
  t.is(local.status, 200)
  t.is(local.headers.get('x-akmesh-member'), 'files-local')
  t.is(await local.text(), 'local bytes')

  const remote = await get('files/dist/only-upstream.txt')
  t.is(remote.status, 200)
  t.is(remote.headers.get('x-akmesh-member'), 'files-up')
  t.is(await remote.text(), 'upstream bytes')
  t.is(await nginx.count('GET', '/dist/only-upstream.txt'), 1)
  t.is((await get('files/dist/only-upstream.txt')).headers.get('x-akmesh-cache'), 'hit', 'the remote member cached it')

  const missing = await get('files/dist/nowhere.txt')
  t.is(missing.status, 404)
  t.regex((await missing.json() as { error: string }).error, /members: files-local, files-up/)

  const listing = await (await get('files/dist/')).json() as { files: string[] }
  t.deepEqual(listing.files, ['dist/only-local.txt', 'dist/only-upstream.txt'])
})

test.serial('generic dependency confusion: a path a local member has is never served by the remote member, even one listed first', async t => {
  t.is((await put('files-local/internal-lib/internal-lib-1.0.0.tgz', 'internal 1.0.0')).status, 201)
  await nginx.put('internal-lib/internal-lib-1.0.0.tgz', 'PLANTED upstream copy')
  await nginx.put('internal-lib/internal-lib-9.9.9.tgz', 'PLANTED higher version')

  const guarded = await get('files-guarded/internal-lib/internal-lib-1.0.0.tgz')
  t.is(guarded.status, 200)
  t.is(await guarded.text(), 'internal 1.0.0')
  t.is(guarded.headers.get('x-akmesh-member'), 'files-local')
  t.is(await nginx.count('GET', '/internal-lib/internal-lib-1.0.0.tgz'), 0, 'the upstream was not even asked')

  // A path no local member has is the remote member's (generic has no package names above paths).
  const other = await get('files-guarded/internal-lib/internal-lib-9.9.9.tgz')
  t.is(other.status, 200)
  t.is(other.headers.get('x-akmesh-member'), 'files-up')

  // The opt-out: allowRemoteOverride lets the remote member (first in order) win for that name.
  t.is((await put('files-local/tools/override.txt', 'local override')).status, 201)
  await nginx.put('tools/override.txt', 'upstream override')
  const open = await get('files-open/tools/override.txt')
  t.is(await open.text(), 'upstream override')
  t.is(open.headers.get('x-akmesh-member'), 'files-up')
})

test.serial('generic: PUT through a virtual repository lands in defaultLocal; without defaultLocal it is 405', async t => {
  const res = await put('files/uploads/via-virtual.txt', 'published through the virtual repository')
  t.is(res.status, 201)
  t.is((await res.json() as { repo: string }).repo, 'files-local')
  const stored = await get('files-local/uploads/via-virtual.txt')
  t.is(stored.status, 200)
  t.is(await stored.text(), 'published through the virtual repository')

  const refused = await put('files-guarded/uploads/x.txt', 'x')
  t.is(refused.status, 405)
  t.regex((await refused.json() as { error: string }).error, /files-guarded is a virtual repository without defaultLocal: PUT to one of its local members \(files-local\), or set defaultLocal/)
  t.is((await get('files-local/uploads/x.txt')).status, 404)
})

test('the shared resolver: a name any local member has is served by local members only, unless opted out', t => {
  const fc = (name: string) => ({ repo: { name }, allows: () => true }) as unknown as FormatContext
  const members: VirtualMember[] = [
    { name: 'upstream', kind: 'remote', fc: fc('upstream') },
    { name: 'team', kind: 'local', fc: fc('team') },
    { name: 'other', kind: 'local', fc: fc('other') }
  ]
  const v = new VirtualRepository({ name: 'v', members, allowRemoteOverride: ['left-pad'] })
  const inTeam = (has: string) => (m: VirtualMember) => m.name === 'team' && has === 'internal-lib'
  const names = (ms: VirtualMember[]) => ms.map(m => m.name)
  const koa = {} as never
  t.deepEqual(names(v.membersFor(koa, 'internal-lib', inTeam('internal-lib'))), ['team', 'other'])
  t.deepEqual(names(v.membersFor(koa, 'react', () => false)), ['upstream', 'team', 'other'])
  t.deepEqual(names(v.membersFor(koa, 'left-pad', () => true)), ['upstream', 'team', 'other'])
})

async function publishTo (repo: string, name: string, version: string, root: string, description = `in ${repo}`): Promise<void> {
  const tgz = await makeTarball(root, { name, version, main: 'index.js', description })
  const body = publishBody(name, version, tgz)
  body.versions[version].description = description // the version document, as npm sends it
  const res = await fetch(`${node.url}/${repo}/${name}`, {
    method: 'PUT',
    headers: { ...auth(), 'content-type': 'application/json' },
    body: JSON.stringify(body)
  })
  if (res.status !== 201) throw new Error(`publish ${name}@${version} to ${repo}: ${res.status} ${await res.text()}`)
}

test.serial('npm: npm installs through a virtual of two local repositories; the first member wins a shared version', async t => {
  const npm = await npmClient(t, node) // its registry is /npm/: the virtual repository
  if (npm == null) return
  const root = await makeTempDir(t, 'akmesh-virtual-npm-')
  await publishTo('npm-team', 'team-only', '1.0.0', root)
  await publishTo('npm-shared', 'shared-only', '2.0.0', root)
  await publishTo('npm-team', 'both', '1.0.0', root, 'from team')
  await publishTo('npm-shared', 'both', '1.0.0', root, 'from shared')
  await publishTo('npm-shared', 'both', '1.1.0', root, 'shared newer')

  const doc = await (await get('npm/both')).json() as any
  t.deepEqual(Object.keys(doc.versions).sort(), ['1.0.0', '1.1.0'], 'versions of every member')
  t.is(doc.versions['1.0.0'].description, 'from team')
  t.regex(doc.versions['1.0.0'].dist.tarball, new RegExp(`^${node.url}/npm/both/-/both-1\\.0\\.0\\.tgz$`))
  t.is(doc['dist-tags'].latest, '1.0.0', 'the first member\'s latest tag')

  const project = await writeProject(t)
  const r = await npm.run(['install', 'team-only', 'shared-only', 'both@1.0.0'], { cwd: project })
  t.is(r.code, 0, r.stdout + r.stderr)
  const installed = await runNode(project, 'for (const p of ["team-only", "shared-only", "both"]) { const m = require(p + "/package.json"); console.log(p, m.version, m.description) }')
  t.is(installed.stdout.trim(), 'team-only 1.0.0 in npm-team\nshared-only 2.0.0 in npm-shared\nboth 1.0.0 from team')
})

test.serial('npm publish through the virtual repository lands in defaultLocal; without defaultLocal it is refused', async t => {
  const npm = await npmClient(t, node)
  if (npm == null) return
  const root = await makeTempDir(t, 'akmesh-virtual-pub-')
  const dir = await writePackage(root, { name: 'published-via-virtual', version: '3.0.0', source: 'module.exports = "v"\n' })
  const r = await npm.run(['publish'], { cwd: dir })
  t.is(r.code, 0, r.stdout + r.stderr)
  t.is((await get('npm-team/published-via-virtual')).status, 200)
  t.is((await get('npm-shared/published-via-virtual')).status, 404)

  const dir2 = await writePackage(root, { name: 'refused-via-virtual', version: '1.0.0', source: 'x\n' })
  const refused = await npm.run(['publish', '--registry', `${node.url}/npm-nodefault/`, `--//${node.url.replace(/^https?:\/\//, '')}/npm-nodefault/:_authToken=${node.adminToken}`], { cwd: dir2 })
  t.not(refused.code, 0)
  t.regex(refused.stdout + refused.stderr, /npm-nodefault is a virtual repository without defaultLocal/)
})

async function uploadTo (repo: string, dist: Dist, name: string, version: string): Promise<void> {
  const res = await upload(node, await uploadForm(dist, name, version), { path: `/${repo}/` })
  if (res.status !== 200) throw new Error(`upload ${dist.filename} to ${repo}: ${res.status} ${await res.text()}`)
}

test.serial('pypi: pip installs through a virtual of two local repositories; the first member wins a shared version', async t => {
  const python = await requireClient(t, 'python3')
  if (python == null) return
  await uploadTo('pypi-team', await makeWheel('team-proj', '1.0'), 'team-proj', '1.0')
  await uploadTo('pypi-shared', await makeWheel('shared-proj', '2.0'), 'shared-proj', '2.0')
  const teamBoth = await makeWheel('both-proj', '1.0', { metadata: coreMetadata('both-proj', '1.0').replace('a test package', 'from team') })
  const sharedBoth = await makeWheel('both-proj', '1.0', { metadata: coreMetadata('both-proj', '1.0').replace('a test package', 'from shared') })
  await uploadTo('pypi-team', teamBoth, 'both-proj', '1.0')
  await uploadTo('pypi-shared', sharedBoth, 'both-proj', '1.0')
  await uploadTo('pypi-shared', await makeWheel('both-proj', '1.1'), 'both-proj', '1.1')

  const page = await (await fetch(`${node.url}/pypi/simple/both-proj/`, { headers: { Accept: 'application/vnd.pypi.simple.v1+json' } })).json() as any
  t.deepEqual(page.versions, ['1.0', '1.1'])
  t.deepEqual(page.files.map((f: any) => f.hashes.sha256), [sha256(teamBoth.bytes), page.files[1].hashes.sha256])
  t.true(page.files.every((f: any) => f.url.startsWith(`${node.url}/pypi/packages/both-proj/`)))
  const list = await (await fetch(`${node.url}/pypi/simple/`, { headers: { Accept: 'application/vnd.pypi.simple.v1+json' } })).json() as any
  t.deepEqual(list.projects.map((p: any) => p.name), ['both-proj', 'shared-proj', 'team-proj'])

  const venv = await makeVenv(t, python, { withPip: false })
  const out = await run(await sharedPip(python), ['-m', 'pip', '--python', venv, 'install', '--no-cache-dir',
    '--index-url', `${node.url}/pypi/simple/`, 'team-proj', 'shared-proj', 'both-proj==1.0'], { env: pythonEnv() })
  t.is(out.code, 0, out.stdout + out.stderr)
  const summary = await mustRun(venv, ['-c', 'import importlib.metadata as m; print(m.version("team-proj"), m.version("shared-proj"), m.metadata("both-proj")["Summary"])'])
  t.is(summary.stdout.trim(), '1.0 2.0 from team')
})

test.serial('pypi: an upload through the virtual repository lands in defaultLocal (twine)', async t => {
  const wheel = await makeWheel('uploaded-via-virtual', '0.1')
  const twine = await requireClient(t, 'twine')
  if (twine == null) return
  const dir = await makeTempDir(t, 'akmesh-virtual-twine-')
  const file = join(dir, wheel.filename)
  await writeFile(file, wheel.bytes)
  const r = await run(twine, ['upload', '--non-interactive', '--disable-progress-bar', '--repository-url', `${node.url}/pypi/`,
    '-u', '__token__', '-p', node.adminToken, file], { env: pythonEnv() })
  t.is(r.code, 0, r.stdout + r.stderr)
  t.is((await get('pypi-team/simple/uploaded-via-virtual/')).status, 200)
  t.is((await get('pypi-shared/simple/uploaded-via-virtual/')).status, 404)
})

test('config: virtual members must exist, share the format, not be virtual; defaultLocal must be a local member', async t => {
  const bad = async (repos: string) => {
    const dir = await makeTempDir(t, 'akmesh-virtual-cfg-')
    const config = join(dir, 'config.yaml')
    await writeFile(config, `repositories:\n${repos}`)
    return await akmesh(['repo', 'list', '--config', config])
  }
  const cases: Array<[string, RegExp]> = [
    ['  - { name: v, format: npm, type: virtual, members: [nope] }\n', /no repository named "nope"/],
    ['  - { name: a, format: generic }\n  - { name: v, format: npm, type: virtual, members: [a] }\n', /"a" is a generic repository; a npm virtual repository takes npm members/],
    ['  - { name: a, format: npm }\n  - { name: v1, format: npm, type: virtual, members: [a, v2] }\n  - { name: v2, format: npm, type: virtual, members: [v1] }\n', /"v2" is a virtual repository; members are local or remote repositories/],
    ['  - { name: a, format: generic }\n  - { name: r, format: generic, type: remote, upstream: "http://127.0.0.1:1/" }\n  - { name: v, format: generic, type: virtual, members: [a, r], defaultLocal: r }\n', /"r" is a remote repository; publishes need a local member/],
    ['  - { name: v, format: npm, type: virtual }\n', /a virtual repository needs members/],
    ['  - { name: a, format: npm, members: [b] }\n', /only virtual repositories \(type: virtual\) have this key/]
  ]
  for (const [repos, message] of cases) {
    const r = await bad(repos)
    t.not(r.code, 0, repos)
    t.regex(r.stdout + r.stderr, message, repos)
  }
})
