// What a node refuses from the mesh, and how it tells: changes naming what their format forbids
// (each format's own rules), equivocating origins (two envelopes for one seq), rejections logged
// once per (origin, reason) per hour and listed in /-/mesh/status, refused non-member peers.
// Three node processes shared by the file:
//   X allows the test signer K and Q;  Q allows X only (so K's manifests, forwarded by X, are
//   refused there as not-allowed);  Y allows K and X, and dials X, which does not allow Y.
import test, { type ExecutionContext } from 'ava'
import { adminGet, connectedTo, identity, queryIndex } from './helpers/mesh.ts'
import { akmesh, startTestNode, waitFor, type TestNode } from './helpers/node.ts'
import { fileOf, importEnvelopes, signAll, testSigner, type Draft, type Signer } from './helpers/signed-manifests.ts'

const MESH = 'default'
const cleanups: Array<() => Promise<void> | void> = []
const shared = { teardown: (f: () => Promise<void> | void) => { cleanups.push(f) } } as unknown as ExecutionContext
test.after.always(async () => { for (const f of cleanups.reverse()) await f() })

interface Nodes { x: TestNode, y: TestNode, q: TestNode, k: Signer }
let nodes: Promise<Nodes> | undefined
async function start (): Promise<Nodes> {
  const k = await testSigner()
  const [ix, iy, iq] = await Promise.all([identity(shared), identity(shared), identity(shared)])
  const x = await startTestNode(shared, { dataDir: ix.dataDir, peering: { allow: [k.peerId, iq.peerId] } })
  const [y, q] = await Promise.all([
    startTestNode(shared, { dataDir: iy.dataDir, peering: { allow: [k.peerId, ix.peerId], bootstrap: [x.meshAddr] } }),
    startTestNode(shared, { dataDir: iq.dataDir, peering: { allow: [ix.peerId], bootstrap: [x.meshAddr] } })
  ])
  await waitFor(async () => await connectedTo(x, q.peerId), 'Q connected to X')
  return { x, y, q, k }
}
const setup = async (): Promise<Nodes> => await (nodes ??= start())

const rows = async (node: TestNode): Promise<string[]> =>
  (await queryIndex(node.dataDir, "SELECT repo || ' ' || name || '@' || version AS v FROM artifacts ORDER BY v") as Array<{ v: string }>).map(r => r.v)

const logLines = (node: TestNode, msg: string): any[] =>
  node.output().split('\n').filter(l => l.startsWith('{')).map(l => JSON.parse(l)).filter(l => typeof l.msg === 'string' && l.msg.startsWith(msg))

const DIGEST = `sha256:${'a'.repeat(64)}`

