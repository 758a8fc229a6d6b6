// A generic remote repository in front of upstreams that misbehave on purpose: slow to answer,
// stalling mid-body, truncated, redirecting to another host, too large, with a wrong checksum,
// failing with 500. No real server misbehaves on demand, so the upstream is a small hand-written
// Node HTTP server; each case is refused with a clear error and nothing is cached (the next
// request reaches the upstream again).
import test from 'ava'
import { createHash } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import { startTestNode, type TestNode } from './helpers/node.ts'
import { hookTeardowns } from './helpers/nginx.ts'

const BODY = Buffer.alloc(200 * 1024, 'x')
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')

const hits = new Map<string, number>()
let node: TestNode
let upstream: string
const hook = hookTeardowns()
test.after.always(async () => { if (process.env.DUMP != null) console.log(node.output().slice(-6000)); await hook.run() })

/** Released by the streaming test: /gated.bin holds back its second half until then. */
let openGate!: () => void
const gate = new Promise<void>(resolve => { openGate = resolve })
const GATED = Buffer.alloc(800 * 1024, 'g')
let openLeftGate!: () => void
const leftGate = new Promise<void>(resolve => { openLeftGate = resolve })

/** What each path does; every path counts its hits. */
function misbehave (other: string): Server {
  return createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname
    hits.set(path, (hits.get(path) ?? 0) + 1)
    switch (path) {
      case '/ok.bin': res.end(BODY); return
      case '/gated.bin':
        res.writeHead(200, { 'content-length': GATED.length })
        res.write(GATED.subarray(0, GATED.length / 2))
        void gate.then(() => res.end(GATED.subarray(GATED.length / 2)))
        return
      case '/slow.bin': setTimeout(() => { if (!res.destroyed) res.end(BODY) }, 5000); return
      case '/stall.bin':
        res.writeHead(200, { 'content-length': BODY.length })
        res.write(BODY.subarray(0, 1000)) // then nothing
        return
      case '/truncated.bin':
        res.writeHead(200, { 'content-length': BODY.length })
        res.write(BODY.subarray(0, 50_000), () => { res.destroy() })
        return
      case '/redirect-away.bin': res.writeHead(302, { location: `${other}/ok.bin` }).end(); return
      case '/redirect-home.bin': res.writeHead(301, { location: '/ok.bin' }).end(); return
      case '/left.bin': // the same, for a client that leaves halfway
        res.writeHead(200, { 'content-length': GATED.length })
        res.write(GATED.subarray(0, GATED.length / 2))
        void leftGate.then(() => res.end(GATED.subarray(GATED.length / 2)))
        return
      case '/huge-declared.bin': res.writeHead(200, { 'content-length': 2 * 1024 * 1024 }).end(); return
      case '/huge-chunked.bin': {
        let sent = 0
        const more = () => { while (sent < 2 * 1024 * 1024) { sent += 64 * 1024; if (!res.write(Buffer.alloc(64 * 1024))) { res.once('drain', more); return } } res.end() }
        more()
        return
      }
      case '/wrong-digest.bin': res.writeHead(200, { 'x-checksum-sha256': sha256(Buffer.from('other bytes')) }).end(BODY); return
      case '/broken.json': res.writeHead(500, { 'content-type': 'text/html' }).end('<html>Internal Server Error</html>'); return
      default: res.writeHead(404).end()
    }
  })
}

