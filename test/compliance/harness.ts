// The app under the compliance suite: node/http.ts buildApp over real storage (FileBlobStore and
// SQLite on a temp dir, via node/server.ts openStorage), served by node:http on 127.0.0.1:0 in
// this process. Requests are hand-shaped as each format's clients shape them; no real clients.
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { request, type IncomingHttpHeaders, type Server } from 'node:http'
import { connect, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { configSchema, type Config, type RepositoryConfig } from '../../config/schema.ts'
import { buildApp } from '../../node/http.ts'
import { createHttpServer } from '../../node/expect-continue.ts'
import { openStorage, type Storage } from '../../node/server.ts'
import { ChangeLog, type Change } from '../../store/changes.ts'

export interface Reply {
  status: number
  statusMessage: string
  headers: IncomingHttpHeaders
  body: Buffer
  text: string
}

export interface Call {
  headers?: Record<string, string>
  body?: Buffer | string
  /** Value of the Authorization header; none if undefined. */
  auth?: string
}

/** A request as a client would send it. Each method's shape is the format's concern. */
export interface Probe {
  method: string
  /** Sent byte for byte (no normalisation of `..`, no re-encoding). */
  path: string
  headers?: Record<string, string>
  body?: Buffer | string
}

export interface Tokens {
  /** admin on every repository */
  admin: string
  /** read on every repository */
  reader: string
  /** write on `vault` only: a valid token for another repository */
  otherRepo: string
  /** well-formed, unknown */
  bogus: string
}

export interface App {
  url: string
  dataDir: string
  /** The temp dir around dataDir (holds a sentinel file outside every repository). */
  root: string
  config: Config
  storage: Storage
  tokens: Tokens
  /** Secret bytes placed outside the repositories under test: no response may contain them. */
  sentinels: string[]
  send (method: string, path: string, call?: Call): Promise<Reply>
  /** Errors Koa reported (on 'error') since the last call. */
  drainAppErrors (): string[]
  /** Local change-log rows after `seq`. */
  changesAfter (seq: number): Change[]
  lastSeq (): number
  /** Resolves once no connection is open (a request the server still handles would keep one). */
  idle (): Promise<void>
  close (): Promise<void>
}

export const LIMITS = { metadataBytes: 256 * 1024, uploadBytes: 1024 * 1024 }

/** A private generic repository holding a sentinel: the target of cross-repository traversal. */
export const VAULT = 'vault'

export async function startApp (repositories: Array<Omit<RepositoryConfig, 'anonymousRead'> & { anonymousRead?: boolean }>): Promise<App> {
  const root = await mkdtemp(join(tmpdir(), 'akmesh-compliance-'))
  const dataDir = join(root, 'data')
  const config = configSchema.parse({
    dataDir,
    http: { host: '127.0.0.1', port: 0 },
    limits: LIMITS,
    log: { level: 'silent' },
    repositories: [...repositories, { name: VAULT, format: 'generic', anonymousRead: false }]
  })
  const storage = await openStorage(dataDir, { sweepTemp: true })
  for (const r of config.repositories) storage.artifacts.ensureRepository(r.name, r.format)
  const token = (scopes: Array<'read' | 'write' | 'admin'>, repos: string[]) =>
    storage.accounts.createToken({ owner: `compliance-${scopes.join('+')}`, scopes, repos }).token
  const tokens: Tokens = {
    admin: token(['admin'], ['*']),
    reader: token(['read'], ['*']),
    otherRepo: token(['write'], [VAULT]),
    bogus: 'akm_' + 'x'.repeat(43)
  }
  const sentinels = [`outside-sentinel-${Math.random().toString(36).slice(2)}`, `vault-sentinel-${Math.random().toString(36).slice(2)}`]
  await writeFile(join(root, 'secret.txt'), sentinels[0])
  await writeFile(join(dataDir, 'secret.txt'), sentinels[0])

  const app = buildApp({ config, log: pino({ level: 'silent' }), ...storage })
  // Koa reports stream errors of finished requests here (a cut upload); without a listener it
  // prints them. Collected so each test can log its own.
  const appErrors: string[] = []
  app.on('error', (err: Error) => { appErrors.push(String(err?.message ?? err)) })
  const server: Server = createHttpServer(app)
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  const url = `http://127.0.0.1:${port}`
  const changes = new ChangeLog(storage.db)
  const maxSeq = storage.db.prepare<[], { seq: number | null }>('SELECT MAX(seq) AS seq FROM changes')
  const lastSeq = () => maxSeq.get()?.seq ?? 0

  const self: App = {
    url,
    dataDir,
    root,
    config,
    storage,
    tokens,
    sentinels,
    send: async (method, path, call = {}) => await send(port, method, path, call),
    drainAppErrors: () => appErrors.splice(0),
    changesAfter: (seq) => changes.localAfter(seq, 10_000),
    lastSeq,
    idle: async () => await until(async () => await new Promise<boolean>((resolve) => {
      server.getConnections((err, n) => resolve(err == null && n === 0))
    }), 'the server to close every connection'),
    close: async () => {
      await new Promise<void>(resolve => { server.close(() => resolve()); server.closeAllConnections() })
      storage.db.close()
      await rm(root, { recursive: true, force: true })
    }
  }
  const put = await self.send('PUT', `/${VAULT}/secret.txt`, { body: sentinels[1], auth: `Bearer ${tokens.admin}` })
  if (put.status !== 201) throw new Error(`vault sentinel: ${put.status} ${put.text}`)
  return self
}

/** One request on its own connection, the path sent as given. */
async function send (port: number, method: string, path: string, call: Call): Promise<Reply> {
  const headers: Record<string, string> = { ...call.headers }
  if (call.auth != null) headers.Authorization = call.auth
  return await new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      const pieces: Buffer[] = []
      res.on('data', (c: Buffer) => pieces.push(c))
      res.on('error', reject)
      res.on('end', () => {
        const body = Buffer.concat(pieces)
        resolve({ status: res.statusCode ?? 0, statusMessage: res.statusMessage ?? '', headers: res.headers, body, text: body.toString('utf8') })
      })
    })
    req.on('error', reject)
    req.end(call.body)
  })
}

