// Compressed-input bombs through the real upload paths of a running node: npm publish (the JSON
// PUT with a base64 tarball) and PyPI uploads (twine's multipart form) of tarballs, wheels and
// sdists that unpack too large, too many or too well. Each gets a 413 naming the limit; the node
// answers the next request and a regular package still publishes.
import test, { type ExecutionContext } from 'ava'
import { startTestNode, type TestNode } from './helpers/node.ts'
import { lieAboutSize, manyFiles, npmTgz, tgzBytes, zipBytes, type TarEntry } from './helpers/archives.ts'
import { publishBody } from './helpers/npm-client.ts'
import { coreMetadata, upload, uploadForm, type Dist } from './helpers/pypi-dists.ts'

const MiB = 1024 * 1024
const CONFIG = `
limits:
  archive:
    entries: 500
    entryBytes: 32MB
    ratio: 100
`

const cleanups: Array<() => unknown> = []
const fileScope = { teardown: (fn: () => unknown) => { cleanups.push(fn) } } as unknown as ExecutionContext
let shared: Promise<TestNode> | undefined
const sharedNode = async () => await (shared ??= startTestNode(fileScope, { config: CONFIG }))
test.after.always(async () => { for (const fn of cleanups.reverse()) await fn() })

const publish = async (node: TestNode, name: string, tgz: Buffer) =>
  await fetch(`${node.url}/npm/${name}`, {
    method: 'PUT',
    body: JSON.stringify(publishBody(name, '1.0.0', tgz)),
    headers: { authorization: `Bearer ${node.adminToken}`, 'content-type': 'application/json' }
  })

async function assertAlive (t: ExecutionContext, node: TestNode): Promise<void> {
  t.is((await fetch(`${node.url}/healthz`)).status, 200)
}

test('npm publish: gzip bombs, a high ratio and too many entries get 413 naming the limit', async t => {
  const node = await sharedNode()
  const cases: Array<[string, TarEntry[], RegExp]> = [
    ['one entry unpacking past entryBytes', [{ path: 'package/bomb.bin', size: 40 * MiB }], /tarball entry "package\/bomb\.bin" unpacks to 41943040 bytes, over the limit of 33554432 bytes per entry \(limits\.archive\.entryBytes\)/],
    ['a high compression ratio', [{ path: 'package/zeros.bin', size: 24 * MiB }], /tarball exceeds the limit of 100:1 on the compression ratio \(limits\.archive\.ratio\)/],
    ['too many entries', manyFiles('package/lib', 600), /tarball exceeds the limit of 500 entries \(limits\.archive\.entries\)/]
  ]
  for (const [what, extra, message] of cases) {
    const name = `bomb-${what.replace(/\W+/g, '-')}`
    const r = await publish(node, name, await npmTgz(name, '1.0.0', extra))
    t.is(r.status, 413, what)
    t.regex((await r.json() as { error: string }).error, message, what)
    await assertAlive(t, node)
    t.is((await fetch(`${node.url}/npm/${name}`)).status, 404, `${what}: nothing published`)
  }
  const ok = await publish(node, 'regular-pkg', await npmTgz('regular-pkg', '1.0.0', [{ path: 'package/index.js', text: 'module.exports = 1\n' }]))
  t.true(ok.ok, `${ok.status} ${await ok.text()}`)
  const doc = await (await fetch(`${node.url}/npm/regular-pkg`)).json() as any
  t.like(doc.versions['1.0.0'].dist, { fileCount: 2 })
})

