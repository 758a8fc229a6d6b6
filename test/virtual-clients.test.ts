// npm, yarn 1 and pnpm install one project with 34 dependencies through an npm virtual repository
// (a local member holding the team's internal-lib, then a remote member over a real Verdaccio
// holding a tree of 33 packages, a scoped one among them), each client with its own empty cache
// so every byte comes from the node; the installed code runs and gives the tree's sum. Then
// Verdaccio is stopped and each client installs again from scratch: everything it needs is in the
// node's cache.
import test from 'ava'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { tgzBytes } from './helpers/archives.ts'
import { requireClient, run, type RunResult } from './helpers/clients.ts'
import { hookTeardowns } from './helpers/nginx.ts'
import { makeTempDir, startTestNode, type TestNode } from './helpers/node.ts'
import { clientEnv, npmClient, publishBody, runNode, writeProject } from './helpers/npm-client.ts'
import { packageTree, type TreePackage } from './helpers/npm-tree.ts'
import { startVerdaccio, verdaccioInstalled, VERDACCIO, type Verdaccio } from './helpers/verdaccio.ts'

let v: Verdaccio
let node: TestNode
let tree: TreePackage[]
const hook = hookTeardowns()
test.after.always(async () => { if (process.env.DUMP != null) console.log(node?.output().slice(-8000)); await hook.run() })

// internal-lib is the team's own package, published to the local member only; it depends on a
// package that comes from the upstream.
const INTERNAL = { name: 'internal-lib', version: '1.2.0', own: 7000, dep: 'vc-05' }

test.before(async () => {
  if (!verdaccioInstalled()) return
  v = await startVerdaccio(hook.t)
  tree = await packageTree('vc', 32)
  for (const p of tree) await v.publish(p.manifest, p.tgz, p.tag)
  node = await startTestNode(hook.t, {
    config: `
repositories:
  - { name: npm-local, format: npm }
  - { name: npm-up, format: npm, type: remote, upstream: "${v.url}/" }
  - { name: npm, format: npm, type: virtual, members: [npm-local, npm-up], defaultLocal: npm-local }
`
  })
  const manifest = { name: INTERNAL.name, version: INTERNAL.version, main: 'index.js', license: 'UNLICENSED', dependencies: { [INTERNAL.dep]: '^1.0.0' } }
  const tgz = await tgzBytes([
    { path: 'package/package.json', text: JSON.stringify(manifest) },
    { path: 'package/index.js', text: `module.exports = ${INTERNAL.own} + require(${JSON.stringify(INTERNAL.dep)})\n` }
  ])
  const body = publishBody(INTERNAL.name, INTERNAL.version, tgz)
  body.versions[INTERNAL.version] = { ...manifest, ...body.versions[INTERNAL.version] }
  const res = await fetch(`${node.url}/npm-local/${INTERNAL.name}`, {
    method: 'PUT', headers: { authorization: `Bearer ${node.adminToken}`, 'content-type': 'application/json' }, body: JSON.stringify(body)
  })
  if (res.status !== 201) throw new Error(`publish ${INTERNAL.name}: ${res.status} ${await res.text()}`)
})

/** Fails under CI (which must install Verdaccio), skips loudly elsewhere. */
function needsVerdaccio (t: { fail: (m: string) => void, pass: () => void }): boolean {
  if (verdaccioInstalled()) return true
  if (process.env.CI === 'true') t.fail(`Verdaccio is not installed at ${VERDACCIO}; .ci/run must install it`)
  else { console.warn(`\n!!! SKIPPING: Verdaccio is not installed (${VERDACCIO}); run .ci/run's install step. !!!\n`); t.pass() }
  return false
}

/** The project: every package of the tree (not the `next` prerelease) plus internal-lib, and the
 *  code that prints the sum of what they export. */
async function project (t: Parameters<typeof writeProject>[0]): Promise<{ dir: string, code: string, expected: number }> {
  const dir = await writeProject(t)
  const deps = tree.filter(p => p.tag == null)
  const value = (name: string) => (deps.find(p => p.manifest.name === name) as TreePackage).value
  await writeFile(join(dir, 'package.json'), JSON.stringify({
    name: 'consumer', version: '1.0.0', private: true,
    dependencies: { ...Object.fromEntries(deps.map(p => [p.manifest.name, `^${p.manifest.version}`])), [INTERNAL.name]: `^${INTERNAL.version}` }
  }))
  const names = [...deps.map(p => p.manifest.name), INTERNAL.name]
  const code = `console.log(${names.map(n => `require(${JSON.stringify(n)})`).join(' + ')})`
  const expected = deps.reduce((s, p) => s + p.value, 0) + INTERNAL.own + value(INTERNAL.dep)
  return { dir, code, expected }
}

