// What happens to a package after its first publish, driven by the real npm CLI: dist-tags,
// login, immutability of versions, deprecation and unpublish.
import test, { type ExecutionContext } from 'ava'
import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { akmesh, makeTempDir, startTestNode, type TestNode } from './helpers/node.ts'
import { credentialKey, makeTarball, npmClient, publishBody, writePackage, type NpmClient } from './helpers/npm-client.ts'

const uniqueName = (prefix: string) => `${prefix}-${randomBytes(4).toString('hex')}`

async function publish (t: ExecutionContext, npm: NpmClient, name: string, version: string, args: string[] = []): Promise<void> {
  const root = await makeTempDir(t, 'akmesh-pkg-')
  const dir = await writePackage(root, { name, version, source: `module.exports = ${JSON.stringify(version)}\n` })
  const r = await npm.run(['publish', ...args], { cwd: dir })
  t.is(r.code, 0, `npm publish ${name}@${version} failed:\n${r.stderr}`)
}

async function packument (node: TestNode, name: string): Promise<{ status: number, doc: any }> {
  const res = await fetch(`${node.url}/npm/${name.replace('/', '%2f')}`)
  return { status: res.status, doc: await res.json() }
}

async function started (t: ExecutionContext): Promise<{ node: TestNode, npm: NpmClient } | undefined> {
  const node = await startTestNode(t)
  const npm = await npmClient(t, node)
  return npm == null ? undefined : { node, npm }
}

test('dist-tag add, ls and rm', async (t) => {
  const s = await started(t)
  if (s == null) return
  const name = uniqueName('@tags/lib')
  await publish(t, s.npm, name, '1.0.0')
  await publish(t, s.npm, name, '2.0.0-beta.1', ['--tag', 'next'])

  t.is((await s.npm.run(['dist-tag', 'add', `${name}@1.0.0`, 'stable'])).code, 0)
  const ls = await s.npm.run(['dist-tag', 'ls', name])
  t.is(ls.code, 0, ls.stderr)
  t.deepEqual(ls.stdout.trim().split('\n'), ['latest: 1.0.0', 'next: 2.0.0-beta.1', 'stable: 1.0.0'])

  const rm = await s.npm.run(['dist-tag', 'rm', name, 'next'])
  t.is(rm.code, 0, rm.stderr)
  t.deepEqual((await packument(s.node, name)).doc['dist-tags'], { latest: '1.0.0', stable: '1.0.0' })

  // Tags must name an existing version, and latest cannot be removed.
  const missing = await s.npm.run(['dist-tag', 'add', `${name}@9.9.9`, 'stable'])
  t.not(missing.code, 0)
  t.regex(missing.stderr, /404/)
  const res = await fetch(`${s.node.url}/npm/-/package/${name.replace('/', '%2f')}/dist-tags/latest`, {
    method: 'DELETE', headers: { authorization: `Bearer ${s.node.adminToken}` }
  })
  t.is(res.status, 400)
  t.regex((await res.json() as any).error, /latest/)
})

test('npm login exchanges a user password for a token; a wrong password is refused', async (t) => {
  const node = await startTestNode(t)
  const added = await akmesh(['user', 'add', 'carol', '--password', 'correct-horse', '--data', node.dataDir])
  t.is(added.code, 0, added.stderr)
  const npm = await npmClient(t, node, null)
  if (npm == null) return

  const bad = await npm.answer(['login'], [[/Username:/, 'carol'], [/Password:/, 'wrong-password']])
  t.not(bad.code, 0)
  t.regex(bad.stderr, /E401/)
  t.notRegex(await readFile(npm.userconfig, 'utf8'), /_authToken/)

  const good = await npm.answer(['login'], [[/Username:/, 'carol'], [/Password:/, 'correct-horse']])
  t.is(good.code, 0, good.stderr)
  t.regex(good.stdout, /Logged in/)
  t.true((await readFile(npm.userconfig, 'utf8')).includes(`${credentialKey(npm.registry)}:_authToken=akm_`))

  const whoami = await npm.run(['whoami'])
  t.is(whoami.stdout.trim(), 'carol', whoami.stderr)
  const name = uniqueName('by-carol')
  await publish(t, npm, name, '1.0.0')
  t.is((await packument(node, name)).doc.versions['1.0.0']._npmUser.name, 'carol')

  // `npm adduser` speaks the same CouchDB flow: for an existing user it is a login.
  const other = await npmClient(t, node, null)
  if (other == null) return
  const adduser = await other.answer(['adduser'], [[/Username:/, 'carol'], [/Password:/, 'correct-horse'], [/Email/, 'carol@example.com']])
  t.is(adduser.code, 0, adduser.stderr)
  t.is((await other.run(['whoami'])).stdout.trim(), 'carol')

  // npm logout revokes the token on the registry, not only in the local config.
  const token = /_authToken=(\S+)/.exec(await readFile(other.userconfig, 'utf8'))?.[1] as string
  t.is((await other.run(['logout'])).code, 0)
  const res = await fetch(`${node.url}/npm/-/whoami`, { headers: { authorization: `Bearer ${token}` } })
  t.is(res.status, 401)
})

