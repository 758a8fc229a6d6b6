// A throwaway akmesh node on 127.0.0.1 with an empty data dir; its first-run admin token is
// taken from stderr.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { freePort, NODE, ROOT, startService, tempDir } from './proc.ts'
import type { Registry } from './types.ts'

export interface AkmeshNode extends Registry {
  /** Base URL of the node, no trailing slash. */
  url: string
  dataDir: string
}

function cleanEnv (): NodeJS.ProcessEnv {
  const env = { ...process.env }
  for (const k of Object.keys(env)) if (k.startsWith('AKMESH_')) delete env[k]
  return env
}

export const AKMESH_CLI = join(ROOT, 'node/cli.ts')

/**
 * Log level: the node's default (info, one JSON line per request) unless AKMESH_BENCH_LOG_LEVEL
 * is set, in which case a config file sets it (readiness is then detected by polling the port).
 */
export async function startAkmesh (opts: { config?: string, peering?: object, cli?: string, name?: string } = {}): Promise<AkmeshNode> {
  // `cli`: another checkout's node/cli.ts (a baseline measured in the same run), named `name`.
  const cli = opts.cli ?? AKMESH_CLI
  if (!existsSync(cli)) throw new Error(`akmesh CLI not found at ${cli}`)
  const dir = tempDir('akmesh')
  const dataDir = join(dir, 'data')
  // A peering file written before the first start (e.g. an OS-picked mesh port, so a bench node
  // does not collide with another node on the default 7071).
  if (opts.peering != null) { mkdirSync(dataDir, { recursive: true }); writeFileSync(join(dataDir, 'peering.json'), JSON.stringify(opts.peering)) }
  const port = await freePort()
  // AKMESH_BENCH_CPU_PROF=<dir>: the node writes a V8 CPU profile there when it stops.
  const prof = process.env.AKMESH_BENCH_CPU_PROF
  // AKMESH_BENCH_NODE_ARGS: extra node flags for the node process, e.g. "--max-semi-space-size=32".
  const nodeArgs = (process.env.AKMESH_BENCH_NODE_ARGS ?? '').split(' ').filter(a => a !== '')
  const args = [...nodeArgs, ...(prof != null && prof !== '' ? ['--cpu-prof', '--cpu-prof-dir', prof] : []), cli, 'start', '--data', dataDir, '--port', String(port), '--host', '127.0.0.1',
    // An OS-picked mesh port: the default 7071 may be taken by another node on the machine.
    '--mesh-port', '0']
  const level = process.env.AKMESH_BENCH_LOG_LEVEL
  const hasLevel = level != null && level !== ''
  // `opts.config`: more config YAML (e.g. `repositories:`), besides the log level.
  if (hasLevel || opts.config != null) {
    const cfg = join(dir, 'akmesh.yaml')
    writeFileSync(cfg, `${hasLevel ? `log:\n  level: ${level}\n` : ''}${opts.config ?? ''}`)
    args.push('--config', cfg)
  }
  let url: string | undefined
  let token: string | undefined
  const probeUrl = `http://127.0.0.1:${port}/`
  const svc = await startService('akmesh', NODE, args, {
    cwd: dir,
    env: cleanEnv(),
    ready: (line, stream) => {
      if (stream === 'stderr') token ??= /akm_[A-Za-z0-9_-]+/.exec(line)?.[0]
      else if (line.includes('"listening"')) {
        try {
          const entry = JSON.parse(line) as { msg?: string, url?: string }
          if (entry.msg === 'listening' && typeof entry.url === 'string') url = entry.url
        } catch {}
      }
      return url != null && token != null
    },
    // Used only when the log level hides the "listening" line.
    probe: hasLevel
      ? async () => {
        if (token == null) return false
        try { await fetch(probeUrl, { signal: AbortSignal.timeout(1000) }).then(r => r.arrayBuffer()); url = probeUrl.slice(0, -1); return true } catch { return false }
      }
      : undefined,
    timeoutMs: 60_000
  })
  if (url == null || token == null) throw new Error(`akmesh: no url/token\n${svc.recent.join('\n')}`)
  url = url.replace(/\/+$/, '')
  return { name: opts.name ?? 'akmesh', url, registry: `${url}/npm/`, token, dataDir, pid: svc.child.pid, stop: svc.stop }
}
