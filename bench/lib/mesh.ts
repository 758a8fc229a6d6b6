// Meshed akmesh nodes for the benchmarks: identities created first (`akmesh id`), so every peering
// file can allow every peer before any node starts; nodes listen on ports the OS picks, and the
// bootstrap lists are written into the (watched) peering files once every address is known. Each
// node is its own OS process (own process group), stopped at cleanup.
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { create as tarCreate } from 'tar'
import { writeFileAtomic } from '../../config/atomic-file.ts'
import { AKMESH_CLI } from './akmesh.ts'
import { freePort, NODE, ROOT, run, startService, type Service } from './proc.ts'

export interface MeshNodePlan {
  /** Index in the bench's node list (names the node in reports). */
  index: number
  dataDir: string
  peerId: string
}

export interface MeshNode extends MeshNodePlan {
  url: string
  /** First-run admin token (read from the node's stderr). */
  token: string
  /** `/ip4/127.0.0.1/tcp/<port>/p2p/<peerId>`: what other nodes bootstrap to. */
  meshAddr: string
  service: Service
  stop (): Promise<void>
}

function cleanEnv (): NodeJS.ProcessEnv {
  const env = { ...process.env }
  for (const k of Object.keys(env)) if (k.startsWith('AKMESH_')) delete env[k]
  return env
}

/** Creates the node's identity in `dataDir` (`akmesh id`), so peers can allowlist it. */
export async function planMeshNode (index: number, dataDir: string): Promise<MeshNodePlan> {
  mkdirSync(dataDir, { recursive: true })
  const r = await run(NODE, [AKMESH_CLI, 'id', '--data', dataDir, '--json'], { quiet: true, env: cleanEnv() })
  return { index, dataDir, peerId: (JSON.parse(r.stdout) as { peerId: string }).peerId }
}

/**
 * Writes `<dataDir>/peering.json` atomically (a running node watches it and applies allowlist and
 * bootstrap edits at once). Listens on 127.0.0.1, on a port the OS picks unless `listen` is given:
 * ports chosen in advance race with whatever else starts on a shared machine.
 */
export async function writePeering (plan: MeshNodePlan, content: Record<string, unknown>): Promise<string> {
  const file = join(plan.dataDir, 'peering.json')
  await writeFileAtomic(file, JSON.stringify({ listen: ['/ip4/127.0.0.1/tcp/0'], ...content }, null, 2) + '\n')
  return file
}

/**
 * Starts a planned node (its peering file written). `logLevel` goes into a config file (the
 * default, info, logs one JSON line per request: with many nodes polled hard the bench would spend
 * its CPU reading logs). Readiness is /readyz answering 200 and the admin token seen on stderr
 * (neither depends on the log level); the mesh address comes from the admin API. The HTTP port
 * is picked just before the start and picked again if another process took it meanwhile.
 */
