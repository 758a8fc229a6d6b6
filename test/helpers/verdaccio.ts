// A real Verdaccio on 127.0.0.1 (a free port, storage in a temp folder, no uplinks: it serves only
// what the test publishes into it), the upstream of remote npm repository tests. Its request log
// (JSON lines on stdout) counts the requests that reached it. Verdaccio is not one of the
// project's dependencies (its tree would pin packages the project uses): .ci/run installs it
// into .ci/verdaccio/ (pinned there).
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { ExecutionContext } from 'ava'
import { freePort } from './nginx.ts'
import { makeTempDir, ROOT } from './node.ts'
import { publishBody } from './npm-client.ts'
import { stopProcess, untilListening } from './upstream-process.ts'

export const VERDACCIO = process.env.VERDACCIO ?? join(ROOT, '.ci/verdaccio/node_modules/verdaccio/bin/verdaccio')

export interface Manifest { name: string, version: string, dependencies?: Record<string, string>, [k: string]: unknown }

export interface Verdaccio {
  url: string
  /** Publishes one version through Verdaccio's HTTP API (what `npm publish` sends): `manifest`
   *  is its package.json (name, version, dependencies), `tgz` its tarball. */
  publish (manifest: Manifest, tgz: Buffer, tag?: string): Promise<void>
  /** Requests that reached Verdaccio so far: `METHOD URL`. */
  requests (): string[]
  /** How many requests with this method and URL reached Verdaccio. */
  count (method: string, url: string): number
  stop (): Promise<void>
  start (): Promise<void>
}

/** Whether Verdaccio is installed; a test without it fails under CI (which must install it) and
 *  is skipped loudly elsewhere. */
export function verdaccioInstalled (): boolean { return existsSync(VERDACCIO) }

export async function startVerdaccio (t: ExecutionContext): Promise<Verdaccio> {
  const dir = await makeTempDir(t, 'akmesh-verdaccio-')
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const config = join(dir, 'config.yaml')
  await writeFile(join(dir, 'htpasswd'), '')
  await writeFile(config, `
storage: ${join(dir, 'storage')}
auth:
  htpasswd: { file: ${join(dir, 'htpasswd')}, max_users: -1 }
uplinks: {}
packages:
  '@*/*': { access: $all, publish: $all, unpublish: $all }
  '**': { access: $all, publish: $all, unpublish: $all }
web: { enable: false }
max_body_size: 20mb
log: { type: stdout, format: json, level: http }
`)
  const lines: string[] = []
  let output = ''
  let proc: ChildProcess | undefined
  const v: Verdaccio = {
    url,
    publish: async (manifest, tgz, tag = 'latest') => {
      const { name, version } = manifest
      const body = publishBody(name, version, tgz)
      body['dist-tags'] = { [tag]: version }
      body.versions[version] = { ...manifest, ...body.versions[version] }
      const r = await fetch(`${url}/${encodeURIComponent(name).replace(/^%40/, '@')}`, {
        method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body)
      })
      if (!r.ok) throw new Error(`verdaccio refused ${name}@${version}: ${r.status} ${await r.text()}`)
    },
    requests: () => lines,
    count: (method, u) => lines.filter(l => l === `${method} ${u}`).length,
    start: async () => {
      const p = spawn(process.execPath, [VERDACCIO, '--config', config, '--listen', `127.0.0.1:${port}`], { stdio: ['ignore', 'pipe', 'pipe'] })
      proc = p
      let partial = ''
      p.stdout?.on('data', (b: Buffer) => {
        output += b.toString()
        partial += b.toString()
        const parts = partial.split('\n')
        partial = parts.pop() as string
        for (const line of parts) {
          const request = requestLine(line)
          if (request != null) lines.push(request)
        }
      })
      p.stderr?.on('data', (b: Buffer) => { output += b.toString() })
      await untilListening(p, 'verdaccio', async () => await fetch(`${url}/-/ping`).then(r => r.ok, () => false), 30_000, () => output)
    },
    stop: async () => { await stopProcess(proc) }
  }
  await v.start()
  t.teardown(async () => { await v.stop() })
  return v
}

/** `METHOD URL` of a request as Verdaccio logs it when it arrives (its `req` line; the lines
 *  about the answer carry `request` instead), or undefined for other lines. */
function requestLine (line: string): string | undefined {
  let entry: { req?: { method?: string, url?: string } }
  try { entry = JSON.parse(line) } catch { return undefined }
  if (entry.req?.method == null || entry.req.url == null) return undefined
  return `${entry.req.method} ${entry.req.url}`
}
