// Generates what docker-compose.mesh.yml mounts: one directory per site with a data dir holding
// the node's identity (Ed25519 key, `akmesh id`), an admin token (`akmesh token create`, written to
// admin-token beside the data dir) and the peering file that allows and bootstraps to the other
// sites by their peer IDs. A peer ID is derived from a private key, so identities cannot be fixed
// in the repository: they are created here, on the host, before the first `docker-compose up`.
//
//   node_modules/.bin/node config/compose/generate.ts [--out DIR]
//
// Writes, for each site S in SITES (the compose services):
//   DIR/S/data/identity.key        the node's key (mode 0600): keep it, it IS the node's identity
//   DIR/S/data/peering.json        compose addresses: listen /ip4/0.0.0.0/tcp/7071, bootstrap
//                                  /dns4/<other site>/tcp/7071/p2p/<its peer ID> (compose DNS)
//   DIR/S/data/akmesh.db           the index, holding the admin token's hash
//   DIR/S/admin-token              the admin token (mode 0600)
//   DIR/S/peering.local.json       the same identities and allowlist with 127.0.0.1 addresses, to
//                                  run the three nodes without docker (config/compose/check.ts)
// Re-running keeps existing identities and tokens and rewrites the peering files. DIR defaults to
// config/compose/sites (gitignored).
import { execFileSync } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export const SITES = ['site-a', 'site-b', 'site-c'] as const
export const MESH = 'compose'
/** Mesh TCP port inside each container (not published on the host). */
export const MESH_PORT = 7071
/** Without docker (peering.local.json): site i listens on 127.0.0.1:LOCAL_MESH_PORT + i. */
export const LOCAL_MESH_PORT = 17171

const HERE = dirname(fileURLToPath(import.meta.url))
const ROOT = resolve(HERE, '../..')
const CLI = join(ROOT, 'node/cli.ts')

export interface GeneratedSite { name: string, dir: string, dataDir: string, peerId: string, token: string, localPeering: string }

function akmesh (args: string[]): string {
  const env = { ...process.env }
  for (const k of Object.keys(env)) if (k.startsWith('AKMESH_')) delete env[k]
  return execFileSync(process.execPath, [CLI, ...args], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
}

function writePrivate (file: string, text: string): void {
  writeFileSync(file, text, { mode: 0o600 })
  chmodSync(file, 0o600)
}

export function generate (out: string): GeneratedSite[] {
  const sites = SITES.map((name, i) => {
    const dir = join(out, name)
    const dataDir = join(dir, 'data')
    mkdirSync(dataDir, { recursive: true })
    // Creates identity.key if missing, else prints the existing identity's peer ID. (It also
    // writes a default peering.json if there is none; replaced below.)
    const { peerId } = JSON.parse(akmesh(['id', '--data', dataDir, '--json'])) as { peerId: string }
    const tokenFile = join(dir, 'admin-token')
    let token: string
    if (existsSync(tokenFile)) {
      token = readFileSync(tokenFile, 'utf8').trim()
    } else {
      // A token in the index before the first start: the node then skips its first-run token.
      token = (JSON.parse(akmesh(['token', 'create', '--data', dataDir, '--name', 'admin', '--scope', 'admin', '--repo', '*', '--description', `${name} admin (config/compose/generate.ts)`, '--json'])) as { token: string }).token
      writePrivate(tokenFile, token + '\n')
    }
    return { name, i, dir, dataDir, peerId, token, localPeering: join(dir, 'peering.local.json') }
  })
  const allow = sites.map(s => s.peerId)
  for (const s of sites) {
    const others = sites.filter(o => o !== s)
    const common = { mesh: MESH, node: { name: s.name, site: s.name }, allow, replication: { '*': 'on-demand' }, uploadBandwidth: null }
    writeFileSync(join(s.dataDir, 'peering.json'), JSON.stringify({
      ...common,
      listen: [`/ip4/0.0.0.0/tcp/${MESH_PORT}`],
      bootstrap: others.map(o => `/dns4/${o.name}/tcp/${MESH_PORT}/p2p/${o.peerId}`)
    }, null, 2) + '\n')
    writeFileSync(s.localPeering, JSON.stringify({
      ...common,
      listen: [`/ip4/127.0.0.1/tcp/${LOCAL_MESH_PORT + s.i}`],
      // dns4/localhost: the same resolution path as the compose service names.
      bootstrap: others.map(o => `/dns4/localhost/tcp/${LOCAL_MESH_PORT + o.i}/p2p/${o.peerId}`)
    }, null, 2) + '\n')
  }
  return sites.map(({ i: _i, ...s }) => s)
}

if (process.argv[1] != null && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const at = process.argv.indexOf('--out')
  const out = resolve(at > 0 && process.argv[at + 1] != null ? process.argv[at + 1]! : join(HERE, 'sites'))
  const sites = generate(out)
  for (const s of sites) console.log(`${s.name}  peer ${s.peerId}  data ${s.dataDir}  admin token in ${join(s.dir, 'admin-token')}`)
  console.log(`\nmesh "${MESH}": every site allows all ${sites.length} peer IDs and bootstraps to the other ${sites.length - 1}.`)
  console.log('Next: docker-compose -f docker-compose.mesh.yml up')
}
