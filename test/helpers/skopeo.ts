// skopeo against test nodes: its own auth file and a registries.conf marking each node insecure
// (plain HTTP), so nothing from the user's configuration leaks in.
import type { ExecutionContext } from 'ava'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { run } from './clients.ts'
import { makeTempDir, type TestNode } from './node.ts'

export async function skopeoEnv (t: ExecutionContext, nodes: TestNode[]) {
  const dir = await makeTempDir(t, 'akmesh-oci-client-')
  const authFile = join(dir, 'auth.json')
  await writeFile(authFile, '{}')
  const registries = nodes.map(n => `[[registry]]\nlocation = "${new URL(n.url).host}"\ninsecure = true\n`).join('')
  await writeFile(join(dir, 'registries.conf'), `unqualified-search-registries = []\n${registries}`)
  const env = { REGISTRY_AUTH_FILE: authFile, CONTAINERS_REGISTRIES_CONF: join(dir, 'registries.conf') }
  return { dir, skopeo: async (args: string[]) => await run('skopeo', args, { env }) }
}
