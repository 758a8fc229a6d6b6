// `akmesh peers ...`: edit the peering file (config/peering.ts) and show what the node knows of
// its peers (the connected-peers file the running node writes, and the saved peer profiles).
import type { Command } from 'commander'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import type { Peering } from '../config/peering-schema.ts'
import type { MemberReportView } from '../mesh/member-report.ts'
import type { ConfigFlags } from './config.ts'

interface Helpers {
  withConfig: (cmd: Command) => Command
  withPeering: (cmd: Command) => Command
  resolveConfig: (flags: ConfigFlags) => Promise<{ dataDir: string }>
}

export function registerPeersCommands (program: Command, { withConfig, withPeering, resolveConfig }: Helpers): void {
  const peers = program.command('peers').description('edit the peering file (bootstrap peers and allowlist); a running node applies edits at once')
  withPeering(withConfig(peers.command('add').description('allow a peer and bootstrap to it').argument('<multiaddr>', 'an address ending in /p2p/<peerId>')))
    .option('--allow-only', 'only add the peer ID to the allowlist, do not dial it')
    .action(async (addr: string, opts: ConfigFlags & { peering?: string, allowOnly?: boolean }) => {
      const { editPeeringFile, peeringPath } = await import('../config/peering.ts')
      const { peerIdOfMultiaddr } = await import('../config/peering-schema.ts')
      const file = peeringPath((await resolveConfig(opts)).dataDir, opts.peering)
      const id = peerIdOfMultiaddr(addr)
      if (id == null) throw new Error(`expected a multiaddr ending in /p2p/<peerId>, got "${addr}"`)
      await editPeeringFile(file, (p) => {
        p.allow ??= []
        if (!p.allow.includes(id)) p.allow.push(id)
        if (opts.allowOnly !== true) {
          p.bootstrap ??= []
          if (!p.bootstrap.includes(addr)) p.bootstrap.push(addr)
        }
      })
      console.log(`${opts.allowOnly === true ? 'allowed' : 'added'} ${id} in ${file}`)
    })
  withPeering(withConfig(peers.command('remove').description('remove a peer from the allowlist and the bootstrap list').argument('<peerId>')))
    .action(async (id: string, opts: ConfigFlags & { peering?: string }) => {
      const { editPeeringFile, peeringPath } = await import('../config/peering.ts')
      const { peerIdOfMultiaddr } = await import('../config/peering-schema.ts')
      const file = peeringPath((await resolveConfig(opts)).dataDir, opts.peering)
      let removed = 0
      await editPeeringFile(file, (p) => {
        const before = (p.allow?.length ?? 0) + (p.bootstrap?.length ?? 0)
        p.allow = (p.allow ?? []).filter(a => a !== id)
        p.bootstrap = (p.bootstrap ?? []).filter(a => peerIdOfMultiaddr(a) !== id)
        removed = before - p.allow.length - p.bootstrap.length
      })
      if (removed === 0) throw new Error(`${id} is neither allowed nor a bootstrap peer in ${file}`)
      console.log(`removed ${id} from ${file}`)
    })
  withPeering(withConfig(peers.command('list').description('list the members (site, state, grants, certificate expiry, connected, last manifest seen), bootstrap peers, the allowlist, the peers the running node is connected to now, and what it measured of each peer')))
    .option('--json', 'print JSON')
    .action(async (opts: ConfigFlags & { peering?: string, json?: boolean }) => {
      const { loadPeeringFile, peeringPath } = await import('../config/peering.ts')
      const { PeerProfiles } = await import('../mesh/profiles.ts')
      const { readConnectedPeers } = await import('../mesh/connected-file.ts')
      const { membersText } = await import('./members-text.ts')
      const dataDir = (await resolveConfig(opts)).dataDir
      const p = await loadPeeringFile(peeringPath(dataDir, opts.peering))
      // Saved by the node every 30 s and when it stops (GET /-/mesh/peers has the live figures).
      const saved = new PeerProfiles({ file: join(dataDir, 'peer-profiles.json') })
      await saved.load()
      const profiles = saved.all()
      // Written by the running node on every connect and disconnect (mesh/connected-file.ts).
      const live = await readConnectedPeers(dataDir)
      const connected = live?.peers ?? []
      const { members, warnings } = await memberView(dataDir, p, live == null ? undefined : connected.map(c => c.peerId))
      if (opts.json === true) { console.log(JSON.stringify({ mesh: p.mesh, bootstrap: p.bootstrap, allow: p.allow, running: live != null, connected, profiles, members, warnings }, null, 2)); return }
      console.log(`mesh ${p.mesh}${p.meshRoot != null ? ` (root ${p.meshRoot})` : ''}`)
      for (const l of membersText(members, warnings)) console.log(l)
      for (const b of p.bootstrap) console.log(`bootstrap ${b}`)
      for (const a of p.allow) console.log(`allow     ${a}`)
      if (live == null) console.log('connected (no node is running on this data directory)')
      for (const c of connected) console.log(`connected ${c.peerId} ${c.direction} ${c.addrs.join(' ')}`)
      const mib = (n: number | null): string => n == null ? '-' : (n / 1024 / 1024).toFixed(1)
      for (const f of profiles) {
        const banned = f.bannedUntil != null ? ` banned until ${new Date(f.bannedUntil).toISOString()}` : ''
        console.log(`profile   ${f.peerId} rtt ${f.rttMs == null ? '-' : f.rttMs.toFixed(1)} ms, ${mib(f.throughputBps)} MiB/s, ` +
          `received ${mib(f.bytesReceived)} MiB, sent ${mib(f.bytesSent)} MiB, errors ${f.errors}, bad chunks ${f.badChunks}${banned}`)
      }
    })
}

/** The member table from the data directory alone, as the running node builds it for
 *  /-/mesh/status: certificates the node holds (re-verified), the allow list, the connected-peers
 *  file and the manifest log (read beside the running node, or after it stopped). */
async function memberView (dataDir: string, peering: Peering, connected: string[] | undefined): Promise<MemberReportView> {
  const { Membership } = await import('../mesh/membership.ts')
  const { MemberReport } = await import('../mesh/member-report.ts')
  const { IDENTITY_FILE, loadIdentity } = await import('../mesh/identity.ts')
  // Never create an identity (or a database) just to list.
  const self = existsSync(join(dataDir, IDENTITY_FILE)) ? (await loadIdentity(dataDir)).peerId.toString() : undefined
  const membership = await Membership.open({ dataDir, self: self ?? '', peering: () => peering })
  const dbFile = join(dataDir, 'akmesh.db')
  const db = existsSync(dbFile) ? (await import('../store/db.ts')).openDatabase(dbFile) : undefined
  try {
    const manifests = db == null ? undefined : new (await import('../store/manifests.ts')).ManifestLog(db)
    return await new MemberReport({ dataDir, self, membership, peering: () => peering, connected: () => connected, lastSeen: (origin) => manifests?.lastSeen(origin) }).view()
  } finally { db?.close() }
}
