// The npm protocol end to end: the real npm CLI publishes to a node running as its own process,
// and npm, yarn 1 and pnpm install from it into fresh projects whose code then runs.
import test, { type ExecutionContext } from 'ava'
import { randomBytes } from 'node:crypto'
import { requireClient, run } from './helpers/clients.ts'
import { rawPublish } from './helpers/mesh.ts'
import { makeTempDir, startTestNode, waitFor, type TestNode } from './helpers/node.ts'
import { clientEnv, npmClient, runNode, writePackage, writeProject, type NpmClient } from './helpers/npm-client.ts'

interface Published {
  unscoped: string
  scoped: string
  nonce: string
  /** node -e code using both packages, and what it must print. */
  code: string
  expected: string
}

/** Publishes an unscoped and a scoped package whose code computes something with a nonce, so
 *  only the code that went through the registry can print the expected line. */
async function publishPair (t: ExecutionContext, npm: NpmClient): Promise<Published> {
  const nonce = randomBytes(4).toString('hex')
  const unscoped = `calc-${nonce}`
  const scoped = `@team/greet-${nonce}`
  const root = await makeTempDir(t, 'akmesh-pkgs-')
  for (const spec of [
    { name: unscoped, version: '1.0.0', source: `exports.square = (x) => x * x\nexports.tag = ${JSON.stringify(nonce)}\n` },
    { name: scoped, version: '2.1.0', source: 'module.exports = (who) => `hello ${who}`\n' }
  ]) {
    const r = await npm.run(['publish'], { cwd: await writePackage(root, spec) })
    t.is(r.code, 0, `npm publish ${spec.name} failed:\n${r.stderr}`)
  }
  const code = `const c = require(${JSON.stringify(unscoped)}); const g = require(${JSON.stringify(scoped)}); console.log(g(c.tag + ':' + c.square(12)))`
  return { unscoped, scoped, nonce, code, expected: `hello ${nonce}:144` }
}

async function setup (t: ExecutionContext): Promise<{ node: TestNode, npm: NpmClient, pub: Published } | undefined> {
  const node = await startTestNode(t)
  const npm = await npmClient(t, node)
  if (npm == null) return undefined
  const pub = await publishPair(t, npm)
  return { node, npm, pub }
}

test('npm publishes an unscoped and a scoped package and npm installs them into a fresh project', async (t) => {
  const s = await setup(t)
  if (s == null) return
  const project = await writeProject(t)
  const r = await s.npm.run(['install', `${s.pub.unscoped}@1.0.0`, s.pub.scoped], { cwd: project })
  t.is(r.code, 0, r.stderr)
  const out = await runNode(project, s.pub.code)
  t.is(out.stdout.trim(), s.pub.expected, out.stderr)
})

test('yarn 1 installs the same packages', async (t) => {
  const s = await setup(t)
  if (s == null) return
  const yarn = await requireClient(t, 'yarn')
  if (yarn == null) return
  const project = await writeProject(t)
  const cache = await makeTempDir(t, 'akmesh-yarn-cache-')
  const r = await run(yarn, ['add', s.pub.unscoped, s.pub.scoped, '--registry', s.npm.registry, '--cache-folder', cache, '--non-interactive', '--no-lockfile'], {
    cwd: project, env: { ...clientEnv(), YARN_IGNORE_PATH: '1' }
  })
  t.is(r.code, 0, `${r.stdout}\n${r.stderr}`)
  const out = await runNode(project, s.pub.code)
  t.is(out.stdout.trim(), s.pub.expected, out.stderr)
})

test('pnpm installs the same packages', async (t) => {
  const s = await setup(t)
  if (s == null) return
  const pnpm = await requireClient(t, 'pnpm')
  if (pnpm == null) return
  const project = await writeProject(t)
  const store = await makeTempDir(t, 'akmesh-pnpm-')
  const r = await run(pnpm, ['add', s.pub.unscoped, s.pub.scoped, '--registry', s.npm.registry, '--store-dir', `${store}/store`, '--cache-dir', `${store}/cache`, '--config.update-notifier=false'], {
    cwd: project, env: clientEnv()
  })
  t.is(r.code, 0, `${r.stdout}\n${r.stderr}`)
  const out = await runNode(project, s.pub.code)
  t.is(out.stdout.trim(), s.pub.expected, out.stderr)
})

