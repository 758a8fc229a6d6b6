// The one way tests start and stop the real upstream servers they run (nginx, Verdaccio, the
// distribution registry): wait until the server answers, failing at once if it exits; stop it
// with SIGTERM and wait for its exit.
import type { ChildProcess } from 'node:child_process'
import { waitFor } from './node.ts'

/** Resolves once `probe` says the server answers; throws with its output if it exits first. */
export async function untilListening (p: ChildProcess, what: string, probe: () => Promise<boolean>, timeoutMs: number, output: () => string): Promise<void> {
  await waitFor(async () => {
    if (p.exitCode != null) throw new Error(`${what} exited with ${p.exitCode}: ${output().slice(-3000)}`)
    return await probe().catch(() => false)
  }, `${what} listening`, timeoutMs)
}

/** SIGTERM, then waits for the exit; nothing to do for a process that is gone. */
export async function stopProcess (p: ChildProcess | undefined): Promise<void> {
  if (p == null || p.exitCode != null || p.signalCode != null) return
  const exited = new Promise(resolve => p.once('exit', resolve))
  p.kill('SIGTERM')
  await exited
}