test('a published version cannot be published again', async (t) => {
  const s = await started(t)
  if (s == null) return
  const name = uniqueName('immutable')
  await publish(t, s.npm, name, '1.0.0')

  const again = await s.npm.run(['publish'], { cwd: await writePackage(await makeTempDir(t), { name, version: '1.0.0', source: 'module.exports = "changed"\n' }) })
  t.not(again.code, 0)
  t.regex(again.stderr, /You cannot publish over the previously published versions: 1\.0\.0\./)

  // npm checks before sending; the registry enforces it for any client.
  const body = publishBody(name, '1.0.0', await makeTarball(await makeTempDir(t), { name, version: '1.0.0' }))
  const res = await fetch(`${s.node.url}/npm/${name}`, {
    method: 'PUT', body: JSON.stringify(body), headers: { authorization: `Bearer ${s.node.adminToken}`, 'content-type': 'application/json' }
  })
  t.is(res.status, 403)
  t.deepEqual(await res.json(), { error: 'You cannot publish over the previously published versions: 1.0.0.' })
  // Still the first tarball.
  const stored = (await packument(s.node, name)).doc.versions['1.0.0'].dist.shasum
  t.not(stored, body.versions['1.0.0'].dist.shasum)
  const tarball = await fetch(`${s.node.url}/npm/${name}/-/${name}-1.0.0.tgz`)
  t.is(tarball.status, 200)
  t.is(tarball.headers.get('x-checksum-sha1'), stored)
})

test('unpublish one version, then the whole package; versions are never reused', async (t) => {
  const s = await started(t)
  if (s == null) return
  const name = uniqueName('@gone/pkg')
  await publish(t, s.npm, name, '1.0.0')
  await publish(t, s.npm, name, '1.1.0')
  const before = await packument(s.node, name)
  const tarball11 = before.doc.versions['1.1.0'].dist.tarball

  const one = await s.npm.run(['unpublish', `${name}@1.1.0`])
  t.is(one.code, 0, one.stderr)
  const after = await packument(s.node, name)
  t.deepEqual(Object.keys(after.doc.versions), ['1.0.0'])
  t.deepEqual(after.doc['dist-tags'], { latest: '1.0.0' })
  t.is((await fetch(tarball11)).status, 404)

  const reuse = await s.npm.run(['publish'], { cwd: await writePackage(await makeTempDir(t), { name, version: '1.1.0', source: '' }) })
  t.not(reuse.code, 0)
  t.regex(reuse.stderr, /403/)

  const all = await s.npm.run(['unpublish', name, '--force'])
  t.is(all.code, 0, all.stderr)
  t.is((await packument(s.node, name)).status, 404)
  const view = await s.npm.run(['view', name])
  t.not(view.code, 0)
  t.regex(view.stderr, /E404/)
})

test('deprecate and undeprecate show in npm view and in install metadata', async (t) => {
  const s = await started(t)
  if (s == null) return
  const name = uniqueName('old-lib')
  await publish(t, s.npm, name, '1.0.0')
  await publish(t, s.npm, name, '2.0.0')

  const dep = await s.npm.run(['deprecate', `${name}@<2`, 'use 2.x, 1.x has a bug'])
  t.is(dep.code, 0, dep.stderr)
  const view = await s.npm.run(['view', `${name}@1.0.0`])
  t.regex(view.stdout, /DEPRECATED.*use 2\.x, 1\.x has a bug/)
  const view2 = await s.npm.run(['view', `${name}@2.0.0`])
  t.notRegex(view2.stdout, /DEPRECATED/)
  const abbreviated = await fetch(`${s.node.url}/npm/${name}`, { headers: { accept: 'application/vnd.npm.install-v1+json' } })
  const doc = await abbreviated.json() as any
  t.is(doc.versions['1.0.0'].deprecated, 'use 2.x, 1.x has a bug')
  t.is(doc.versions['2.0.0'].deprecated, undefined)

  const undep = await s.npm.run(['deprecate', `${name}@1.0.0`, ''])
  t.is(undep.code, 0, undep.stderr)
  t.notRegex((await s.npm.run(['view', `${name}@1.0.0`])).stdout, /DEPRECATED/)
  // A deprecation is a metadata change: both versions are still there.
  t.deepEqual(Object.keys((await packument(s.node, name)).doc.versions), ['1.0.0', '2.0.0'])
})
