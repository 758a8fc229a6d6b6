// "Expect: 100-continue": a request refused before its body (declared size over the limit, no
// credentials) is answered without "100 Continue", so the client never sends the body and shows
// the message (curl -T, pip); a request the handler reads gets "100 Continue" first, as usual.
import test, { type ExecutionContext } from 'ava'
import { writeFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { join } from 'node:path'
import { requireClient, run } from './helpers/clients.ts'
import { makeTempDir, startTestNode, type TestNode } from './helpers/node.ts'
import { digestOf } from './helpers/oci-http.ts'
import { deterministicBytes } from './helpers/streams.ts'

const LIMIT = 1024 * 1024
const cleanups: Array<() => unknown> = []
const fileScope = { teardown: (fn: () => unknown) => { cleanups.push(fn) } } as unknown as ExecutionContext
let shared: Promise<TestNode> | undefined
const sharedNode = async () => await (shared ??= startTestNode(fileScope, { config: `limits: { uploadBytes: ${LIMIT}, metadataBytes: ${LIMIT} }\n` }))
test.after.always(async () => { for (const fn of cleanups.reverse()) await fn() })

/** Sends the head of a request with Expect: 100-continue and no body; sends `body` only if the
 *  server says "100 Continue". Resolves with everything the server sent, once it has closed. */
async function expecting (node: TestNode, method: string, path: string, headers: Record<string, string>, body: Buffer): Promise<string> {
  const { hostname, port } = new URL(node.url)
  const head = `${method} ${path} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nExpect: 100-continue\r\nConnection: close\r\n` +
    `Content-Length: ${body.length}\r\n` + Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('') + '\r\n'
  return await new Promise((resolve, reject) => {
    let text = ''
    let sent = false
    const socket = connect(Number(port), hostname, () => { socket.write(head) })
    socket.on('data', (b: Buffer) => {
      text += b.toString('latin1')
      if (!sent && /^HTTP\/1\.1 100 /.test(text) && text.includes('\r\n\r\n')) { sent = true; socket.write(body) }
    })
    socket.once('close', () => { resolve(text) })
    socket.once('error', reject)
  })
}

const statusLines = (raw: string) => raw.split('\r\n').filter(l => /^HTTP\/1\.1 \d{3}/.test(l))
const bearer = (node: TestNode) => ({ Authorization: `Bearer ${node.adminToken}` })

test('declared sizes over the limit are refused without 100 Continue, on every upload endpoint', async t => {
  const node = await sharedNode()
  const big = Buffer.alloc(LIMIT + 1)
  const cases: Array<[string, string, Record<string, string>]> = [
    ['PUT', '/files/expect/big.bin', {}],
    ['POST', '/pypi/', { 'Content-Type': 'multipart/form-data; boundary=x' }],
    ['PUT', '/npm/expect-big', { 'Content-Type': 'application/json' }],
    ['POST', `/v2/docker/expect/blobs/uploads/?digest=${digestOf(big)}`, { 'Content-Type': 'application/octet-stream' }]
  ]
  for (const [method, path, headers] of cases) {
    const raw = await expecting(node, method, path, { ...bearer(node), ...headers }, big)
    const lines = statusLines(raw)
    t.is(lines.length, 1, `${method} ${path}: ${lines.join(' | ')}`)
    t.regex(lines[0] ?? '', /^HTTP\/1\.1 413 /, `${method} ${path}`)
    t.regex(raw, /exceeds the limit/i, `${method} ${path}: the message is in the answer`)
  }
})

test('an unauthenticated upload is refused without 100 Continue; an accepted one gets it, then its answer', async t => {
  const node = await sharedNode()
  const body = deterministicBytes(10_000, 'expect-small')
  const refused = statusLines(await expecting(node, 'PUT', '/files/expect/anon.bin', {}, body))
  t.deepEqual(refused.map(l => l.slice(0, 12)), ['HTTP/1.1 401'])

  const accepted = statusLines(await expecting(node, 'PUT', '/files/expect/small.bin', bearer(node), body))
  t.deepEqual(accepted.map(l => l.slice(0, 12)), ['HTTP/1.1 100', 'HTTP/1.1 201'])
  const back = await fetch(`${node.url}/files/expect/small.bin`)
  t.true(Buffer.from(await back.arrayBuffer()).equals(body))
  // The connection of a request answered without its body is closed; others keep working.
  t.is((await fetch(`${node.url}/healthz`)).status, 200)
})

test('curl -T with Expect: 100-continue prints the 413 message and never sees 100 Continue', async t => {
  const curl = await requireClient(t, 'curl')
  if (curl == null) return
  const node = await sharedNode()
  const file = join(await makeTempDir(t), 'big.bin')
  await writeFile(file, Buffer.alloc(LIMIT * 2))
  const r = await run(curl, ['-sS', '-v', '-H', 'Expect: 100-continue', '-H', `Authorization: Bearer ${node.adminToken}`,
    '-T', file, `${node.url}/files/expect/curl.bin`])
  t.regex(r.stderr, /< HTTP\/1\.1 413/, r.stderr)
  t.notRegex(r.stderr, /< HTTP\/1\.1 100/, 'no 100 Continue was sent')
  t.regex(r.stdout, /exceeds the limit of 1048576 bytes/)
  t.is((await fetch(`${node.url}/files/expect/curl.bin`)).status, 404)
})
