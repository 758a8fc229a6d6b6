// `akmesh mesh ...`: the mesh root key and member certificates (mesh/certificates.ts). The root
// key lives outside every data directory (it can stay offline); `invite` runs where it is, and
// the certificate file it writes is carried to the new site, which runs `join`.
import type { Command } from 'commander'
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises'
import { basename, join, resolve } from 'node:path'
import type { ConfigFlags } from './config.ts'

interface Helpers {
  withConfig: (cmd: Command) => Command
  withPeering: (cmd: Command) => Command
  resolveConfig: (flags: ConfigFlags) => Promise<{ dataDir: string }>
}

const list = (v: string): string[] => v.split(',').map(s => s.trim()).filter(s => s !== '')

export function registerMeshCommands (program: Command, h: Helpers): void {
  const mesh = program.command('mesh').description('mesh membership: the root key, member certificates')

  h.withPeering(h.withConfig(mesh.command('init').description('create the mesh root key (keep it offline, away from every node) and print the mesh identity; with --from-allowlist, also certificates for this node and every allow-listed peer')))
    .option('--name <mesh>', 'the mesh name (the peering file\'s "mesh"; required without --from-allowlist)')
    .option('--key <file>', 'where to write the root key', 'mesh-root.key')
    .option('--from-allowlist', 'on a node of an allowlist mesh: issue a certificate for it and for every peer ID in its peering file\'s allow list')
    .option('--site <peerId=name>', 'site name of an allow-listed peer (repeatable; default site-<last 8 of its peer ID>; this node: node.site or node.name)', (v: string, all: string[]) => [...all, v], [] as string[])
    .option('--publish <repos>', 'with --from-allowlist: repositories every member may change, comma separated (default: all)', list)
    .option('--expires <validity>', 'with --from-allowlist: validity: 1y, 90d, 12h, 30m', '1y')
    .option('--out-dir <dir>', 'with --from-allowlist: where the certificates go', 'mesh-certificates')
    .action(async (opts: ConfigFlags & { peering?: string, name?: string, key: string, fromAllowlist?: boolean, site: string[], publish?: string[], expires: string, outDir: string }) => {
      if (opts.fromAllowlist === true) { await initFromAllowlist(opts, h); return }
      if (opts.name == null) throw new Error('mesh init: --name <mesh> is required (or --from-allowlist, which takes it from the peering file)')
      const { createRootKey } = await import('../mesh/certificates.ts')
      const file = resolve(opts.key)
      const id = await createRootKey(file, opts.name)
      console.log(`wrote the mesh root key to ${file} (mode 600); keep it offline: it signs every member certificate`)
      console.log(`mesh ${id.mesh}`)
      console.log(`root ${id.root}`)
    })

  mesh.command('invite').description('sign a member certificate for a peer with the root key')
    .requiredOption('--name <mesh>', 'the mesh name')
    .requiredOption('--peer <peerId>', 'the member\'s peer ID (akmesh id on that node)')
    .requiredOption('--site <name>', 'the member\'s site name')
    .option('--key <file>', 'the mesh root key', 'mesh-root.key')
    .option('--publish <repos>', 'repositories its manifests may change, comma separated (default: all)', list)
    .option('--expires <validity>', 'validity: 1y, 90d, 12h, 30m', '1y')
    .option('-o, --out <file>', 'certificate file (default: <site>.cert)')
    .action(async (opts: { name: string, peer: string, site: string, key: string, publish?: string[], expires: string, out?: string }) => {
      const { issueCertificate, loadRootKey, parseValidity, decodeCertificate } = await import('../mesh/certificates.ts')
      const bytes = await issueCertificate(await loadRootKey(resolve(opts.key)), {
        mesh: opts.name, peer: opts.peer, site: opts.site, publish: opts.publish, validForMs: parseValidity(opts.expires)
      })
      const out = resolve(opts.out ?? `${opts.site}.cert`)
      await writeFile(out, bytes)
      const c = decodeCertificate(bytes)
      console.log(`wrote ${out}: ${c.peer} site ${c.site}, may change ${c.publish.join(', ')}, expires ${new Date(c.expires).toISOString()}`)
      console.log(`on that node: akmesh mesh join ${out}`)
    })

  h.withPeering(h.withConfig(mesh.command('join').description('install this node\'s member certificate and record the mesh root in the peering file')
    .argument('<certificate>', 'the file akmesh mesh invite wrote')))
    .action(async (file: string, opts: ConfigFlags & { peering?: string }) => {
      const { dataDir } = await h.resolveConfig(opts)
      const { decodeCertificate, verifyCertificate } = await import('../mesh/certificates.ts')
      const { loadIdentity } = await import('../mesh/identity.ts')
      const { editPeeringFile, loadPeeringFile, peeringPath } = await import('../config/peering.ts')
      const { OWN_CERTIFICATE_FILE } = await import('../mesh/membership.ts')
      const bytes = new Uint8Array(await readFile(file))
      const claimed = decodeCertificate(bytes)
      const { peerId } = await loadIdentity(dataDir)
      if (claimed.peer !== peerId.toString()) throw new Error(`${file} is the certificate of ${claimed.peer}, not of this node (${peerId.toString()})`)
      const peeringFile = peeringPath(dataDir, opts.peering)
      const current = await loadPeeringFile(peeringFile, { create: true })
      if (current.meshRoot != null && current.meshRoot !== claimed.root) throw new Error(`${file} is signed for mesh root ${claimed.root}, but ${peeringFile} names root ${current.meshRoot}`)
      const cert = await verifyCertificate(bytes, { mesh: claimed.mesh, root: claimed.root })
      await mkdir(dataDir, { recursive: true })
      await copyFile(file, join(dataDir, OWN_CERTIFICATE_FILE))
      await editPeeringFile(peeringFile, (p) => { p.mesh = cert.mesh; p.meshRoot = cert.root; p.node = { ...p.node, name: p.node?.name ?? cert.site, site: cert.site } })
      console.log(`joined mesh ${cert.mesh} (root ${cert.root}) as site ${cert.site}; certificate expires ${new Date(cert.expires).toISOString()}`)
      console.log('next: add a bootstrap address of a member (akmesh peers add <multiaddr>), then start the node')
    })
}

