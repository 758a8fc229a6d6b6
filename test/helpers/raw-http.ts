// Broken HTTP requests over a raw socket (node:net): bodies shorter than their Content-Length,
// chunked bodies that end early, clients that vanish mid-body. Clients built on node:http or
// fetch cannot send these.
import { connect } from 'node:net'
import type { TestNode } from './node.ts'
import { waitFor } from './node.ts'

export interface BrokenRequest {
  method: string
  path: string
  headers?: Record<string, string>
  /** The bytes actually sent. */
  body: Buffer
  /** How the request ends:
   *  - 'lie': Content-Length says `declared` bytes (default body + 1000), then the client half-closes;
   *  - 'disconnect': Content-Length says `declared`, then the client resets the connection;
   *  - 'chunked': the body goes as one chunk and the chunked encoding ends properly, so the
   *    server sees a complete HTTP body (whatever the body's own framing says). */
  ending: 'lie' | 'disconnect' | 'chunked'
  declared?: number
}

export interface RawReply { status?: number, text: string }

/** Sends the request; resolves with whatever came back once the server closes, or at once after
 *  a 'disconnect'. A `probe=<id>` query parameter is added so the node's request log line for
 *  this very request can be waited for (`waitForRequestLog`). */
export async function sendBroken (node: TestNode, req: BrokenRequest, probe: string): Promise<RawReply> {
  const { hostname, port } = new URL(node.url)
  const path = `${req.path}${req.path.includes('?') ? '&' : '?'}probe=${probe}`
  const headers: Record<string, string> = { Host: `${hostname}:${port}`, Connection: 'close', ...req.headers }
  if (req.ending === 'chunked') headers['Transfer-Encoding'] = 'chunked'
  else headers['Content-Length'] = String(req.declared ?? req.body.length + 1000)
  const head = `${req.method} ${path} HTTP/1.1\r\n` + Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('') + '\r\n'
  const body = req.ending === 'chunked'
    ? Buffer.concat([Buffer.from(`${req.body.length.toString(16)}\r\n`), req.body, Buffer.from('\r\n0\r\n\r\n')])
    : req.body
  return await new Promise((resolve) => {
    const pieces: Buffer[] = []
    const done = () => {
      const text = Buffer.concat(pieces).toString('latin1')
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text)
      resolve({ status: m == null ? undefined : Number(m[1]), text })
    }
    const socket = connect(Number(port), hostname, () => {
      socket.write(head)
      socket.write(body, () => {
        if (req.ending === 'disconnect') { socket.resetAndDestroy(); done() } else if (req.ending === 'lie') socket.end()
      })
    })
    socket.on('data', (b: Buffer) => pieces.push(b))
    socket.once('close', done)
    socket.on('error', () => {}) // a reset after an early answer is expected
  })
}

/** Waits until the node has logged the end of the request tagged `probe`: by then it has seen
 *  the connection end and run whatever that triggers. */
export async function waitForRequestLog (node: TestNode, probe: string): Promise<void> {
  await waitFor(() => node.output().split('\n').some(l => l.includes(`probe=${probe}"`) && l.includes('"msg":"request"')), `the request log line of probe ${probe}`)
}

/** Asserts the node process is alive and answers a plain request. */
export async function assertServing (node: TestNode): Promise<void> {
  if (node.proc.exitCode != null || node.proc.signalCode != null) throw new Error(`the node exited (${node.proc.exitCode ?? node.proc.signalCode}):\n${node.output().slice(-3000)}`)
  const r = await fetch(`${node.url}/healthz`)
  if (r.status !== 200) throw new Error(`healthz answered ${r.status}`)
  await r.body?.cancel()
}