export async function startMeshNode (plan: MeshNodePlan, opts: { logLevel?: string, timeoutMs?: number, config?: string } = {}): Promise<MeshNode> {
  const extra: string[] = []
  const logLevel = opts.logLevel != null && opts.logLevel !== '' ? `log:\n  level: ${opts.logLevel}\n` : ''
  // `config`: more YAML (repositories) for the node's config file.
  if (logLevel !== '' || opts.config != null) {
    const cfg = join(plan.dataDir, '..', `node${plan.index}.yaml`)
    writeFileSync(cfg, logLevel + (opts.config ?? ''))
    extra.push('--config', cfg)
  }
  for (let attempt = 1; ; attempt++) {
    const port = await freePort()
    const url = `http://127.0.0.1:${port}`
    let token: string | undefined
    let service: Service
    try {
      service = await startService(`akmesh node ${plan.index}`, NODE, [AKMESH_CLI, 'start', '--data', plan.dataDir, '--host', '127.0.0.1', '--port', String(port), ...extra], {
        env: cleanEnv(),
        ready: (line, stream) => {
          if (stream === 'stderr') token ??= /akm_[A-Za-z0-9_-]{43}/.exec(line)?.[0]
          return false
        },
        probe: async () => {
          if (token == null) return false
          const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2000) })
          await res.arrayBuffer()
          return res.status === 200
        },
        // Several nodes loading the libp2p stack at once on 2 shared cores is slow.
        timeoutMs: opts.timeoutMs ?? 120_000
      })
    } catch (err) {
      if (attempt < 4 && /EADDRINUSE/.test(String((err as Error).message))) continue
      throw err
    }
    const res = await fetch(`${url}/-/mesh/peers`, { headers: { authorization: `Bearer ${token!}` } })
    if (res.status !== 200) throw new Error(`node ${plan.index}: GET /-/mesh/peers -> ${res.status} ${await res.text()}`)
    const { multiaddrs } = await res.json() as { multiaddrs: string[] }
    const meshAddr = multiaddrs.find(a => a.startsWith('/ip4/127.0.0.1/tcp/'))
    if (meshAddr == null) throw new Error(`node ${plan.index}: no 127.0.0.1 mesh address in ${JSON.stringify(multiaddrs)}`)
    return { ...plan, url, token: token!, meshAddr: meshAddr.includes('/p2p/') ? meshAddr : `${meshAddr}/p2p/${plan.peerId}`, service, stop: service.stop }
  }
}

/** Peer IDs the node is connected to (admin API). */
export async function connectedPeers (node: MeshNode): Promise<string[]> {
  const res = await fetch(`${node.url}/-/mesh/peers`, { headers: { authorization: `Bearer ${node.token}` } })
  if (res.status !== 200) throw new Error(`node ${node.index}: GET /-/mesh/peers -> ${res.status} ${await res.text()}`)
  return (await res.json() as { peers: Array<{ peerId: string }> }).peers.map(p => p.peerId)
}

/** A minimal npm package tarball (package/package.json, package/index.js), built in `dir`. */
export async function tinyTarball (dir: string, name: string, version: string): Promise<Buffer> {
  const root = join(dir, `${name.replace('/', '+')}-${version}`)
  mkdirSync(join(root, 'package'), { recursive: true })
  writeFileSync(join(root, 'package', 'package.json'), JSON.stringify({ name, version, main: 'index.js' }))
  writeFileSync(join(root, 'package', 'index.js'), `module.exports = ${JSON.stringify(version)}\n`)
  const chunks: Buffer[] = []
  for await (const c of tarCreate({ gzip: true, cwd: root, portable: true }, ['package'])) chunks.push(c as Buffer)
  return Buffer.concat(chunks)
}

/** p-th percentile (0..100), nearest-rank on the sorted values. */
export function percentile (xs: number[], p: number): number {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p / 100 * s.length) - 1))]!
}

/**
 * When each manifest for `name` entered the node's manifest log (`manifests.received_at`, the
 * node's clock, ms): version → ms. Read in a child process after the run, so the bench's own
 * process holds no SQLite handle and the timing loop does not touch the databases.
 */
export async function manifestTimes (dataDir: string, name: string): Promise<Map<string, number>> {
  const script = `const { default: Database } = await import(${JSON.stringify(join(ROOT, 'node_modules/better-sqlite3/lib/index.js'))})
    const db = new Database(${JSON.stringify(join(dataDir, 'akmesh.db'))}, { readonly: true, fileMustExist: true })
    db.pragma('busy_timeout = 5000')
    process.stdout.write(JSON.stringify(db.prepare("SELECT version, received_at AS at FROM manifests WHERE kind = 'publish' AND name = ?").all(${JSON.stringify(name)})))
    db.close()`
  const r = await run(NODE, ['--input-type=module', '-e', script], { quiet: true })
  return new Map((JSON.parse(r.stdout) as Array<{ version: string, at: number }>).map(x => [x.version, x.at]))
}
