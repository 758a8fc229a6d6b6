// `akmesh mesh init --from-allowlist`: moves an allowlist mesh to certificates. On one of its
// nodes: creates the root key (as `mesh init` does) and signs a certificate for this node and for
// every peer ID of the peering file's allow list, so each site runs `akmesh mesh join` with its
// file. The allow list stays: while it lists them, peers connect as before; the nodes learn each
// other's certificates at catch-up (`akmesh peers list` then shows them as `member`).
import { mkdir, stat, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { createRootKey, issueCertificate, loadRootKey } from '../mesh/certificates.ts'
import { loadIdentity } from '../mesh/identity.ts'
import { loadPeeringFile } from '../config/peering.ts'

export interface AllowlistMigration {
  dataDir: string
  peeringFile: string
  keyFile: string
  /** The mesh name; must be the peering file's (certificates of another name are refused). */
  name?: string
  /** Site names by peer ID (`--site <peerId>=<name>`); others get `site-<last 8 of the peer ID>`. */
  sites: Map<string, string>
  publish?: string[]
  validForMs: number
  outDir: string
}

export interface IssuedCertificate { peer: string, site: string, file: string, self: boolean }

export interface MigrationResult { mesh: string, root: string, keyFile: string, issued: IssuedCertificate[], expires: number, wildcard: boolean }

export async function issueForAllowlist (m: AllowlistMigration): Promise<MigrationResult> {
  if (!await stat(m.peeringFile).then(() => true, () => false)) throw new Error(`${m.peeringFile} does not exist: --from-allowlist runs on a node of the allowlist mesh (--data, --peering)`)
  const peering = await loadPeeringFile(m.peeringFile, { create: false })
  if (m.name != null && m.name !== peering.mesh) throw new Error(`--name ${m.name}: ${m.peeringFile} names mesh "${peering.mesh}"; certificates must carry the mesh name the nodes check`)
  if (peering.meshRoot != null) throw new Error(`${m.peeringFile} already names mesh root ${peering.meshRoot}: issue certificates with akmesh mesh invite and that root's key`)
  const self = (await loadIdentity(m.dataDir)).peerId.toString()
  const peers = [...new Set(peering.allow.filter(a => a !== '*' && a !== self))]
  for (const peer of m.sites.keys()) {
    if (peer !== self && !peers.includes(peer)) throw new Error(`--site ${peer}=${m.sites.get(peer)}: ${peer} is neither this node nor in the allow list of ${m.peeringFile}`)
  }
  const siteOf = (peer: string): string => m.sites.get(peer) ?? (peer === self ? peering.node.site ?? peering.node.name : `site-${peer.slice(-8)}`)

  const keyFile = resolve(m.keyFile)
  const { root } = await createRootKey(keyFile, peering.mesh)
  const key = await loadRootKey(keyFile)
  await mkdir(m.outDir, { recursive: true })
  const now = Date.now()
  const used = new Set<string>()
  const issued: IssuedCertificate[] = []
  for (const peer of [self, ...peers]) {
    const site = siteOf(peer)
    const bytes = await issueCertificate(key, { mesh: peering.mesh, peer, site, publish: m.publish, validForMs: m.validForMs, now })
    // Several nodes may share a site: the second one's file also names its peer.
    let base = site.replace(/[^A-Za-z0-9._-]/g, '_')
    if (used.has(base)) base = `${base}-${peer.slice(-8)}`
    used.add(base)
    const file = join(resolve(m.outDir), `${base}.cert`)
    await writeFile(file, bytes, { flag: 'wx' }).catch((e: any) => { throw new Error(`${file}: ${e.code === 'EEXIST' ? 'already exists (choose another --out-dir)' : e.message}`) })
    issued.push({ peer, site, file, self: peer === self })
  }
  return { mesh: peering.mesh, root, keyFile, issued, expires: now + m.validForMs, wildcard: peering.allow.includes('*') }
}
