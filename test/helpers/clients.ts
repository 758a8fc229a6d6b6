// Real package-manager clients. Missing client: under CI=true the test FAILS (CI must install
// it); on a developer machine it skips with a loud message.
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import type { ExecutionContext } from 'ava'
import { ROOT } from './node.ts'

const execFileP = promisify(execFile)

/** Resolves a client binary: the project's node_modules/.bin first, then PATH. */
export async function findClient (name: string): Promise<string | undefined> {
  const local = join(ROOT, 'node_modules/.bin', name)
  if (existsSync(local)) return local
  try {
    const r = await execFileP('sh', ['-c', `command -v ${name}`])
    return r.stdout.trim() || undefined
  } catch { return undefined }
}

/** Returns the client's path, or undefined after marking the test failed (CI) or skipped (laptop). */
export async function requireClient (t: ExecutionContext, name: string): Promise<string | undefined> {
  const path = await findClient(name)
  if (path != null) return path
  const message = `real client "${name}" is not installed`
  if (process.env.CI === 'true') {
    t.fail(`${message}; CI must install it (.ci/run)`)
  } else {
    console.warn(`\n!!! SKIPPING: ${message}. Install it to run this test; under CI=true this fails. !!!\n`)
    t.pass()
  }
  return undefined
}

export interface RunResult { code: number, stdout: string, stderr: string }

/** Runs a command, never throws; `input` is written to stdin. */
export async function run (cmd: string, args: string[], opts: { cwd?: string, env?: Record<string, string | undefined>, input?: string, timeoutMs?: number } = {}): Promise<RunResult> {
  const { spawn } = await import('node:child_process')
  return await new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (b) => { stdout += b })
    child.stderr.on('data', (b) => { stderr += b })
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 300_000)
    child.on('close', (code) => { clearTimeout(timer); resolve({ code: code ?? -1, stdout, stderr }) })
    child.stdin.end(opts.input ?? '')
  })
}
