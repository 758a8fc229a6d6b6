// A real CNCF distribution registry (Debian's docker-registry) on 127.0.0.1 with filesystem
// storage in a temp dir: the upstream of remote OCI repository tests. Its access log (stdout)
// counts upstream requests. With `users`, it runs with token auth as Docker Hub does: the realm
// is a small token server here that checks a username/password (Basic) and signs a JWT (RS256,
// its certificate in the `x5c` header) that the registry verifies against its rootcertbundle.
// https://distribution.github.io/distribution/spec/auth/jwt/
import { spawn, type ChildProcess } from 'node:child_process'
import { createSign, X509Certificate } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import { join } from 'node:path'
import type { ExecutionContext } from 'ava'
import { run } from './clients.ts'
import { freePort } from './nginx.ts'
import { makeTempDir } from './node.ts'
import { stopProcess, untilListening } from './upstream-process.ts'

export const DOCKER_REGISTRY = process.env.DOCKER_REGISTRY ?? '/usr/bin/docker-registry'
const SERVICE = 'akmesh-test-registry'
const ISSUER = 'akmesh-test-issuer'

export interface Registry {
  url: string
  host: string
  /** Access log lines so far: `METHOD PATH STATUS`. */
  log (): string[]
  /** How many requests with this method reached the registry for exactly this path (and, if
   *  given, were answered with this status). */
  count (method: string, path: string, status?: number): number
  /** Token requests so far: the Basic user ('' if none), the scopes asked, and the answer. */
  tokenRequests: Array<{ user: string, scopes: string[], status: number }>
  stop (): Promise<void>
  start (): Promise<void>
}

export async function startRegistry (t: ExecutionContext, opts: { users?: Record<string, string> } = {}): Promise<Registry> {
  const dir = await makeTempDir(t, 'akmesh-registry-')
  const port = await freePort()
  const tokenRequests: Registry['tokenRequests'] = []
  let auth = ''
  if (opts.users != null) {
    const realm = await startTokenServer(t, dir, opts.users, tokenRequests)
    auth = `auth:\n  token:\n    realm: ${realm}\n    service: ${SERVICE}\n    issuer: ${ISSUER}\n    rootcertbundle: ${join(dir, 'cert.pem')}\n`
  }
  await writeFile(join(dir, 'config.yml'), `version: 0.1
log:
  level: warn
  accesslog: { disabled: false }
storage:
  filesystem: { rootdirectory: ${join(dir, 'data')} }
  delete: { enabled: true }
http:
  addr: 127.0.0.1:${port}
  secret: akmesh-test-secret
${auth}`)
  const url = `http://127.0.0.1:${port}`
  let proc: ChildProcess | undefined
  let access = ''
  let stderr = ''
  const registry: Registry = {
    url,
    host: `127.0.0.1:${port}`,
    tokenRequests,
    // Combined log format: 127.0.0.1 - - [date] "GET /v2/... HTTP/1.1" 200 123 "" "agent"
    log: () => [...access.matchAll(/"([A-Z]+) (\S+) HTTP\/[\d.]+" (\d{3})/g)].map(m => `${m[1]} ${m[2]} ${m[3]}`),
    count: (method, path, status) => registry.log().filter(l => l.startsWith(`${method} ${path} ${status ?? ''}`)).length,
    start: async () => {
      const p = spawn(DOCKER_REGISTRY, ['serve', join(dir, 'config.yml')], { stdio: ['ignore', 'pipe', 'pipe'] })
      proc = p
      p.stdout?.on('data', (b: Buffer) => { access += b.toString() })
      p.stderr?.on('data', (b: Buffer) => { stderr += b.toString() })
      await untilListening(p, 'docker-registry', async () => await fetch(`${url}/v2/`).then(() => true, () => false), 15_000, () => stderr)
    },
    stop: async () => { await stopProcess(proc) }
  }
  await registry.start()
  t.teardown(async () => { await registry.stop() })
  return registry
}

/** The token realm: grants what is asked to a user whose password matches, refuses others. */
async function startTokenServer (t: ExecutionContext, dir: string, users: Record<string, string>, seen: Registry['tokenRequests']): Promise<string> {
  const made = await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'),
    '-out', join(dir, 'cert.pem'), '-days', '2', '-subj', '/CN=akmesh-test-token-issuer'])
  if (made.code !== 0) throw new Error(`openssl failed: ${made.stderr}`)
  const key = await readFile(join(dir, 'key.pem'))
  const cert = new X509Certificate(await readFile(join(dir, 'cert.pem')))
  const b64 = (v: string) => Buffer.from(v).toString('base64url')
  const server = createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x')
    const scopes = u.searchParams.getAll('scope')
    const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? '')
    const [user, password] = basic == null ? ['', ''] : Buffer.from(basic[1], 'base64').toString().split(/:(.*)/s)
    const status = basic != null && users[user] === password ? 200 : 401
    seen.push({ user, scopes, status })
    if (status !== 200) { res.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"bad credentials"}'); return }
    const now = Math.floor(Date.now() / 1000)
    const access = scopes.map(s => { const [type, name, actions] = s.split(':'); return { type, name, actions: actions.split(',') } })
    const header = b64(JSON.stringify({ typ: 'JWT', alg: 'RS256', x5c: [cert.raw.toString('base64')] }))
    const claims = b64(JSON.stringify({ iss: ISSUER, sub: user, aud: u.searchParams.get('service'), exp: now + 300, nbf: now - 30, iat: now, jti: `${now}-${seen.length}`, access }))
    const signature = createSign('RSA-SHA256').update(`${header}.${claims}`).sign(key).toString('base64url')
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: `${header}.${claims}.${signature}`, expires_in: 300 }))
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => { server.closeAllConnections(); await new Promise(resolve => server.close(resolve)) })
  return `http://127.0.0.1:${(server.address() as { port: number }).port}/token`
}
