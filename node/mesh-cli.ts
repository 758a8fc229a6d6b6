// `akmesh mesh ...`: the mesh root key and member certificates (mesh/certificates.ts). The root
// key lives outside every data directory (it can stay offline); `invite` runs where it is, and
// the certificate file it writes is carried to the new site, which runs `join`. `revoke` also runs
// where the root key is; the revocation file it writes is given to any one running node
// (`publish-revocation`), which gossips it to the mesh.
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
  const mesh = program.command('mesh').description('mesh membership: the root key, member certificates, revocations')

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

  mesh.command('revoke').description('sign a revocation of a member with the root key: its manifests signed from --at on are refused')
    .argument('<peerId>', 'the revoked member\'s peer ID')
    .requiredOption('--name <mesh>', 'the mesh name')
    .option('--key <file>', 'the mesh root key', 'mesh-root.key')
    .option('--at <time>', 'refuse its manifests signed at or after this ISO time (default: now)')
    .option('--all', 'refuse every manifest it signed, also those before --at')
    .option('-o, --out <file>', 'revocation file (default: <peerId>.revoke)')
    .action(async (peer: string, opts: { name: string, key: string, at?: string, all?: boolean, out?: string }) => {
      const { loadRootKey } = await import('../mesh/certificates.ts')
      const { issueRevocation, decodeRevocation, describeRevocation } = await import('../mesh/revocations.ts')
      const at = opts.at != null ? Date.parse(opts.at) : undefined
      if (at != null && !Number.isSafeInteger(at)) throw new Error(`--at: expected an ISO time such as 2026-01-31T12:00:00Z, got "${opts.at ?? ''}"`)
      const bytes = await issueRevocation(await loadRootKey(resolve(opts.key)), { mesh: opts.name, peer, at, all: opts.all })
      const out = resolve(opts.out ?? `${peer}.revoke`)
      await writeFile(out, bytes)
      const r = decodeRevocation(bytes)
      console.log(`wrote ${out}: ${r.peer} ${describeRevocation(r)}`)
      console.log(`give it to any running node: akmesh mesh publish-revocation ${out} --url http://HOST:PORT --token <admin token>`)
    })

  h.withPeering(h.withConfig(mesh.command('publish-revocation').description('install a revocation on a node: a running one (--url) keeps it and gossips it to the mesh')
    .argument('<file>', 'the file akmesh mesh revoke wrote')))
    .option('--url <url>', 'the running node (default $AKMESH_URL)')
    .option('--token <token>', 'admin token for --url (default $AKMESH_TOKEN)')
    .action(async (file: string, opts: ConfigFlags & { peering?: string, url?: string, token?: string }) => {
      const bytes = new Uint8Array(await readFile(file))
      const url = opts.url ?? process.env.AKMESH_URL
      const token = opts.token ?? process.env.AKMESH_TOKEN
      if (url != null) {
        if (token == null) throw new Error('--url needs an admin token: --token or $AKMESH_TOKEN')
        const res = await fetch(new URL('/-/mesh/revocations', url), { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' }, body: bytes })
        const body = await res.json().catch(() => ({})) as { peer?: string, at?: string, all?: boolean, fresh?: boolean, error?: string, message?: string }
        if (res.status !== 200) throw new Error(`the node at ${url} refused the revocation: ${res.status} ${body.error ?? body.message ?? ''}`)
        console.log(`${url} ${body.fresh === true ? 'keeps' : 'already held'} the revocation of ${body.peer ?? '?'} (${body.all === true ? 'every manifest' : `manifests signed from ${body.at ?? '?'}`}) and gossips it to the mesh`)
        return
      }
      // No running node: kept in the data directory, in force from the node's next start.
      const { dataDir } = await h.resolveConfig(opts)
      const { loadIdentity } = await import('../mesh/identity.ts')
      const { loadPeeringFile, peeringPath } = await import('../config/peering.ts')
      const { Membership } = await import('../mesh/membership.ts')
      const { describeRevocation } = await import('../mesh/revocations.ts')
      const { processesHoldingIndex } = await import('./bundle/running.ts')
      const pids = await processesHoldingIndex(dataDir)
      if (pids.length > 0) throw new Error(`process ${pids.join(', ')} has ${dataDir} open (a running node?): pass --url http://HOST:PORT and --token <admin token> so the node keeps the revocation and gossips it`)
      const peering = await loadPeeringFile(peeringPath(dataDir, opts.peering))
      const membership = await Membership.open({ dataDir, self: (await loadIdentity(dataDir)).peerId.toString(), peering: () => peering })
      const { revocation: r, fresh } = await membership.learnRevocation(bytes)
      console.log(`${fresh ? 'kept' : 'already held'} in ${dataDir}: ${r.peer} ${describeRevocation(r)}; the node spreads it to its peers when it starts (catch-up)`)
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
