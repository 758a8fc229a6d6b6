// Processes, temp dirs and cleanup for the benchmarks. Everything started or created here is
// registered for cleanup, which runs when main() finishes, fails, or the process is interrupted.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

export const BENCH_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..')
export const ROOT = resolve(BENCH_DIR, '..')
export const WORK_DIR = join(BENCH_DIR, '.work')
export const DEPS_DIR = join(BENCH_DIR, '.deps')
/** Node 24 (the project's runtime); the bench itself is started with it. */
export const NODE = process.execPath

type Cleanup = () => unknown
const cleanups: Cleanup[] = []
/** Process groups still alive, killed synchronously if we exit without running cleanups. */
const liveGroups = new Set<number>()

export function onCleanup (fn: Cleanup): void { cleanups.push(fn) }

export async function runCleanups (): Promise<void> {
  while (cleanups.length > 0) {
    const fn = cleanups.pop()!
    try { await fn() } catch (err) { console.error('cleanup failed:', err) }
  }
}

process.on('exit', () => {
  for (const pgid of liveGroups) { try { process.kill(-pgid, 'SIGKILL') } catch {} }
})

/** Runs a benchmark's body; always cleans up, also on SIGINT/SIGTERM. */
export async function main (fn: () => Promise<void>): Promise<void> {
  let interrupted = false
  const onSignal = (sig: NodeJS.Signals) => {
    if (interrupted) process.exit(130)
    interrupted = true
    console.error(`\n${sig}: cleaning up`)
    void runCleanups().finally(() => process.exit(130))
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  try {
    await fn()
  } catch (err) {
    console.error('\nBENCH FAILED:', err instanceof Error ? (err.stack ?? err.message) : err)
    process.exitCode = 1
  } finally {
    await runCleanups()
  }
  // Anything left (keep-alive sockets, timers) must not keep us alive.
  process.exit(process.exitCode ?? 0)
}

/** A fresh temp dir, removed at cleanup. */
export function tempDir (prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `akmesh-bench-${prefix}-`))
  onCleanup(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port
      srv.close(() => resolve(port))
    })
  })
}

export interface RunResult { code: number, stdout: string, stderr: string }

/** Runs a command to completion; throws with its output when it exits non-zero. */
export async function run (cmd: string, args: string[], opts: SpawnOptions & { quiet?: boolean, allowFail?: boolean } = {}): Promise<RunResult> {
  const child = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  if (child.pid != null) liveGroups.add(child.pid)
  let stdout = ''
  let stderr = ''
  child.stdout!.setEncoding('utf8').on('data', (d: string) => { stdout += d })
  child.stderr!.setEncoding('utf8').on('data', (d: string) => { stderr += d })
  const code = await new Promise<number>((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (c, sig) => resolve(c ?? (sig != null ? 128 : 1)))
  })
  if (child.pid != null) liveGroups.delete(child.pid)
  if (code !== 0 && opts.allowFail !== true) {
    throw new Error(`${cmd} ${args.join(' ')} exited ${code}\n--- stdout ---\n${tail(stdout)}\n--- stderr ---\n${tail(stderr)}`)
  }
  return { code, stdout, stderr }
}

function tail (s: string, n = 40): string { return s.split('\n').slice(-n).join('\n') }

export interface Service {
  name: string
  child: ChildProcess
  /** Recent output lines (both streams), for error messages. */
  recent: string[]
  stop (): Promise<void>
}

export interface ServiceOptions extends SpawnOptions {
  /** Called with each output line; resolve readiness by returning true. */
  ready: (line: string, stream: 'stdout' | 'stderr') => boolean
  /** Alternatively, readiness probe polled every 100 ms. */
  probe?: () => Promise<boolean>
  timeoutMs?: number
}

/**
 * Starts a long-running process in its own process group and waits until it is ready.
 * Output is always drained (a full pipe would stall the service). Stopping kills the group.
 */
export async function startService (name: string, cmd: string, args: string[], opts: ServiceOptions): Promise<Service> {
  const { ready, probe, timeoutMs = 60_000, ...spawnOpts } = opts
  const child = spawn(cmd, args, { ...spawnOpts, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  const pid = child.pid
  if (pid == null) throw new Error(`${name}: could not spawn ${cmd}`)
  liveGroups.add(pid)
  const recent: string[] = []
  let exited: string | undefined
  let stopping: Promise<void> | undefined
  const service: Service = {
    name,
    child,
    recent,
    stop: async () => {
      stopping ??= (async () => {
        if (exited == null) {
          const gone = new Promise<void>(resolve => child.once('close', () => resolve()))
          try { process.kill(-pid, 'SIGTERM') } catch {}
          const timer = setTimeout(() => { try { process.kill(-pid, 'SIGKILL') } catch {} }, 5000)
          await gone
          clearTimeout(timer)
        }
        // Children left in the group (if any) go too.
        try { process.kill(-pid, 'SIGKILL') } catch {}
        liveGroups.delete(pid)
      })()
      await stopping
    }
  }
  onCleanup(() => service.stop())

  let resolveReady!: () => void
  let rejectReady!: (e: Error) => void
  const readyP = new Promise<void>((resolve, reject) => { resolveReady = resolve; rejectReady = reject })
  const watch = (stream: NodeJS.ReadableStream, kind: 'stdout' | 'stderr') => {
    createInterface({ input: stream, crlfDelay: Infinity }).on('line', line => {
      recent.push(`[${kind}] ${line}`)
      if (recent.length > 60) recent.shift()
      try { if (ready(line, kind)) resolveReady() } catch (err) { rejectReady(err as Error) }
    })
  }
  watch(child.stdout!, 'stdout')
  watch(child.stderr!, 'stderr')
  child.once('error', err => rejectReady(err))
  child.once('close', (code, sig) => {
    exited = `exited with ${code ?? sig}`
    liveGroups.delete(pid)
    // Let the line readers flush before reporting.
    setTimeout(() => rejectReady(new Error(`${name} ${exited}\n${recent.join('\n')}`)), 50)
  })
  let polling = probe != null
  if (probe != null) {
    void (async () => {
      while (polling) {
        try { if (await probe()) { resolveReady(); return } } catch {}
        await new Promise(resolve => setTimeout(resolve, 100))
      }
    })()
  }
  let timer: NodeJS.Timeout | undefined
  try {
    await Promise.race([
      readyP,
      new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`${name} not ready after ${timeoutMs} ms\n${recent.join('\n')}`)), timeoutMs)
      })
    ])
  } finally {
    polling = false
    clearTimeout(timer)
  }
  return service
}

/** True if something accepts HTTP on the URL (any status). */
export async function httpUp (url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1000) })
    await res.arrayBuffer()
    return true
  } catch { return false }
}

/** CPU time (user + system) a process has used so far, ms; clock ticks are 100 Hz on Linux. */
export function cpuMs (pid: number | undefined): number {
  if (pid == null) return NaN
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
    return (Number(fields[11]) + Number(fields[12])) * 10
  } catch { return NaN }
}