async function listen (server: Server): Promise<string> {
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  hook.t.teardown(async () => { server.closeAllConnections(); await new Promise(resolve => server.close(resolve)) })
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`
}

test.before(async () => {
  const elsewhere = await listen(createServer((_req, res) => res.end('from another host')))
  // "localhost" is another origin than "127.0.0.1", whatever port.
  upstream = await listen(misbehave(elsewhere.replace('127.0.0.1', 'localhost')))
  node = await startTestNode(hook.t, {
    config: `
limits: { uploadBytes: 1MB }
repositories:
  - { name: bad, format: generic, type: remote, upstream: "${upstream}", timeouts: { response: 1s, idle: 1s } }
`
  })
})

const get = async (path: string) => await fetch(`${node.url}/bad/${path}`)
/** A download whose body is cut off (the error the client sees), or its bytes. */
const download = async (path: string): Promise<{ status: number, error?: string, body?: Buffer }> => {
  let r: Response
  try { r = await get(path) } catch (err) { return { status: 0, error: String((err as Error).message) } }
  try { return { status: r.status, body: Buffer.from(await r.arrayBuffer()) } } catch (err) { return { status: r.status, error: String((err as Error).message) } }
}

/** A download cut off mid-body, or answered with an error status: never a complete 200. */
const refused = (r: { status: number, error?: string }) => r.error != null || r.status >= 500

test('a good upstream file comes through (the control for the cases below)', async t => {
  const r = await download('ok.bin')
  t.is(r.status, 200)
  t.true(r.body?.equals(BODY))
})

test('bytes stream to the first client while the upstream is still sending, then are cached', async t => {
  const r = await get('gated.bin')
  t.is(r.status, 200)
  t.is(r.headers.get('x-akmesh-cache'), 'miss')
  const reader = (r.body as ReadableStream<Uint8Array>).getReader()
  const pieces: Uint8Array[] = []
  let received = 0
  // The upstream has sent only half; the client gets most of that half before it sends more.
  while (received < GATED.length / 4) {
    const { value, done } = await reader.read()
    if (done) break
    pieces.push(value); received += value.byteLength
  }
  t.true(received >= GATED.length / 4 && received <= GATED.length / 2, `${received} bytes before the upstream finished`)
  openGate()
  for (;;) {
    const { value, done } = await reader.read()
    if (done) break
    pieces.push(value)
  }
  t.true(Buffer.concat(pieces).equals(GATED))
  const again = await get('gated.bin')
  t.is(again.headers.get('x-akmesh-cache'), 'hit')
  t.true(Buffer.from(await again.arrayBuffer()).equals(GATED))
  t.is(hits.get('/gated.bin'), 1)
})

test('a first client leaving mid-download does not stop the caching', async t => {
  const ac = new AbortController()
  const r = await fetch(`${node.url}/bad/left.bin`, { signal: ac.signal })
  const reader = (r.body as ReadableStream<Uint8Array>).getReader()
  await reader.read()
  ac.abort()
  await reader.read().catch(() => {})
  openLeftGate()
  const again = await download('left.bin')
  t.is(again.status, 200)
  t.true(again.body?.equals(GATED))
  t.is(hits.get('/left.bin'), 1, 'the second client got the bytes the first fetch cached')
})

test('an upstream slower than timeouts.response answers 504, nothing cached', async t => {
  const r = await get('slow.bin')
  t.is(r.status, 504)
  t.regex((await r.json() as { error: string }).error, /upstream http:\/\/127\.0\.0\.1:\d+\/slow\.bin did not answer within 1000 ms/)
  t.is((await get('slow.bin')).status, 504)
  t.is(hits.get('/slow.bin'), 2, 'a timeout is not remembered as an answer')
})

test('an upstream stalling mid-body past timeouts.idle answers 504 before any byte went out, nothing cached', async t => {
  const r = await download('stall.bin')
  t.is(r.status, 504, 'no byte had gone out: the failure is answered, not cut off')
  await download('stall.bin')
  t.is(hits.get('/stall.bin'), 2)
  t.regex(node.output(), /sent nothing for 1000 ms in the middle of its response/)
})

test('a truncated upstream body cuts the download off, nothing cached', async t => {
  t.true(refused(await download('truncated.bin')))
  await download('truncated.bin')
  t.is(hits.get('/truncated.bin'), 2)
})

test('a redirect to another host is refused with 502; one within the upstream is followed', async t => {
  const away = await get('redirect-away.bin')
  t.is(away.status, 502)
  t.regex((await away.json() as { error: string }).error, /redirected to another host \(http:\/\/localhost:\d+\); refused, nothing cached/)
  const home = await download('redirect-home.bin')
  t.is(home.status, 200)
  t.true(home.body?.equals(BODY))
})

test('a response over limits.uploadBytes is refused: declared (502) or streamed (cut off), nothing cached', async t => {
  const declared = await get('huge-declared.bin')
  t.is(declared.status, 502)
  t.regex((await declared.json() as { error: string }).error, /declares 2097152 bytes, over limits\.uploadBytes \(1048576\); refused, nothing cached/)
  t.true(refused(await download('huge-chunked.bin')))
  await download('huge-chunked.bin')
  t.is(hits.get('/huge-chunked.bin'), 2)
  t.regex(node.output(), /sent more than limits\.uploadBytes \(1048576\); refused, nothing cached/)
})

test('bytes that do not match the upstream\'s own checksum header are refused, nothing cached', async t => {
  t.true(refused(await download('wrong-digest.bin')), 'the client never gets the wrong bytes as a complete file')
  await download('wrong-digest.bin')
  t.is(hits.get('/wrong-digest.bin'), 2)
  t.regex(node.output(), /sent bytes that do not match what it declared \(sha256 mismatch/)
})

test('an upstream 500 (an HTML error page) answers 502 naming the upstream status', async t => {
  const r = await get('broken.json')
  t.is(r.status, 502)
  t.regex((await r.json() as { error: string }).error, /upstream http:\/\/127\.0\.0\.1:\d+\/broken\.json answered 500; nothing cached/)
})