const WHEEL_DIST_INFO = 'bomb_wheel-1.0.dist-info'
async function wheel (files: Record<string, string | Buffer | number>, patch?: (zip: Buffer) => Buffer): Promise<Dist> {
  const metadata = coreMetadata('bomb-wheel', '1.0')
  let bytes = await zipBytes({ 'bomb_wheel/__init__.py': '', [`${WHEEL_DIST_INFO}/WHEEL`]: 'Wheel-Version: 1.0\n', [`${WHEEL_DIST_INFO}/METADATA`]: metadata, ...files })
  if (patch != null) bytes = patch(bytes)
  return { filename: 'bomb_wheel-1.0-py3-none-any.whl', bytes, metadata }
}
async function sdist (extra: TarEntry[]): Promise<Dist> {
  const metadata = coreMetadata('bomb-sdist', '1.0')
  const bytes = await tgzBytes([{ path: 'bomb_sdist-1.0/PKG-INFO', text: metadata }, ...extra])
  return { filename: 'bomb_sdist-1.0.tar.gz', bytes, metadata }
}

test('PyPI uploads: zip bombs, a zip lying about its sizes, sdist gzip bombs and too many entries get 413 naming the limit', async t => {
  const node = await sharedNode()
  const cases: Array<[string, () => Promise<Dist>, string, RegExp]> = [
    ['a wheel entry that inflates hugely', async () => await wheel({ 'bomb_wheel/data.bin': 40 * MiB }), 'bomb-wheel',
      /wheel bomb_wheel-1\.0-py3-none-any\.whl entry "bomb_wheel\/data\.bin" (exceeds the limit of 100:1 on the compression ratio \(limits\.archive\.ratio\)|unpacks to 41943040 bytes, over the limit of 33554432 bytes per entry \(limits\.archive\.entryBytes\))/],
    ['a wheel whose METADATA lies about its size', async () => await wheel({ [`${WHEEL_DIST_INFO}/METADATA`]: coreMetadata('bomb-wheel', '1.0') + ' '.repeat(8 * MiB) }, z => lieAboutSize(z, `${WHEEL_DIST_INFO}/METADATA`, 200)), 'bomb-wheel',
      /entry "bomb_wheel-1\.0\.dist-info\/METADATA" unpacks to more than the 200 bytes its header declares/],
    ['a wheel with too many entries', async () => await wheel(Object.fromEntries(Array.from({ length: 600 }, (_, i) => [`bomb_wheel/m${i}.py`, '']))), 'bomb-wheel',
      /exceeds the limit of 500 entries \(limits\.archive\.entries\)/],
    ['an sdist gzip bomb', async () => await sdist([{ path: 'bomb_sdist-1.0/bomb.bin', size: 40 * MiB }]), 'bomb-sdist',
      /sdist bomb_sdist-1\.0\.tar\.gz entry "bomb_sdist-1\.0\/bomb\.bin" unpacks to 41943040 bytes, over the limit of 33554432 bytes per entry \(limits\.archive\.entryBytes\)/],
    ['an sdist with a high ratio', async () => await sdist([{ path: 'bomb_sdist-1.0/zeros.bin', size: 24 * MiB }]), 'bomb-sdist',
      /sdist bomb_sdist-1\.0\.tar\.gz exceeds the limit of 100:1 on the compression ratio/],
    ['an sdist with too many entries', async () => await sdist(manyFiles('bomb_sdist-1.0/src', 600)), 'bomb-sdist',
      /exceeds the limit of 500 entries \(limits\.archive\.entries\)/]
  ]
  for (const [what, make, project, message] of cases) {
    const r = await upload(node, await uploadForm(await make(), project, '1.0'))
    t.is(r.status, 413, what)
    t.regex(r.statusText, message, `${what}: the reason phrase twine shows`)
    t.regex(await r.text(), message, what)
    await assertAlive(t, node)
    t.is((await fetch(`${node.url}/pypi/simple/${project}/`)).status, 404, `${what}: nothing published`)
  }
  const ok = await upload(node, await uploadForm(await wheel({}), 'bomb-wheel', '1.0'))
  t.is(ok.status, 200, await ok.text())
  const okSdist = await upload(node, await uploadForm(await sdist([{ path: 'bomb_sdist-1.0/src/mod.py', text: 'X = 1\n' }]), 'bomb-sdist', '1.0'))
  t.is(okSdist.status, 200, await okSdist.text())
})