export interface RawReply {
  /** The final status; undefined when the connection closed without one. */
  status?: number
  /** 1xx statuses before it (100 Continue). */
  interim: number[]
  text: string
}

/** Writes `head` and then `body` pieces on a raw socket, stops writing once a response starts,
 *  and collects the response until the server closes (or `end` decides the client closes first).
 *  Write errors (the server closing on an unread body) are expected and ignored. */
export async function rawExchange (port: number, head: string, body: Iterable<Buffer>, opts: {
  closeAfterWrite?: 'end' | 'destroy'
  /** Send the body only after a 100 Continue, as curl does with `Expect: 100-continue`. */
  awaitContinue?: boolean
} = {}): Promise<RawReply> {
  return await new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    const pieces: Buffer[] = []
    let answered = false
    const done = () => {
      clearTimeout(timer)
      const text = Buffer.concat(pieces).toString('latin1')
      const statuses = [...text.matchAll(/(?:^|\r\n)HTTP\/1\.1 (\d{3})/g)].map(m => Number(m[1]))
      const final = statuses.find(n => n >= 200)
      resolve({ status: final, interim: statuses.filter(n => n < 200), text })
    }
    // A safety net only: a server that neither answers nor closes fails the caller's assertion.
    const timer = setTimeout(() => socket.destroy(), 20_000)
    socket.on('data', (c: Buffer) => { answered = true; pieces.push(c) })
    socket.on('error', () => {})
    socket.on('close', done)
    socket.on('connect', () => {
      void (async () => {
        if (!socket.write(head)) await waitDrain(socket)
        if (opts.awaitContinue === true) {
          await waitDrain(socket) // resolves on the first response bytes (or close)
          answered = !/^HTTP\/1\.1 100 /.test(Buffer.concat(pieces).toString('latin1'))
        }
        for (const piece of body) {
          if (answered || socket.destroyed) break
          if (!socket.write(piece)) await waitDrain(socket)
        }
        // Half-close either way: a server still waiting for the rest of the body then sees it end.
        if (opts.closeAfterWrite === 'destroy') socket.destroy()
        else socket.end()
      })()
    })
  })
}

async function waitDrain (socket: import('node:net').Socket): Promise<void> {
  await new Promise<void>(resolve => {
    // A response also ends the wait: a server that answered early may never read the rest.
    const finish = () => { socket.off('drain', finish); socket.off('close', finish); socket.off('data', finish); resolve() }
    socket.once('drain', finish)
    socket.once('close', finish)
    socket.once('data', finish)
  })
}

export async function until (check: () => Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setImmediate(resolve))
  }
}

/** The request head of a probe, Content-Length or chunked as asked. */
export function requestHead (p: Probe, framing: { contentLength: number } | 'chunked', auth?: string): string {
  const lines = [`${p.method} ${p.path} HTTP/1.1`, 'Host: 127.0.0.1']
  for (const [k, v] of Object.entries(p.headers ?? {})) {
    if (!/^(content-length|transfer-encoding|host)$/i.test(k)) lines.push(`${k}: ${v}`)
  }
  if (auth != null) lines.push(`Authorization: ${auth}`)
  lines.push(framing === 'chunked' ? 'Transfer-Encoding: chunked' : `Content-Length: ${framing.contentLength}`)
  return lines.join('\r\n') + '\r\n\r\n'
}

/** Splits bytes into pieces of at most `size`. */
export function * pieces (bytes: Buffer, size = 64 * 1024): Generator<Buffer> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size)
}

/** Frames pieces as chunked transfer coding, with the terminating chunk. */
export function * chunked (bytes: Buffer): Generator<Buffer> {
  for (const p of pieces(bytes)) yield Buffer.concat([Buffer.from(p.length.toString(16) + '\r\n'), p, Buffer.from('\r\n')])
  yield Buffer.from('0\r\n\r\n')
}

export const portOf = (app: App) => Number(new URL(app.url).port)