async function initFromAllowlist (opts: ConfigFlags & { peering?: string, name?: string, key: string, site: string[], publish?: string[], expires: string, outDir: string }, h: Helpers): Promise<void> {
  const { dataDir } = await h.resolveConfig(opts)
  const { peeringPath } = await import('../config/peering.ts')
  const { parseValidity } = await import('../mesh/certificates.ts')
  const { issueForAllowlist } = await import('./mesh-migrate.ts')
  const sites = new Map<string, string>()
  for (const s of opts.site) {
    const at = s.indexOf('=')
    if (at <= 0 || at === s.length - 1) throw new Error(`--site: expected <peerId>=<name>, got "${s}"`)
    sites.set(s.slice(0, at), s.slice(at + 1))
  }
  const r = await issueForAllowlist({
    dataDir, peeringFile: peeringPath(dataDir, opts.peering), keyFile: opts.key, name: opts.name, sites, publish: opts.publish, validForMs: parseValidity(opts.expires), outDir: opts.outDir
  })
  console.log(`wrote the mesh root key to ${r.keyFile} (mode 600); move it offline, away from every node: it signs every member certificate`)
  console.log(`mesh ${r.mesh}`)
  console.log(`root ${r.root}`)
  console.log(`issued ${r.issued.length} certificates, valid until ${new Date(r.expires).toISOString()}:`)
  for (const c of r.issued) {
    if (c.self) console.log(`  this node ${c.peer} (site ${c.site}): akmesh mesh join ${c.file} --data ${resolve(dataDir)}`)
    else console.log(`  ${c.peer} (site ${c.site}): copy ${c.file} to that node, then there: akmesh mesh join ${basename(c.file)}`)
  }
  if (r.wildcard) console.log('the allow list holds "*": peers it admits without naming them got no certificate (akmesh mesh invite issues one)')
  console.log('then restart each node. Keep the allow list until every node lists the others as "member" in akmesh peers list; then drop the entries (akmesh peers remove <peerId>).')
}