test.serial('a member’s changes that break their format’s rules are refused with the reason, not listed; valid ones apply', async t => {
  const { x, k } = await setup()
  const bad: Draft[] = [
    { repo: 'files', format: 'generic', name: '../../a\u0000b', version: '', files: [await fileOf('a\u0000b', 'g')] },
    { repo: 'files', format: 'generic', name: 'dir/x.txt', version: '1', files: [await fileOf('x.txt', 'g2')] },
    { repo: 'npm', format: 'npm', name: '../evil', version: '1.0.0', files: [await fileOf('evil-1.0.0.tgz', 'n')] },
    { repo: 'npm', format: 'npm', name: 'evil', version: 'not-semver', files: [await fileOf('evil-not-semver.tgz', 'n2')] },
    { repo: 'npm', format: 'npm', name: 'evil', version: '1.0.0', files: [await fileOf('../../etc/passwd', 'n3')] },
    { repo: 'pypi', format: 'pypi', name: 'Bad Name!', version: '1.0', files: [await fileOf('bad-1.0.tar.gz', 'p')] },
    { repo: 'pypi', format: 'pypi', name: 'demo', version: 'one', files: [await fileOf('demo-one.tar.gz', 'p2')] },
    { repo: 'pypi', format: 'pypi', name: 'demo', version: '2.0', files: [await fileOf('../demo-2.0.tar.gz', 'p3')] },
    { repo: 'docker', format: 'oci', name: 'UPPER/../x', version: DIGEST, files: [await fileOf('manifest.json', 'o')] },
    { repo: 'docker', format: 'oci', name: 'library/app', version: 'latest', files: [await fileOf('manifest.json', 'o2')] },
    { repo: 'docker', format: 'oci', name: 'library/app', version: DIGEST, kind: 'tag', tag: '-bad tag-' }
  ]
  const good: Draft[] = [
    { repo: 'files', format: 'generic', name: 'dir/ok.txt', version: '', files: [await fileOf('ok.txt', 'fine')] },
    { repo: 'npm', format: 'npm', name: 'fine', version: '1.0.0', files: [await fileOf('fine-1.0.0.tgz', 'tgz')] },
    { repo: 'pypi', format: 'pypi', name: 'demo', version: '1.0', files: [await fileOf('demo-1.0-py3-none-any.whl', 'whl'), await fileOf('demo-1.0-py3-none-any.whl.metadata', 'meta')] },
    { repo: 'docker', format: 'oci', name: 'library/app', version: DIGEST, files: [await fileOf('manifest.json', '{}')] },
    // Tag moves as the formats log them (an untag names no version).
    { repo: 'npm', format: 'npm', name: 'fine', version: '1.0.0', kind: 'tag', tag: 'latest' },
    { repo: 'npm', format: 'npm', name: 'fine', version: '', kind: 'untag', tag: 'latest' },
    { repo: 'docker', format: 'oci', name: 'library/app', version: DIGEST, kind: 'tag', tag: 'v1' },
    { repo: 'docker', format: 'oci', name: 'library/app', version: '', kind: 'untag', tag: 'v1' },
    { repo: 'pypi', format: 'pypi', name: 'demo', version: '3.0', kind: 'delete' },
    { repo: 'files', format: 'generic', name: 'dir/gone.txt', version: '', kind: 'delete' }
  ]
  const outcomes = await importEnvelopes(x, await signAll(k, MESH, [...bad, ...good]))
  t.deepEqual(outcomes, [...bad.map(() => 'rejected'), ...good.map(() => 'new')])

  t.deepEqual(await rows(x), ['docker library/app@' + DIGEST, 'files dir/ok.txt@', 'npm fine@1.0.0', 'pypi demo@1.0'])
  const listing = await (await fetch(`${x.url}/files/dir/`)).json() as { files: unknown }
  t.false(JSON.stringify(listing).includes('x.txt'))
  t.true(JSON.stringify(listing).includes('ok.txt'))
  const root = await (await fetch(`${x.url}/files/`)).text()
  t.false(root.includes('a\\u0000b'), root)

  const status = await adminGet(x, '/-/mesh/status')
  const invalid = status.rejections.find((r: any) => r.origin === k.peerId && r.reason === 'invalid')
  t.like(invalid, { count: bad.length, via: 'bundle' })
  t.true(invalid.firstSeen <= invalid.lastSeen)
  // The reason names the rule that refused the change (the latest one: an OCI tag).
  t.regex(invalid.message, /invalid tag "-bad tag-"/)
  // Each refusal is logged with its reason once: the first of the batch.
  const logged = logLines(x, 'manifest rejected').filter(l => l.origin === k.peerId && l.reason === 'invalid')
  t.is(logged.length, 1, JSON.stringify(logged))
  t.regex(logged[0].error, /path traversal|control characters/)
})

