#!/usr/bin/env node
// akmesh command line. Commands that touch tokens, users or the store open the data directory
// directly (SQLite allows it while the node runs), so they work at 3 a.m. without the HTTP API.
import './compile-cache.ts'
import { Command, InvalidArgumentError } from 'commander'
import { existsSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import bytesParse from 'bytes'
import { CONFIG_TEMPLATE } from '../config/template.ts'
import { SCOPES, type Scope } from '../store/accounts.ts'
import type { ConfigFlags } from './config.ts'
import { registerMeshCommands } from './mesh-cli.ts'
import { registerPeersCommands } from './peers-cli.ts'
import { registerCacheCommands } from './cache-cli.ts'

// The server, the formats and the config schema load only when a command needs them: --help
// answers in ~0.1 s instead of ~0.6 s.
const resolveConfig = async (flags: ConfigFlags) => await (await import('./config.ts')).resolveConfig(flags)
const openStorage = async (dataDir: string) => await (await import('./storage.ts')).openStorage(dataDir)

const program = new Command()
program.name('akmesh').description('Peer-to-peer artifact registry node').showHelpAfterError()

const withConfig = (cmd: Command) => cmd
  .option('-c, --config <file>', 'config file (default: $AKMESH_CONFIG or ./akmesh.yaml, else built-in defaults)')
  .option('-d, --data <dir>', 'data directory (overrides the config; default $AKMESH_DATA or ./data)')

const scopeList = (v: string): Scope[] => {
  const scopes = v.split(',').map(s => s.trim())
  for (const s of scopes) if (!(SCOPES as readonly string[]).includes(s)) throw new InvalidArgumentError(`expected ${SCOPES.join(', ')}; got "${s}"`)
  return scopes as Scope[]
}
const repoList = (v: string): string[] => v.split(',').map(s => s.trim()).filter(s => s !== '')

const withPeering = (cmd: Command) => cmd
  .option('--peering <file>', 'peering file (default: $AKMESH_PEERING or <data>/peering.json)')

const meshPort = (v: string | undefined): number | undefined => {
  if (v == null) return undefined
  const n = Number(v)
  if (v === '' || !Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError(`mesh port: expected an integer 0-65535, got "${v}"`)
  return n
}

/** Errors of one libp2p stream (its state, a reset, a timeout), not of the node. */
const STREAM_ERRORS = new Set(['StreamStateError', 'StreamResetError', 'StreamClosedError', 'StreamAbortedError', 'UnexpectedEOFError', 'AbortError', 'TimeoutError'])

withPeering(withConfig(program.command('start').description('run the node (HTTP registry and mesh)')))
  .option('-p, --port <port>', 'HTTP port (default 7070, or $AKMESH_PORT)')
  .option('--host <address>', 'address to listen on (default 0.0.0.0)')
  .option('--mesh-port <port>', 'TCP port of the mesh listen addresses, overriding the peering file (0: any; or $AKMESH_MESH_PORT)')
  .action(async (flags: ConfigFlags & { peering?: string, meshPort?: string }) => {
    const config = await resolveConfig(flags)
    const { createLogger } = await import('./log.ts')
    const { startNode } = await import('./server.ts')
    const log = createLogger(config.log.level)
    // libp2p leaves some stream promises unawaited (e.g. @libp2p/ping closes its stream in a
    // `finally` without awaiting): a peer hanging up at the wrong moment rejects one of them. Such
    // stream-state errors concern one stream, not the node: logged, and the node keeps serving.
    // Anything else unhandled is a bug: logged, and the process exits as Node would.
    process.on('unhandledRejection', (err: any) => {
      if (STREAM_ERRORS.has(err?.name)) { log.warn({ error: err?.message, name: err?.name }, 'a libp2p stream failed with nobody awaiting it'); return }
      log.fatal({ err }, 'unhandled rejection')
      process.exit(1)
    })
    const node = await startNode(config, log, { peeringFile: flags.peering, listenPort: meshPort(flags.meshPort ?? process.env.AKMESH_MESH_PORT) })
    const stop = (signal: string) => {
      log.info({ signal }, 'shutting down')
      void node.close().then(() => process.exit(0))
      setTimeout(() => process.exit(1), 10_000).unref()
    }
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
  })

program.command('init')
  .description('write a commented default config file')
  .argument('[file]', 'where to write it', 'akmesh.yaml')
  .option('-f, --force', 'overwrite an existing file')
  .action(async (file: string, opts: { force?: boolean }) => {
    if (existsSync(file) && opts.force !== true) throw new Error(`${file} already exists (use --force to overwrite)`)
    await writeFile(file, CONFIG_TEMPLATE)
    console.log(`wrote ${file}; start the node with: akmesh start --config ${file}`)
  })

withPeering(withConfig(program.command('id').description('print this node\'s peer ID and mesh listen addresses (creates the identity if missing)')))
  .option('--json', 'print JSON')
  .action(async (opts: ConfigFlags & { peering?: string, json?: boolean }) => {
    const { dataDir } = await resolveConfig(opts)
    const { loadIdentity } = await import('../mesh/identity.ts')
    const { loadPeeringFile, peeringPath } = await import('../config/peering.ts')
    const { peerId } = await loadIdentity(dataDir)
    const peering = await loadPeeringFile(peeringPath(dataDir, opts.peering))
    const listen = peering.listen.map(a => `${a}/p2p/${peerId.toString()}`)
    if (opts.json === true) { console.log(JSON.stringify({ peerId: peerId.toString(), listen, mesh: peering.mesh }, null, 2)); return }
    console.log(peerId.toString())
    for (const a of listen) console.log(a)
  })

const token = program.command('token').description('manage bearer tokens')
withConfig(token.command('create').description('create a token and print it (shown once)'))
  .requiredOption('-n, --name <owner>', 'who or what the token is for')
  .option('-s, --scope <scopes>', `comma-separated: ${SCOPES.join(', ')}`, scopeList, ['read'] as Scope[])
  .option('-r, --repo <repos>', 'comma-separated repositories, or * for all', repoList, ['*'])
  .option('--description <text>', 'free text', '')
  .option('--json', 'print JSON')
  .action(async (opts: ConfigFlags & { name: string, scope: Scope[], repo: string[], description: string, json?: boolean }) => {
    const { accounts, db } = await openStorage((await resolveConfig(opts)).dataDir)
    const { id, token } = accounts.createToken({ owner: opts.name, description: opts.description, scopes: opts.scope, repos: opts.repo })
    db.close()
    console.log(opts.json === true ? JSON.stringify({ id, token }) : `token ${id} for ${opts.name} (${opts.scope.join(',')} on ${opts.repo.join(',')}):\n${token}`)
  })
withConfig(token.command('list').description('list tokens (never their secrets)'))
  .option('--json', 'print JSON')
  .action(async (opts: ConfigFlags & { json?: boolean }) => {
    const { accounts, db } = await openStorage((await resolveConfig(opts)).dataDir)
    const tokens = accounts.listTokens()
    db.close()
    if (opts.json === true) { console.log(JSON.stringify(tokens, null, 2)); return }
    for (const t of tokens) {
      console.log(`${t.id}  ${t.name.padEnd(16)} ${t.scopes.join(',').padEnd(16)} repos=${t.repos.join(',')}  created=${new Date(t.createdAt).toISOString()}  last-used=${t.lastUsedAt == null ? 'never' : new Date(t.lastUsedAt).toISOString()}  ${t.description}`)
    }
  })
withConfig(token.command('revoke').description('revoke a token by id').argument('<id>'))
  .action(async (id: string, opts: ConfigFlags) => {
    const { accounts, db } = await openStorage((await resolveConfig(opts)).dataDir)
    try { accounts.revokeToken(id) } finally { db.close() }
    console.log(`revoked ${id}`)
  })

const user = program.command('user').description('manage users (for npm login and basic auth)')
withConfig(user.command('add').description('add a user').argument('<name>'))
  .option('--password <password>', 'password (default: read from the AKMESH_PASSWORD environment variable)')
  .option('-s, --scope <scopes>', `comma-separated: ${SCOPES.join(', ')}`, scopeList, ['read', 'write'] as Scope[])
  .option('-r, --repo <repos>', 'comma-separated repositories, or * for all', repoList, ['*'])
  .action(async (name: string, opts: ConfigFlags & { password?: string, scope: Scope[], repo: string[] }) => {
    const password = opts.password ?? process.env.AKMESH_PASSWORD
    if (password == null || password.length < 8) throw new Error('a password of at least 8 characters is needed (--password or AKMESH_PASSWORD)')
    const { accounts, db } = await openStorage((await resolveConfig(opts)).dataDir)
    try { await accounts.addUser(name, password, opts.scope, opts.repo) } finally { db.close() }
    console.log(`added user ${name} (${opts.scope.join(',')} on ${opts.repo.join(',')})`)
  })
withConfig(user.command('list').description('list users'))
  .action(async (opts: ConfigFlags) => {
    const { accounts, db } = await openStorage((await resolveConfig(opts)).dataDir)
    for (const u of accounts.listUsers()) console.log(`${u.name.padEnd(16)} ${u.scopes.join(',').padEnd(16)} repos=${u.repos.join(',')}`)
    db.close()
  })

const repo = program.command('repo').description('repositories')
withConfig(repo.command('list').description('list configured repositories'))
  .option('--json', 'print JSON')
  .action(async (opts: ConfigFlags & { json?: boolean }) => {
    const config = await resolveConfig(opts)
    // Upstream credentials are never printed.
    if (opts.json === true) {
      const { redactRepository } = await import('../config/remote-schema.ts')
      console.log(JSON.stringify(config.repositories.map(redactRepository), null, 2))
      return
    }
    for (const r of config.repositories) {
      const remote = r.type === 'remote'
        ? `   remote of ${r.upstream as string}${r.offline === true ? ' (offline)' : ''}`
        : r.type === 'virtual' ? `   virtual of ${(r.members ?? []).join(', ')}${r.defaultLocal != null ? ` (publishes to ${r.defaultLocal})` : ''}` : ''
      console.log(`${r.name.padEnd(16)} ${r.format.padEnd(10)} ${r.anonymousRead ? 'anonymous read' : 'token required'}   /${r.name}/${remote}`)
    }
  })

withConfig(program.command('verify').description('re-hash every blob; exit 1 if any is damaged or missing (orphan files are listed, not failed)'))
  .option('--json', 'print the report as JSON')
  .action(async (opts: ConfigFlags & { json?: boolean }) => {
    const { store, db } = await openStorage((await resolveConfig(opts)).dataDir)
    const { verifyStore } = await import('../store/verify.ts')
    const report = await verifyStore(store)
    db.close()
    if (opts.json === true) console.log(JSON.stringify(report, null, 2))
    else {
      for (const p of report.problems) console.log(`${p.problem.toUpperCase()} ${p.cid}: ${p.detail}`)
      for (const o of report.orphans) console.log(`ORPHAN ${o.cid}: ${o.size} bytes, no index row (changed ${new Date(o.changedAt).toISOString()})`)
      console.log(`checked ${report.checked} blobs (${report.bytes} bytes): ${report.problems.length === 0 ? 'all intact' : `${report.problems.length} problem(s)`}`)
      // Crash leftovers: harmless (nothing serves them), reclaimed by the node's sweep or by gc.
      if (report.orphans.length > 0) console.log(`${report.orphans.length} orphan file(s) (${report.orphanBytes} bytes): swept by the node a grace period after they appeared, or now by akmesh gc`)
    }
    if (report.problems.length > 0) process.exitCode = 1
  })

withConfig(program.command('gc').description('delete blobs nothing references (deleted or replaced artifacts, failed uploads, unlinked OCI blobs) and orphan blob files'))
  .option('--dry-run', 'only list what would be deleted')
  .option('--url <url>', 'the node running on this data directory (default $AKMESH_URL): it runs the collection')
  .option('--token <token>', 'admin token for --url (default $AKMESH_TOKEN)')
  .option('--json', 'print the report as JSON')
  .action(async (opts: ConfigFlags & { dryRun?: boolean, url?: string, token?: string, json?: boolean }) => {
    const config = await resolveConfig(opts)
    const url = opts.url ?? process.env.AKMESH_URL
    const token = opts.token ?? process.env.AKMESH_TOKEN
    let report: import('../store/gc.ts').GcReport
    if (url != null) {
      // Only the node can collect beside itself: its commit locks and read times are in memory.
      if (token == null) throw new Error('--url needs an admin token: --token or $AKMESH_TOKEN')
      const res = await fetch(new URL(`/-/gc${opts.dryRun === true ? '?dry-run=1' : ''}`, url), { method: 'POST', headers: { authorization: `Bearer ${token}` } })
      if (res.status !== 200) throw new Error(`${url}/-/gc: ${res.status} ${await res.text()}`)
      report = await res.json() as typeof report
    } else {
      const { processesHoldingIndex } = await import('./bundle/running.ts')
      const pids = await processesHoldingIndex(config.dataDir)
      if (pids.length > 0) {
        throw new Error(`process ${pids.join(', ')} has ${config.dataDir} open (a running node?): pass --url http://HOST:PORT and --token <admin token> ` +
          'so the node collects (it also does every gc.interval), or stop it first')
      }
      const { loadIdentity } = await import('../mesh/identity.ts')
      const { collectGarbage } = await import('../store/gc.ts')
      const { manifestFacts } = await import('./manifest-facts.ts')
      const self = (await loadIdentity(config.dataDir)).peerId.toString()
      const { store, db } = await openStorage(config.dataDir)
      try {
        report = await collectGarbage({ db, store, self, decode: manifestFacts }, { graceMs: config.gc.grace, dryRun: opts.dryRun, signal: interruptSignal() })
      } finally { db.close() }
    }
    if (opts.json === true) { console.log(JSON.stringify(report, null, 2)); return }
    const verb = report.dryRun ? 'would delete' : 'deleted'
    for (const b of report.blobs) console.log(`${verb} ${b.kind.padEnd(12)} ${b.cid} ${b.size} bytes`)
    const s = report.spared
    console.log(`${verb} ${report.orphans.count} orphan file(s) (${report.orphans.bytes} bytes) and ${report.unreferenced.count} unreferenced blob(s) (${report.unreferenced.bytes} bytes); ` +
      `kept unreferenced: ${s.young} within the grace period, ${s.inUse} in use, ${s.manifest} named by held manifests, ${s.unsigned} by unsigned changes`)
  })

// Air-gap bundles (node/bundle/): export and inventory read the data directory (beside a running
// node too); import applies through the running node when there is one (--url), else directly.
const bundleParts = async (flags: ConfigFlags & { peering?: string }) => {
  const { dataDir, repositories } = await resolveConfig(flags)
  const { loadIdentity } = await import('../mesh/identity.ts')
  const { loadPeeringFile, peeringPath } = await import('../config/peering.ts')
  const { Membership } = await import('../mesh/membership.ts')
  const identity = await loadIdentity(dataDir)
  const self = identity.peerId.toString()
  const peering = await loadPeeringFile(peeringPath(dataDir, flags.peering))
  const membership = await Membership.open({ dataDir, self, peering: () => peering })
  return { dataDir, repositories, self, privateKey: identity.privateKey, nodeName: peering.node.name, mesh: peering.mesh, membership }
}
const byteSize = (v: string): number => {
  const n = bytesParse.parse(v)
  if (n == null || !Number.isSafeInteger(n) || n < 1024 * 1024) throw new InvalidArgumentError(`expected a size of at least 1MB such as 700MB or 4GB, got "${v}"`)
  return n
}
/** Aborts on the first Ctrl-C (export removes its partial file; import keeps what it staged). */
const interruptSignal = (): AbortSignal => {
  const controller = new AbortController()
  process.once('SIGINT', () => { process.stderr.write('\ninterrupted\n'); controller.abort() })
  return controller.signal
}

withPeering(withConfig(program.command('export').description('write an air-gap bundle (CAR) of signed manifests and the blobs they name')
  .argument('<file>', 'bundle to write (with --volume-size: <file>.001, <file>.002, ...)')))
  .option('-r, --repo <repos>', 'only these repositories (comma-separated)', repoList)
  .option('--origin <peerIds>', 'only manifests of these origins (comma-separated peer IDs; repeatable)', (v: string, was: string[] = []) => [...was, ...repoList(v)])
  .option('--to <site>', 'name of the destination: records what this export covered, for --since-last')
  .option('--since-last', 'only what is new since the last export --to the same destination')
  .option('--lacks <inventory>', 'only what the site that wrote this inventory file (akmesh inventory) lacks')
  .option('--volume-size <size>', 'split into volumes of at most this size (e.g. 700MB, 4GB)', byteSize)
  .option('--lockfile <file>', 'only what this lockfile pins (package-lock.json, requirements.txt with hashes, pylock.toml, a list of image references; repeatable), resolved and fetched through the running node (--url) in the --repo of its format', (v: string, was: string[] = []) => [...was, v])
  .option('--url <url>', 'with --lockfile: the node running on this data directory (default $AKMESH_URL)')
  .option('--token <token>', 'with --lockfile: a token for --url (default $AKMESH_TOKEN; an admin token also checks that --url is this node)')
  .option('--allow-missing', 'bundle manifests even if this node lacks some of their blobs (listed as absent); with --lockfile, also skip (and list) entries that cannot be bundled')
  .option('--force', 'overwrite an existing bundle at <file> (and its volumes)')
  .option('--json', 'print the result as JSON')
  .action(async (file: string, opts: ConfigFlags & { peering?: string, repo?: string[], origin?: string[], to?: string, sinceLast?: boolean, lacks?: string, lockfile?: string[], url?: string, token?: string, volumeSize?: number, allowMissing?: boolean, force?: boolean, json?: boolean }) => {
    if (opts.sinceLast === true && opts.to == null) throw new Error('--since-last needs --to <site> (the destination whose last export it continues)')
    if (opts.sinceLast === true && opts.lacks != null) throw new Error('use either --since-last or --lacks')
    if (opts.lockfile != null && (opts.sinceLast === true || opts.to != null || opts.lacks != null || opts.origin != null)) throw new Error('--lockfile selects exactly what the lockfiles pin: not with --to, --since-last, --lacks or --origin')
    const parts = await bundleParts(opts)
    let lockfiles: import('./bundle/lockfile-export.ts').LockfileSelection | undefined
    if (opts.lockfile != null) {
      const { lockfileSelection } = await import('./bundle/lockfile-cli.ts')
      lockfiles = await lockfileSelection(parts, { lockfiles: opts.lockfile, repos: opts.repo ?? [], url: opts.url ?? process.env.AKMESH_URL, token: opts.token ?? process.env.AKMESH_TOKEN, allowMissing: opts.allowMissing, signal: interruptSignal() })
    }
    const { readExportState, recordExport } = await import('./bundle/export-state.ts')
    const { readInventory } = await import('./bundle/inventory.ts')
    const { exportBundle } = await import('./bundle/export.ts')
    const { ManifestLog } = await import('../store/manifests.ts')
    const since = opts.sinceLast === true ? (await readExportState(parts.dataDir))[opts.to as string] : undefined
    if (opts.sinceLast === true && since == null) process.stderr.write(`akmesh: no earlier export to "${opts.to}" is recorded: exporting everything\n`)
    const lacks = opts.lacks != null ? await readInventory(opts.lacks) : undefined
    if (lacks != null && lacks.mesh !== parts.mesh) throw new Error(`${opts.lacks} is an inventory of mesh "${lacks.mesh}", this node is in "${parts.mesh}"`)
    const { db, store } = await openStorage(parts.dataDir)
    try {
      const r = await exportBundle({ db, store, manifests: new ManifestLog(db), mesh: parts.mesh, peerId: parts.self, privateKey: parts.privateKey, nodeName: parts.nodeName, certificates: (peers) => parts.membership.certificates(peers), revocations: () => parts.membership.revocations() },
        { out: file, repos: lockfiles != null ? undefined : opts.repo, origins: opts.origin, since, destination: opts.to, lacks, artifacts: lockfiles?.artifacts, volumeSize: opts.volumeSize, allowMissing: opts.allowMissing, force: opts.force, signal: interruptSignal() })
      if (opts.to != null) await recordExport(parts.dataDir, opts.to, { watermarks: r.selection.watermarks, repos: opts.repo ?? null, origins: opts.origin ?? null, exportedAt: Date.now(), bundle: r.root })
      const { selection, ...shown } = r
      if (opts.json === true) console.log(JSON.stringify({ ...shown, mode: selection.mode, ...(lockfiles != null ? { lockfile: { entries: lockfiles.entries, artifacts: lockfiles.artifacts.length, skipped: lockfiles.skipped } } : {}) }, null, 2))
      else {
        if (lockfiles != null) {
          for (const p of lockfiles.skipped) console.log(`skipped (${p.problem}) ${p.message}`)
          console.log(`lockfile: ${lockfiles.entries} entries, ${lockfiles.artifacts.length} artifacts bundled${lockfiles.skipped.length > 0 ? `, ${lockfiles.skipped.length} skipped (--allow-missing)` : ''}`)
        }
        console.log(`exported ${r.manifests} manifests and ${r.blobs} blobs (${r.blobBytes} bytes of blobs${r.absent > 0 ? `; ${r.absent} absent` : ''}) as bundle ${r.root}`)
        for (const f of r.files) console.log(`  ${f}`)
        console.log(`${r.bytes} bytes: ${r.summary}`)
      }
    } finally { db.close() }
  })

withPeering(withConfig(program.command('inventory').description('write what this node holds (manifests, blobs), for another site\'s export --lacks')
  .argument('[file]', 'where to write it (default: stdout)')))
  .action(async (file: string | undefined, opts: ConfigFlags & { peering?: string }) => {
    const parts = await bundleParts(opts)
    const { buildInventory } = await import('./bundle/inventory.ts')
    const { db } = await openStorage(parts.dataDir)
    let text: string
    try { text = JSON.stringify(buildInventory(db, { mesh: parts.mesh, peerId: parts.self })) + '\n' } finally { db.close() }
    if (file == null || file === '-') process.stdout.write(text)
    else {
      const { writeFileAtomic } = await import('../config/atomic-file.ts')
      await writeFileAtomic(file, text)
      console.log(`wrote ${file}`)
    }
  })

withPeering(withConfig(program.command('import').description('verify an air-gap bundle completely, then add its blobs and apply its manifests at once')
  .argument('<bundle>', 'bundle file, or its first volume (<file>.001)')))
  .option('--url <url>', 'the node running on this data directory (default $AKMESH_URL): it applies the manifests and gossips them on')
  .option('--token <token>', 'admin token for --url (default $AKMESH_TOKEN)')
  .option('--allow-gaps', 'import an incremental bundle even if this node lacks the export it continues')
  .option('--strict', 'refuse the whole bundle if this node does not accept the origin of any manifest in it (default: import the rest, list the refused)')
  .option('--json', 'print the report as JSON')
  .action(async (bundle: string, opts: ConfigFlags & { peering?: string, url?: string, token?: string, allowGaps?: boolean, strict?: boolean, json?: boolean }) => {
    const parts = await bundleParts(opts)
    const url = opts.url ?? process.env.AKMESH_URL
    const token = opts.token ?? process.env.AKMESH_TOKEN
    if (url == null) {
      const { processesHoldingIndex } = await import('./bundle/running.ts')
      const pids = await processesHoldingIndex(parts.dataDir)
      if (pids.length > 0) {
        throw new Error(`process ${pids.join(', ')} has ${parts.dataDir} open (a running node?): pass --url http://HOST:PORT and --token <admin token> ` +
          'so the node applies the bundle (and gossips it on), or stop it first')
      }
    } else {
      if (token == null) throw new Error('--url needs an admin token: --token or $AKMESH_TOKEN')
      const res = await fetch(new URL('/-/mesh/status', url), { headers: { authorization: `Bearer ${token}` } })
      if (res.status !== 200) throw new Error(`${url}/-/mesh/status: ${res.status} ${await res.text()}`)
      const { peerId } = await res.json() as { peerId: string }
      if (peerId !== parts.self) throw new Error(`the node at ${url} is ${peerId}, not the node of ${parts.dataDir} (${parts.self})`)
    }
    const { importBundle } = await import('./bundle/import.ts')
    const storage = await openStorage(parts.dataDir)
    try {
      // As the node does at start: a data directory never started must know its repositories.
      for (const repo of parts.repositories) storage.artifacts.ensureRepository(repo.name, repo.format)
      const r = await importBundle({ ...parts, ...storage }, { bundle, node: url != null ? { url, token: token as string } : undefined, allowGaps: opts.allowGaps, strict: opts.strict, signal: interruptSignal() })
      const count = (o: string) => r.manifests.filter(m => m.outcome === o).length
      for (const w of r.warnings) process.stderr.write(`akmesh: warning: ${w}\n`)
      if (opts.json === true) { console.log(JSON.stringify(r, null, 2)); return }
      const by = r.exporter.name != null ? `${r.exporter.name} (${r.exporter.peerId})` : r.exporter.peerId
      console.log(`bundle ${r.root}, exported by ${by} at ${new Date(r.exporter.createdAt).toISOString()} (signed)`)
      for (const m of r.manifests) {
        console.log(`${m.outcome.padEnd(11)} ${m.origin}/${m.seq} ${m.kind} ${m.repo} ${m.name}${m.version === '' ? '' : `@${m.version}`}${m.reason != null ? `: ${m.reason}` : ''}`)
      }
      for (const m of r.refused) {
        console.log(`${'refused'.padEnd(11)} ${m.origin}/${m.seq} ${m.kind} ${m.repo} ${m.name}${m.version === '' ? '' : `@${m.version}`}: ${m.reason}: ${m.message}`)
      }
      console.log(`imported bundle ${r.root}: ${count('added')} added, ${count('skipped')} skipped, ${count('not-applied')} not applied; ` +
        `blobs: ${r.blobs.added} added (${r.blobs.addedBytes} bytes${r.blobs.resumed > 0 ? `, ${r.blobs.resumed} staged by an earlier run` : ''}), ${r.blobs.skipped} skipped` +
        `${r.blobs.withheld > 0 ? `, ${r.blobs.withheld} left out (named only by refused manifests)` : ''}; read ${r.summary}`)
      if (r.refused.length > 0) {
        const { refusalSummary, originCount } = await import('./bundle/trust.ts')
        const n = originCount(r.refused)
        console.log(`imported ${r.manifests.length} manifests, refused ${r.refused.length} from ${n} origin${n === 1 ? '' : 's'}: ${refusalSummary(r.refused)} (pass --strict to refuse such bundles whole)`)
      }
    } catch (err: any) {
      if (err?.code === 'IntegrityError') throw new Error(`bundle rejected, nothing imported: ${err.message}`)
      if (err?.refused != null) throw new Error(`bundle refused (--strict), nothing imported: ${err.message}`)
      throw err
    } finally { storage.db.close() }
  })

registerMeshCommands(program, { withConfig, withPeering, resolveConfig })
registerPeersCommands(program, { withConfig, withPeering, resolveConfig })
registerCacheCommands(program, { withConfig, resolveConfig })

try {
  await program.parseAsync()
} catch (err: any) {
  // Config and registry errors are written for operators: their message is the whole story.
  process.stderr.write(`akmesh: ${err?.message ?? String(err)}\n`)
  process.exit(2)
}