type Client = 'npm' | 'yarn' | 'pnpm'

/** One install with `client` into a fresh project with a fresh cache; undefined if the client is
 *  missing (the test is then failed under CI, skipped elsewhere). */
async function install (t: Parameters<typeof writeProject>[0], client: Client): Promise<{ r: RunResult, dir: string, code: string, expected: number } | undefined> {
  const registry = `${node.url}/npm/`
  const p = await project(t)
  const cache = await makeTempDir(t, `akmesh-${client}-cache-`)
  let r: RunResult
  if (client === 'npm') {
    const npm = await npmClient(t, node, null)
    if (npm == null) return undefined
    r = await npm.run(['install'], { cwd: p.dir })
  } else if (client === 'yarn') {
    const yarn = await requireClient(t, 'yarn')
    if (yarn == null) return undefined
    r = await run(yarn, ['install', '--registry', registry, '--cache-folder', cache, '--non-interactive', '--no-lockfile', '--network-timeout', '60000'],
      { cwd: p.dir, env: { ...clientEnv(), YARN_IGNORE_PATH: '1' } })
  } else {
    const pnpm = await requireClient(t, 'pnpm')
    if (pnpm == null) return undefined
    r = await run(pnpm, ['install', '--registry', registry, '--store-dir', join(cache, 'store'), '--cache-dir', join(cache, 'cache'),
      '--config.update-notifier=false', '--config.prefer-offline=false'], { cwd: p.dir, env: clientEnv() })
  }
  return { r, ...p }
}

const CLIENTS: Client[] = ['npm', 'yarn', 'pnpm']

test.serial('npm, yarn and pnpm install a project with 34 dependencies through the virtual repository (local internal-lib + remote over Verdaccio)', async t => {
  if (!needsVerdaccio(t)) return
  t.true(tree.filter(p => p.tag == null).length + 1 >= 30)
  for (const client of CLIENTS) {
    const out = await install(t, client)
    if (out == null) continue
    t.is(out.r.code, 0, `${client}: ${out.r.stdout}\n${out.r.stderr}`)
    t.is((await runNode(out.dir, out.code)).stdout.trim(), String(out.expected), `${client}: the installed code gives the tree's sum`)
  }
  // internal-lib came from the local member: the upstream was never asked for it.
  t.is(v.requests().filter(r => r.includes(INTERNAL.name)).length, 0)
})

test.serial('the request forms yarn and pnpm use: weighted Accept for abbreviated documents, encoded scoped names, HEAD of a tarball', async t => {
  if (!needsVerdaccio(t)) return
  const accept = 'application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*'
  for (const path of ['@vc%2fscoped', '@vc%2Fscoped', '@vc/scoped', INTERNAL.name]) {
    const res = await fetch(`${node.url}/npm/${path}`, { headers: { accept } })
    t.is(res.status, 200, path)
    t.regex(res.headers.get('content-type') ?? '', /^application\/vnd\.npm\.install-v1\+json/, path)
    const doc = await res.json() as { versions: Record<string, { dist: { tarball: string } }> }
    for (const v of Object.values(doc.versions)) t.true(v.dist.tarball.startsWith(`${node.url}/npm/`), v.dist.tarball)
  }
  const full = await fetch(`${node.url}/npm/vc-01`, { headers: { accept: 'application/json' } })
  t.regex(full.headers.get('content-type') ?? '', /^application\/json/)
  t.is((await fetch(`${node.url}/npm/vc-02`, { method: 'HEAD', headers: { accept } })).status, 200, 'HEAD of a packument')
  for (const path of ['@vc/scoped/-/scoped-1.0.0.tgz', `${INTERNAL.name}/-/${INTERNAL.name}-${INTERNAL.version}.tgz`]) {
    const head = await fetch(`${node.url}/npm/${path}`, { method: 'HEAD' })
    t.is(head.status, 200, path)
    t.true(Number(head.headers.get('content-length')) > 0, path)
  }
})

test.serial('the same installs work with Verdaccio stopped: clean caches and node_modules, everything from the node', async t => {
  if (!needsVerdaccio(t)) return
  await v.stop()
  try {
    t.is(await fetch(`${v.url}/-/ping`).catch(() => undefined), undefined, 'Verdaccio is really down')
    for (const client of CLIENTS) {
      const out = await install(t, client)
      if (out == null) continue
      t.is(out.r.code, 0, `${client}: ${out.r.stdout}\n${out.r.stderr}`)
      t.is((await runNode(out.dir, out.code)).stdout.trim(), String(out.expected), `${client}: the installed code gives the tree's sum`)
    }
  } finally { await v.start() }
})
