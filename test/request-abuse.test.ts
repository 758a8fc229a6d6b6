// Broken uploads over raw sockets against every other upload endpoint (npm PUT, generic PUT, OCI
// POST ?digest=, PATCH and the closing PUT): bodies shorter than their Content-Length, longer
// than it, complete HTTP bodies with truncated content, clients that vanish mid-body. After each
// the node process is alive and answers the next request correctly.
import test, { type ExecutionContext } from 'ava'
import { makeTempDir, startTestNode, type TestNode } from './helpers/node.ts'
import { makeTarball, publishBody } from './helpers/npm-client.ts'
import { digestOf, oci } from './helpers/oci-http.ts'
import { assertServing, sendBroken, waitForRequestLog, type BrokenRequest } from './helpers/raw-http.ts'
import { deterministicBytes } from './helpers/streams.ts'

const cleanups: Array<() => unknown> = []
const fileScope = { teardown: (fn: () => unknown) => { cleanups.push(fn) } } as unknown as ExecutionContext
let shared: Promise<TestNode> | undefined
const sharedNode = async () => await (shared ??= startTestNode(fileScope))
test.after.always(async () => { for (const fn of cleanups.reverse()) await fn() })

type Abuse = Pick<BrokenRequest, 'ending' | 'declared'> & { what: string, cut: number }

/** Every way of breaking a body of `size` bytes. */
const abuses = (size: number): Abuse[] => [
  { what: 'half of it, then the client half-closes', ending: 'lie', cut: size >> 1, declared: size },
  { what: 'half of it, then the client resets', ending: 'disconnect', cut: size >> 1, declared: size },
  { what: 'all of it, then the client resets before the end it declared', ending: 'disconnect', cut: size, declared: size + 1 },
  { what: 'more than its Content-Length', ending: 'lie', cut: size, declared: size >> 1 },
  { what: 'a complete chunked body with half of the content', ending: 'chunked', cut: size >> 1 }
]

let probes = 0
async function abuse (t: ExecutionContext, node: TestNode, method: string, path: string, body: Buffer, headers: Record<string, string>, opts: { fresh?: () => Promise<string>, truncatedContentIsValid?: boolean } = {}): Promise<void> {
  for (const a of abuses(body.length)) {
    const id = `abuse-${++probes}`
    const target = opts.fresh == null ? path : await opts.fresh()
    const reply = await sendBroken(node, { method, path: target, headers, body: body.subarray(0, a.cut), ending: a.ending, declared: a.declared }, id)
    await waitForRequestLog(node, id)
    await assertServing(node)
    if (a.ending === 'chunked' && opts.truncatedContentIsValid !== true) t.true(reply.status != null && reply.status >= 400 && reply.status < 500, `${method} ${path}, ${a.what}: ${reply.status}`)
    // Otherwise the client hung up before any answer or read one (the extra bytes of a body longer
    // than declared are a second, malformed request): what counts is that the node still serves.
  }
}

test('npm PUT', async t => {
  const node = await sharedNode()
  const tgz = await makeTarball(await makeTempDir(t), { name: 'abused', version: '1.0.0' })
  const body = Buffer.from(JSON.stringify(publishBody('abused', '1.0.0', tgz)))
  const headers = { Authorization: `Bearer ${node.adminToken}`, 'Content-Type': 'application/json' }
  await abuse(t, node, 'PUT', '/npm/abused', body, headers)
  t.is((await fetch(`${node.url}/npm/abused`)).status, 404, 'no broken publish is visible')
  const ok = await fetch(`${node.url}/npm/abused`, { method: 'PUT', headers, body })
  t.is(ok.status, 201, await ok.text())
  t.is((await fetch(`${node.url}/npm/abused`)).status, 200)
})

test('generic PUT', async t => {
  const node = await sharedNode()
  const body = deterministicBytes(3 * 1024 * 1024 + 17, 'generic-abuse')
  const headers = { Authorization: `Bearer ${node.adminToken}` }
  await abuse(t, node, 'PUT', '/files/abuse/file.bin', body, headers, { truncatedContentIsValid: true })
  const ok = await fetch(`${node.url}/files/abuse/file.bin`, { method: 'PUT', headers, body })
  t.true(ok.status === 200 || ok.status === 201, `${ok.status}`) // 200: a shorter declared body was a complete upload
  const back = await fetch(`${node.url}/files/abuse/file.bin`)
  t.true(Buffer.from(await back.arrayBuffer()).equals(body))
})

test('OCI monolithic POST, PATCH and the closing PUT', async t => {
  const node = await sharedNode()
  const body = deterministicBytes(2 * 1024 * 1024 + 5, 'oci-abuse')
  const digest = digestOf(body)
  const headers = { Authorization: `Bearer ${node.adminToken}`, 'Content-Type': 'application/octet-stream' }
  const session = async (): Promise<string> => {
    const r = await oci(node, 'POST', '/v2/docker/abuse/blobs/uploads/')
    if (r.status !== 202) throw new Error(`start: ${r.status}`)
    return new URL(r.headers.get('location') as string, node.url).pathname
  }
  await abuse(t, node, 'POST', `/v2/docker/abuse/blobs/uploads/?digest=${digest}`, body, headers)
  await abuse(t, node, 'PATCH', '', body, headers, { fresh: session, truncatedContentIsValid: true })
  await abuse(t, node, 'PUT', '', body, headers, { fresh: async () => `${await session()}?digest=${digest}` })
  t.is((await oci(node, 'HEAD', `/v2/docker/abuse/blobs/${digest}`)).status, 404, 'no broken upload made the blob')
  const up = await session()
  const patched = await oci(node, 'PATCH', up, { body: body.subarray(0, 1000), headers: { 'Content-Type': 'application/octet-stream' } })
  t.is(patched.status, 202)
  const done = await oci(node, 'PUT', `${up}?digest=${digest}`, { body: body.subarray(1000), headers: { 'Content-Type': 'application/octet-stream' } })
  t.is(done.status, 201, await done.text())
  t.is((await oci(node, 'HEAD', `/v2/docker/abuse/blobs/${digest}`)).status, 200)
})
