// `akmesh cache prune|list`: the caches of remote repositories. With --url (or $AKMESH_URL) the
// running node does it (POST /-/cache/prune, GET /-/cache; node/cache.ts); without, it works on a
// stopped node's data directory (refused while a process has it open: only the node that commits
// blobs may evict beside itself).
import { InvalidArgumentError, type Command } from 'commander'
import type { Config } from '../config/schema.ts'
import type { EvictionReport } from '../store/cache-evict.ts'
import type { CachedArtifact } from '../store/cache-list.ts'
import type { CacheSummary } from './cache.ts'
import type { ConfigFlags } from './config.ts'

interface Helpers {
  withConfig: (cmd: Command) => Command
  resolveConfig: (flags: ConfigFlags) => Promise<Config>
}

type NodeFlags = ConfigFlags & { url?: string, token?: string, json?: boolean, repo?: string }

const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/
const durationArg = (v: string): string => {
  if (!DURATION.test(v.trim())) throw new InvalidArgumentError(`expected a duration such as 12h or 30d, got "${v}"`)
  return v.trim()
}

export function registerCacheCommands (program: Command, { withConfig, resolveConfig }: Helpers): void {
  const cache = program.command('cache').description('caches of remote repositories: list them, evict what was not used lately')
  const withNode = (cmd: Command) => cmd
    .option('-r, --repo <name>', 'only this remote repository')
    .option('--url <url>', 'the node running on this data directory (default $AKMESH_URL)')
    .option('--token <token>', 'admin token for --url (default $AKMESH_TOKEN)')
    .option('--json', 'print JSON')

  withNode(withConfig(cache.command('prune').description('evict cached blobs not used for a while (their rows stay: a later request fetches them again)')))
    .requiredOption('--older-than <duration>', 'not served for this long, e.g. 30d or 12h', durationArg)
    .option('--dry-run', 'only list what would be evicted')
    .action(async (opts: NodeFlags & { olderThan: string, dryRun?: boolean }) => {
      const config = await resolveConfig(opts)
      const node = nodeOf(opts)
      let report: EvictionReport
      if (node != null) {
        const q = new URLSearchParams({ 'older-than': opts.olderThan })
        if (opts.repo != null) q.set('repo', opts.repo)
        if (opts.dryRun === true) q.set('dry-run', '1')
        report = await call(node, 'POST', `/-/cache/prune?${q}`) as EvictionReport
      } else {
        const { millis } = await import('../config/duration.ts')
        const olderThan = millis().parse(opts.olderThan)
        report = await withStoppedNode(config, async (k) => await k.prune({ olderThan, repo: opts.repo, dryRun: opts.dryRun }))
      }
      if (opts.json === true) { console.log(JSON.stringify(report, null, 2)); return }
      const verb = report.dryRun ? 'would evict' : 'evicted'
      for (const e of report.evicted) console.log(`${verb} ${e.repo} ${e.artifacts.join(', ') || e.cid} ${e.size} bytes (last used ${new Date(e.usedAt).toISOString()})`)
      const s = report.spared
      console.log(`${verb} ${report.evicted.length} cached blob(s), ${report.bytes} bytes freed${report.dryRun ? ' (dry run)' : ''}; ` +
        `kept: ${s.local} also used by local artifacts, ${s.unsigned} named by unsigned changes, ${s.recommitted} committed again lately`)
    })

  withNode(withConfig(cache.command('list').description('cached artifacts of remote repositories, least recently used first')))
    .action(async (opts: NodeFlags) => {
      const config = await resolveConfig(opts)
      const node = nodeOf(opts)
      const { artifacts, repositories } = node != null
        ? await call(node, 'GET', `/-/cache${opts.repo != null ? `?repo=${encodeURIComponent(opts.repo)}` : ''}`) as { artifacts: CachedArtifact[], repositories: CacheSummary[] }
        : await withStoppedNode(config, async (k) => ({ artifacts: k.cached(opts.repo), repositories: k.summary().filter(s => opts.repo == null || s.repo === opts.repo) }))
      if (opts.json === true) { console.log(JSON.stringify({ repositories, artifacts }, null, 2)); return }
      for (const a of artifacts) {
        const used = a.lastUsedAt == null ? 'never served' : `last used ${new Date(a.lastUsedAt).toISOString()}`
        const held = a.presentBytes === a.bytes ? `${a.bytes} bytes` : `${a.presentBytes} of ${a.bytes} bytes here`
        console.log(`${a.repo.padEnd(16)} ${a.version === '' ? a.name : `${a.name}@${a.version}`}  ${held}, ${used}, from ${a.upstream}`)
      }
      for (const s of repositories) console.log(`${s.repo}: ${s.blobs} cached blob(s), ${s.bytes} bytes here${s.quota != null ? ` (quota ${s.quota} bytes)` : ''}`)
      console.log(`${artifacts.length} cached artifact(s), ${artifacts.reduce((n, a) => n + a.presentBytes, 0)} bytes here`)
    })
}

function nodeOf (opts: NodeFlags): { url: string, token: string } | undefined {
  const url = opts.url ?? process.env.AKMESH_URL
  if (url == null) return undefined
  const token = opts.token ?? process.env.AKMESH_TOKEN
  if (token == null) throw new Error('--url needs an admin token: --token or $AKMESH_TOKEN')
  return { url, token }
}

async function call (node: { url: string, token: string }, method: string, path: string): Promise<unknown> {
  const res = await fetch(new URL(path, node.url), { method, headers: { authorization: `Bearer ${node.token}` } })
  if (res.status !== 200) throw new Error(`${node.url}${path.split('?')[0]}: ${res.status} ${await res.text()}`)
  return await res.json()
}

async function withStoppedNode<T> (config: Config, fn: (k: import('./cache.ts').CacheKeeper) => Promise<T>): Promise<T> {
  const { processesHoldingIndex } = await import('./bundle/running.ts')
  const pids = await processesHoldingIndex(config.dataDir)
  if (pids.length > 0) {
    throw new Error(`process ${pids.join(', ')} has ${config.dataDir} open (a running node?): pass --url http://HOST:PORT and --token <admin token> so the node evicts, or stop it first`)
  }
  const { loadIdentity } = await import('../mesh/identity.ts')
  const { openStorage } = await import('./server.ts')
  const { createLogger } = await import('./log.ts')
  const { CacheKeeper } = await import('./cache.ts')
  const self = (await loadIdentity(config.dataDir)).peerId.toString()
  const { db, store } = await openStorage(config.dataDir)
  const keeper = new CacheKeeper({ db, store, config, self, log: createLogger('warn') })
  try { return await fn(keeper) } finally { await keeper.stop(); db.close() }
}