test.serial('an origin that signs two manifests for one seq: nodes receiving them in opposite orders agree, and both report it', async t => {
  const { x, y, k } = await setup()
  const first = 100 // above what the first test signed
  const [a] = await signAll(k, MESH, [{ repo: 'npm', format: 'npm', name: 'twice', version: '1.0.0', files: [await fileOf('twice-1.0.0.tgz', 'A')] }], first)
  const [b] = await signAll(k, MESH, [{ repo: 'npm', format: 'npm', name: 'twice', version: '1.0.0', files: [await fileOf('twice-1.0.0.tgz', 'B')] }], first)
  t.deepEqual(await importEnvelopes(x, [a]), ['new'])
  t.deepEqual(await importEnvelopes(y, [b]), ['new'])
  await importEnvelopes(x, [b])
  await importEnvelopes(y, [a])

  const files = async (node: TestNode) => await queryIndex(node.dataDir,
    "SELECT f.cid FROM artifacts a JOIN files f ON f.artifact_id = a.id WHERE a.repo = 'npm' AND a.name = 'twice'")
  t.deepEqual(await files(x), await files(y))
  t.is((await files(x)).length, 1)
  const held = async (node: TestNode) => await queryIndex(node.dataDir, `SELECT hex(envelope) AS e FROM manifests WHERE seq = ${first}`)
  t.deepEqual(await held(x), await held(y))
  for (const node of [x, y]) {
    const status = await adminGet(node, '/-/mesh/status')
    t.like(status.equivocating.find((e: any) => e.origin === k.peerId), { seqs: 1, envelopes: 2 })
    t.is((await queryIndex(node.dataDir, 'SELECT COUNT(*) AS n FROM equivocations'))[0].n, 2)
    t.is(logLines(node, 'manifest equivocation').length, 1)
  }
})

test.serial('a node refusing a member’s manifests (origin not allowed) logs it once and counts each in /-/mesh/status', async t => {
  const { x, q, k } = await setup()
  // X holds K's manifests of the tests above and forwards them (gossip, catch-up): Q refuses them.
  const more = await signAll(k, MESH, [1, 2, 3].map(i => ({ repo: 'files', format: 'generic', name: `more/${i}.txt`, version: '', files: [] })), 200)
  await importEnvelopes(x, more)
  const rejection = await waitFor(async () => {
    const r = (await adminGet(q, '/-/mesh/status')).rejections.find((e: any) => e.origin === k.peerId && e.reason === 'not-allowed')
    return r?.count >= 5 ? r : undefined
  }, 'Q to refuse K’s manifests')
  t.like(rejection, { peer: x.peerId })
  t.true(rejection.lastSeen >= rejection.firstSeen)
  t.is(logLines(q, 'manifest rejected').filter(l => l.origin === k.peerId).length, 1)
})

test.serial('a non-member peer’s connection is refused and logged once with its ID and address; the refused side says why', async t => {
  const { x, y } = await setup()
  const refused = await waitFor(() => logLines(x, 'refused a connection').find(l => l.peer === y.peerId), 'X to log refusing Y')
  t.regex(refused.addr, /^\/ip4\/127\.0\.0\.1\/tcp\/\d+/)
  // Y keeps re-dialing with backoff; X logs the refusal once an hour, not each time.
  await waitFor(() => logLines(y, 'bootstrap dial failed').length > 0, 'Y to report the failed dial')
  t.is(logLines(x, 'refused a connection').filter(l => l.peer === y.peerId).length, 1)
  for (const l of logLines(y, 'bootstrap dial failed')) t.notRegex(l.error, /undefined$/, l.error)
  t.false(await connectedTo(y, x.peerId))
})

test.serial('akmesh peers list says which peers are connected now', async t => {
  const { x, q, y } = await setup()
  const r = await akmesh(['peers', 'list', '--data', x.dataDir, '--json'])
  t.is(r.code, 0, r.stderr)
  const listed = JSON.parse(r.stdout)
  t.true(listed.connected.some((p: any) => p.peerId === q.peerId), r.stdout)
  t.false(listed.connected.some((p: any) => p.peerId === y.peerId))
  const text = await akmesh(['peers', 'list', '--data', x.dataDir])
  t.regex(text.stdout, new RegExp(`connected ${q.peerId}`))
})
