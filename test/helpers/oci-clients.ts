// skopeo and podman pointed at plain-HTTP registries on 127.0.0.1 (a node, an upstream registry),
// each test with its own empty auth file, registries.conf and podman storage.
import type { ExecutionContext } from 'ava'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { run, type RunResult } from './clients.ts'
import { makeTempDir } from './node.ts'

export interface OciClients {
  /** host:port of the first registry given (the node under test). */
  host: string
  skopeo: (args: string[]) => Promise<RunResult>
  podman: (args: string[]) => Promise<RunResult>
}

/** Clients that speak plain HTTP to `hosts` (host:port). */
export async function ociClients (t: ExecutionContext, hosts: string[]): Promise<OciClients> {
  const dir = await makeTempDir(t, 'akmesh-oci-client-')
  await writeFile(join(dir, 'auth.json'), '{}')
  const insecure = hosts.map(h => `[[registry]]\nlocation = "${h}"\ninsecure = true\n`).join('')
  await writeFile(join(dir, 'registries.conf'), `unqualified-search-registries = []\n${insecure}`)
  const env = { REGISTRY_AUTH_FILE: join(dir, 'auth.json'), CONTAINERS_REGISTRIES_CONF: join(dir, 'registries.conf') }
  const podmanArgs = ['--root', join(dir, 'root'), '--runroot', join(dir, 'runroot'), '--storage-driver', 'vfs', '--events-backend', 'none', '--cgroup-manager', 'cgroupfs']
  return {
    host: hosts[0],
    skopeo: async (args: string[]) => await run('skopeo', args, { env }),
    podman: async (args: string[]) => await run('podman', [...podmanArgs, ...args], { env })
  }
}

export function ok (t: ExecutionContext, r: RunResult, what: string): void {
  t.is(r.code, 0, `${what} failed:\n${r.stderr}\n${r.stdout}`)
}
