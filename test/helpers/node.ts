// Starts a real akmesh node as a separate OS process on an ephemeral port, on a temp data dir.
import { spawn, type ChildProcess, execFile } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import type { ExecutionContext } from 'ava'

export const ROOT = resolve(import.meta.dirname, '../..')
export const CLI = join(ROOT, 'node/cli.ts')
const execFileP = promisify(execFile)

export interface TestNode {
  url: string
  dataDir: string
  adminToken: string
  proc: ChildProcess
  /** stdout+stderr so far, for assertions and failure messages. */
  output (): string
  pid (): number
  stop (): Promise<void>
  kill9 (): Promise<void>
  /** Starts the node again on the same data dir and port. */
  restart (): Promise<void>
  /** The node's mesh peer ID and listen addresses (from its "mesh listening" log line). */
  peerId: string
  multiaddrs: string[]
  /** The 127.0.0.1 mesh address, ending in /p2p/<peerId>: what other test nodes dial. */
  meshAddr: string
  /** Where the node's peering file is. */
  peeringFile: string
}

export interface TestNodeOptions {
  /** YAML config text; dataDir/port/host are overridden by flags. */
  config?: string
  dataDir?: string
  env?: Record<string, string>
  /** Peering file content (object or raw text) written to <dataDir>/peering.json before the
   *  first start; an object without `listen` listens on 127.0.0.1. */
  peering?: Record<string, unknown> | string
  /** Mesh TCP port (--mesh-port); default 0, an ephemeral port. */
  meshPort?: number
  /** More `akmesh start` arguments. */
  args?: string[]
  /** Run the node inside this network namespace (`ip netns exec <netns> node ...`; root only). The
   *  pid stays the node's own (ip execs the command), so kill9 is a real SIGKILL of the node. */
  netns?: string
  /** --host (default 127.0.0.1). */
  host?: string
  /** HTTP port of the first start (default 0, an ephemeral port). */
  port?: number
  /** Host the test reaches the node at (default: the one the node logs, 127.0.0.1 for 0.0.0.0). */
  urlHost?: string
  /** The IPv4 address whose mesh listen address `meshAddr` returns (default 127.0.0.1). */
  meshHost?: string
}

export async function makeTempDir (t: ExecutionContext, prefix = 'akmesh-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  return dir
}

export async function startTestNode (t: ExecutionContext, opts: TestNodeOptions = {}): Promise<TestNode> {
  const dataDir = opts.dataDir ?? await makeTempDir(t, 'akmesh-node-')
  let configFile: string | undefined
  if (opts.config != null) {
    configFile = join(dataDir, '..', `${dataDir.split('/').pop()}.yaml`)
    await writeFile(configFile, opts.config)
  }
  const peeringFile = join(dataDir, 'peering.json')
  if (opts.peering != null) {
    await writeFile(peeringFile, typeof opts.peering === 'string'
      ? opts.peering
      : JSON.stringify({ listen: ['/ip4/127.0.0.1/tcp/0'], ...opts.peering }, null, 2))
  }
  let port = opts.port ?? 0
  let proc!: ChildProcess
  let log = ''
  let url = ''
  let adminToken = ''
  let mesh: { peerId: string, multiaddrs: string[] } = { peerId: '', multiaddrs: [] }

  const launch = async (): Promise<void> => {
    const args = [CLI, 'start', '--data', dataDir, '--host', opts.host ?? '127.0.0.1', '--port', String(port), '--mesh-port', String(opts.meshPort ?? 0), ...(opts.args ?? [])]
    if (configFile != null) args.push('--config', configFile)
    const from = log.length
    const [cmd, argv] = opts.netns != null ? ['ip', ['netns', 'exec', opts.netns, process.execPath, ...args]] : [process.execPath, args]
    proc = spawn(cmd, argv, { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] })
    await new Promise<void>((resolve, reject) => {
      // A node that never says it is listening (or a config that silences the log) must not be
      // left running: its open pipes would keep the test worker alive.
      // 90 s: with the libp2p stack loaded, a dozen nodes starting at once on 2 shared cores
      // took over 30 s (load average ~30).
      const timer = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error(`node did not start within 90 s:\n${log}`)) }, 90_000)
      const onData = (b: Buffer) => {
        log += b.toString()
        const token = /akm_[A-Za-z0-9_-]{43}/.exec(log)
        if (token != null && adminToken === '') adminToken = token[0]
        const m = /"url":"(http:\/\/[^"]+)"[^\n]*"msg":"listening"/.exec(log.slice(from))
        if (m != null) {
          url = m[1]
          const line = log.slice(from).split('\n').find(l => l.includes('"msg":"mesh listening"'))
          if (line != null) mesh = JSON.parse(line)
          clearTimeout(timer)
          resolve()
        }
      }
      proc.stdout!.on('data', onData)
      proc.stderr!.on('data', onData)
      proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`node exited with ${code} before listening:\n${log}`)) })
    })
    port = Number(new URL(url).port)
    if (opts.urlHost != null) url = `http://${opts.urlHost}:${port}`
  }
  await launch()

  const node: TestNode = {
    get url () { return url },
    dataDir,
    get adminToken () { return adminToken },
    get proc () { return proc },
    output: () => log,
    pid: () => proc.pid as number,
    stop: async () => {
      if (proc.exitCode != null || proc.signalCode != null) return
      const exited = new Promise(resolve => proc.once('exit', resolve))
      proc.kill('SIGTERM')
      await exited
    },
    kill9: async () => {
      if (proc.exitCode != null || proc.signalCode != null) return
      const exited = new Promise(resolve => proc.once('exit', resolve))
      proc.kill('SIGKILL')
      await exited
    },
    restart: async () => { await node.stop(); await launch() },
    get peerId () { return mesh.peerId },
    get multiaddrs () { return mesh.multiaddrs },
    get meshAddr () {
      const host = opts.meshHost ?? '127.0.0.1'
      const addr = mesh.multiaddrs.find(a => a.startsWith(`/ip4/${host}/tcp/`))
      if (addr == null) throw new Error(`no ${host} mesh address in ${JSON.stringify(mesh.multiaddrs)}`)
      return addr
    },
    peeringFile
  }
  t.teardown(async () => { await node.kill9() })
  return node
}

/** Runs the akmesh CLI against a data dir; resolves with exit code and output, never throws. */
export async function akmesh (args: string[], opts: { env?: Record<string, string> } = {}): Promise<{ code: number, stdout: string, stderr: string }> {
  try {
    const r = await execFileP(process.execPath, [CLI, ...args], { env: { ...process.env, ...opts.env }, maxBuffer: 64 * 1024 * 1024 })
    return { code: 0, stdout: r.stdout, stderr: r.stderr }
  } catch (e: any) {
    return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' }
  }
}

/** Polls `check` until it returns a truthy value or the deadline passes. */
export async function waitFor<T> (check: () => Promise<T> | T, what: string, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await check()
    if (v) return v
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}

/** Peak and current resident memory of a process, from /proc (kB → bytes). */
export async function processMemory (pid: number): Promise<{ rss: number, hwm: number }> {
  const { readFile } = await import('node:fs/promises')
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? 0) * 1024
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') }
}