test('npm view, search, whoami and ping', async (t) => {
  const s = await setup(t)
  if (s == null) return
  const view = await s.npm.run(['view', s.pub.scoped, '--json'])
  t.is(view.code, 0, view.stderr)
  const doc = JSON.parse(view.stdout)
  t.is(doc.name, s.pub.scoped)
  t.is(doc.version, '2.1.0')
  t.is(doc.dist.tarball, `${s.node.url}/npm/${s.pub.scoped}/-/greet-${s.pub.nonce}-2.1.0.tgz`)
  t.regex(doc.dist.integrity, /^sha512-/)
  t.is(doc._npmUser.name, 'admin')

  const search = await s.npm.run(['search', `greet-${s.pub.nonce}`, '--json'])
  t.is(search.code, 0, search.stderr)
  const found = JSON.parse(search.stdout)
  t.deepEqual(found.map((p: any) => p.name), [s.pub.scoped])
  t.is(found[0].version, '2.1.0')
  const none = await s.npm.run(['search', `no-such-${s.pub.nonce}`, '--json'])
  t.deepEqual(JSON.parse(none.stdout), [])

  const whoami = await s.npm.run(['whoami'])
  t.is(whoami.code, 0, whoami.stderr)
  t.is(whoami.stdout.trim(), 'admin')

  const ping = await s.npm.run(['ping'])
  t.is(ping.code, 0, ping.stderr)
  t.regex(ping.stderr, /PONG/)
})

test('packuments: abbreviated on request, full otherwise, with ETag revalidation', async (t) => {
  const s = await setup(t)
  if (s == null) return
  const url = `${s.node.url}/npm/${s.pub.scoped.replace('/', '%2f')}`
  const abbreviated = await fetch(url, { headers: { accept: 'application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*' } })
  t.is(abbreviated.status, 200)
  t.regex(abbreviated.headers.get('content-type') ?? '', /^application\/vnd\.npm\.install-v1\+json/)
  t.regex(abbreviated.headers.get('vary') ?? '', /Accept/i)
  const short = await abbreviated.json() as any
  t.deepEqual(Object.keys(short).sort(), ['dist-tags', 'modified', 'name', 'versions'])
  t.is(short.versions['2.1.0'].readme, undefined)
  t.is(short.versions['2.1.0'].main, undefined) // not an install field

  const full = await fetch(url)
  t.regex(full.headers.get('content-type') ?? '', /^application\/json/)
  const doc = await full.json() as any
  t.is(doc.versions['2.1.0'].main, 'index.js')
  t.is(doc.readme, `# ${s.pub.scoped}\n`)
  t.truthy(doc.time['2.1.0'])
  t.regex(doc._rev, /^1-/)

  const etag = full.headers.get('etag')
  t.truthy(etag)
  // An explicit Cache-Control, or fetch adds `no-cache` to conditional requests (Fetch spec,
  // HTTP-network-or-cache fetch) and the server rightly answers in full.
  const again = await fetch(url, { headers: { 'if-none-match': etag as string, 'cache-control': 'max-age=0' } })
  t.is(again.status, 304)


  // The plain `@scope/name` form and a single version by tag resolve too.
  const byTag = await fetch(`${s.node.url}/npm/${s.pub.scoped}/latest`)
  t.is(byTag.status, 200)
  t.is((await byTag.json() as any).version, '2.1.0')
  const tarball = await fetch(doc.versions['2.1.0'].dist.tarball)
  t.is(tarball.status, 200)
  t.is(tarball.headers.get('x-checksum-sha1'), doc.versions['2.1.0'].dist.shasum)
})

test('an unchanged packument is gzipped once and the bytes kept; a new version replaces them', async (t) => {
  const s = await setup(t)
  if (s == null) return
  const name = `gz-kept-${s.pub.nonce}`
  const root = await makeTempDir(t, 'akmesh-gz-')
  // Enough versions for a document over the compression threshold (1 KiB).
  for (let i = 0; i <= 8; i++) await rawPublish(s.node, root, name, `1.0.${i}`)
  const url = `${s.node.url}/npm/${name}`
  // Kept bytes are a buffer, sent with a Content-Length; a response compressed on the fly is
  // streamed (chunked, no length). They are made in the background after the first GET.
  const kept = async (version: string) => await waitFor(async () => {
    const res = await fetch(url, { headers: { 'accept-encoding': 'gzip' } })
    const doc = await res.json() as any
    const ok = res.headers.get('content-encoding') === 'gzip' && res.headers.get('content-length') != null && doc['dist-tags'].latest === version
    return ok ? { res, doc } : undefined
  }, `the kept gzip bytes of ${name}@${version}`) as { res: Response, doc: any }
  const first = await kept('1.0.8')
  t.regex(first.res.headers.get('vary') ?? '', /Accept-Encoding/i)
  const plain = await fetch(url, { headers: { 'accept-encoding': 'identity' } })
  t.is(plain.headers.get('content-encoding'), null)
  t.deepEqual(await plain.json(), first.doc)
  t.is(plain.headers.get('etag'), first.res.headers.get('etag'))

  await rawPublish(s.node, root, name, '1.1.0')
  const second = await kept('1.1.0')
  t.is(Object.keys(second.doc.versions).length, 10)
  t.not(second.res.headers.get('etag'), first.res.headers.get('etag'))
})
