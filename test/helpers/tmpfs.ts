// A small tmpfs to run a node's data dir on, so a test can fill the disk for real. Root only (CI
// is root): on a non-root machine the test skips loudly, under CI=true it fails (as netns.ts).
import { execFile } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import type { ExecutionContext } from 'ava'

const execFileP = promisify(execFile)

export interface Tmpfs {
  dir: string
  /** `mount -o remount,size=<mib>m`: grows (or shrinks) the file system in place. */
  resize (mib: number): Promise<void>
  unmount (): Promise<void>
}

async function sh (cmd: string, args: string[]): Promise<void> {
  try { await execFileP(cmd, args) } catch (e: any) { throw new Error(`${cmd} ${args.join(' ')}: ${(e.stderr as string | undefined)?.trim() || e.message}`) }
}

function refuse (t: ExecutionContext, why: string): undefined {
  if (process.env.CI === 'true') {
    t.fail(`${why}; CI runs as root, so this must not happen there`)
  } else {
    const msg = `SKIPPING tmpfs test: ${why}. Under CI=true this fails.`
    console.warn(`\n!!! ${msg} !!!\n`)
    t.log(msg)
    t.pass()
  }
  return undefined
}

/** Mounts a tmpfs of `mib` MiB; unmounted in teardown. Undefined (test failed or skipped) if this
 *  machine cannot. */
export async function mountTmpfs (t: ExecutionContext, mib: number): Promise<Tmpfs | undefined> {
  if (process.platform !== 'linux') return refuse(t, `tmpfs needs Linux (this is ${process.platform})`)
  if (process.getuid?.() !== 0) return refuse(t, 'mounting a tmpfs needs root (run the suite as root, as CI does)')
  const dir = await mkdtemp(join(tmpdir(), 'akmesh-tmpfs-'))
  try {
    await sh('mount', ['-t', 'tmpfs', '-o', `size=${mib}m`, 'tmpfs', dir])
  } catch (err) {
    await rm(dir, { recursive: true, force: true })
    return refuse(t, (err as Error).message)
  }
  let mounted = true
  const fs: Tmpfs = {
    dir,
    resize: async (size) => { await sh('mount', ['-o', `remount,size=${size}m`, dir]) },
    unmount: async () => {
      if (!mounted) return
      mounted = false
      // Lazy: a process still holding a file there (a node being killed) must not keep it mounted.
      await sh('umount', ['-l', dir]).catch(() => {})
      await rm(dir, { recursive: true, force: true })
    }
  }
  t.teardown(async () => { await fs.unmount() })
  return fs
}
