// A real nginx on 127.0.0.1 (a free port, a temp prefix, `daemon off`) serving files from a temp
// folder: the upstream of remote-repository tests. Its access log counts upstream requests.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import type { ExecutionContext } from 'ava'
import { makeTempDir } from './node.ts'
import { stopProcess, untilListening } from './upstream-process.ts'

export const NGINX = process.env.NGINX ?? '/usr/sbin/nginx'

export interface Nginx {
  url: string
  /** The folder nginx serves at `/`. */
  root: string
  /** Writes a file under the root (folders created). */
  put (path: string, body: string | Uint8Array): Promise<void>
  /** How many requests with this method reached nginx for this path so far. */
  count (method: string, path: string): Promise<number>
  /** Access log lines: `METHOD URI STATUS AUTHORIZATION-PRESENT`. */
  log (): Promise<string[]>
  stop (): Promise<void>
  start (): Promise<void>
}

export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port
      s.close(() => { resolve(port) })
    })
  })
}

export interface NginxOptions {
  /** More directives inside the server block (locations with auth, ...). */
  server?: string
  /** More directives in the http block (a map). */
  http?: string
  /** Files written beside nginx.conf before start (an htpasswd). */
  files?: Record<string, string>
}

export async function startNginx (t: ExecutionContext, opts: NginxOptions = {}): Promise<Nginx> {
  const prefix = await makeTempDir(t, 'akmesh-nginx-')
  const root = join(prefix, 'html')
  await mkdir(root)
  for (const [name, text] of Object.entries(opts.files ?? {})) await writeFile(join(prefix, name), text)
  const port = await freePort()
  const accessLog = join(prefix, 'access.log')
  await writeFile(accessLog, '')
  // As root the workers would run as nobody, who cannot read a 0700 temp folder.
  const user = process.getuid?.() === 0 ? 'user root;' : ''
  await writeFile(join(prefix, 'nginx.conf'), `
${user}
daemon off;
worker_processes 1;
pid ${join(prefix, 'nginx.pid')};
error_log ${join(prefix, 'error.log')} warn;
events { worker_connections 256; }
http {
  default_type application/octet-stream;
  types { application/json json; text/html html; text/plain txt; }
  log_format counted '$request_method $uri $status $auth_present';
  map $http_authorization $auth_present { default yes; "" no; }
  access_log ${accessLog} counted;
  ${opts.http ?? ''}
  client_body_temp_path ${prefix}/client_body;
  proxy_temp_path ${prefix}/proxy;
  fastcgi_temp_path ${prefix}/fastcgi;
  uwsgi_temp_path ${prefix}/uwsgi;
  scgi_temp_path ${prefix}/scgi;
  server {
    listen 127.0.0.1:${port};
    root ${root};
    ${opts.server ?? ''}
  }
}
`)
  let proc: ChildProcess | undefined
  let stderr = ''
  const url = `http://127.0.0.1:${port}`
  const nginx: Nginx = {
    url,
    root,
    put: async (path, body) => {
      const file = join(root, path)
      await mkdir(join(file, '..'), { recursive: true })
      await writeFile(file, body)
    },
    log: async () => (await readFile(accessLog, 'utf8')).split('\n').filter(l => l !== ''),
    count: async (method, path) => (await nginx.log()).filter(l => l.startsWith(`${method} ${path} `)).length,
    start: async () => {
      const p = spawn(NGINX, ['-p', prefix, '-e', join(prefix, 'error.log'), '-c', join(prefix, 'nginx.conf')], { stdio: ['ignore', 'ignore', 'pipe'] })
      proc = p
      p.stderr?.on('data', (b: Buffer) => { stderr += b.toString() })
      await untilListening(p, 'nginx', async () => await fetch(url, { method: 'HEAD' }).then(() => true, () => false), 15_000, () => stderr)
    },
    stop: async () => { await stopProcess(proc) }
  }
  await nginx.start()
  t.teardown(async () => { await nginx.stop() })
  return nginx
}

/** A context for a `test.before` hook, where ava allows no `t.teardown`: what helpers register is
 *  run by `test.after.always(run)`, last registered first. */
export function hookTeardowns (): { t: ExecutionContext, run: () => Promise<void> } {
  const fns: Array<() => unknown> = []
  const t = { teardown: (fn: () => unknown) => { fns.push(fn) } } as unknown as ExecutionContext
  return { t, run: async () => { for (const fn of fns.reverse()) await fn() } }
}
