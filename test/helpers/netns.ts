// Several "hosts" on one machine: Linux network namespaces joined by veth links to a bridge, each
// link capped by `tbf` (this kernel has tbf and htb, no netem), with one akmesh node per namespace.
// Root only (CI is root): on a non-root machine the test skips loudly, under CI=true it fails.
//
// Topology of one lab (run number r, 1..250, unique among the labs alive on the machine):
//
//   root namespace                hub namespace "akm<r>h"            node namespace "akm<r>n<i>"
//   akmr<r> 10.77.r.254/24 ─veth─ rt ┐
//                                    br0 (bridge) ── v<i> ─veth─ eth0 10.77.r.<i+1>/24
//
// - The root end `akmr<r>` is created first and is the lab's lock (creating it fails if another
//   live lab holds r); its alias names the owning pid, so a later run removes the namespaces and
//   links of a run that crashed (owner pid gone) before it starts. Interface names inside
//   namespaces are per namespace, so only `akmr<r>` (≤ 15 characters) lives in the root namespace.
// - Every node listens on 0.0.0.0:7070 (HTTP) and 10.77.r.<i+1>:7071 (mesh): each namespace has
//   its own ports. The test process reaches every node at http://10.77.r.<i+1>:7070.
// - Shaping, on both ends of each node's link: egress of the node's `eth0` is the node's upload,
//   egress of the hub's `v<i>` its download. Each end has an htb root with two classes: 1:10 for
//   traffic to/from the test process (10.77.r.254: PUTs, GETs, admin API) and 1:20 (default) for
//   everything else, i.e. node-to-node mesh traffic. The cap is a `tbf` qdisc under 1:20, so the
//   test's own HTTP never competes with the mesh for a capped link, and the 1:20 byte counters
//   say exactly how many bytes each node uploaded to / downloaded from other nodes.
// - tbf parameters: rate = the cap; burst = max(64 KiB, 10 ms at the rate): at least one
//   64 KiB GSO super-packet (veth does GSO; a smaller bucket makes tbf split or drop them) and more
//   than rate/HZ, yet small against a 1 MiB chunk (a 1 MiB chunk at 40 Mbit/s takes 210 ms, so the
//   bucket lets at most 64 KiB of it through early); latency 50 ms of queue (rate × 50 ms + burst
//   bytes), enough for TCP to keep the link busy at ~0 RTT without bufferbloat hiding request
//   latency. Caps are changed live (`tc qdisc replace`), e.g. lifted while seeding.
// - Teardown kills every process inside the lab's namespaces, deletes them and the root link; it
//   runs from t.teardown / the bench's cleanup, and synchronously from a process 'exit' hook.
import { execFile, execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import type { ExecutionContext } from 'ava'
import { akmesh, makeTempDir, startTestNode, waitFor, type TestNode } from './node.ts'
import { queryIndex } from './mesh.ts'

const execFileP = promisify(execFile)

export const HTTP_PORT = 7070
export const MESH_PORT = 7071
const PREFIX = 'akm'
const ROOT_LINK = /^akmr(\d+)$/
const NS_NAME = /^akm(\d+)(h|n\d+)$/

export const mbit = (n: number): number => n * 1_000_000

/** Why namespaces cannot be used here, or undefined if they can. */
export function netnsUnavailable (): string | undefined {
  if (process.platform !== 'linux') return `network namespaces need Linux (this is ${process.platform})`
  if (process.getuid?.() !== 0) return 'network namespaces need root (run the suite as root, as CI does)'
  for (const tool of ['ip', 'tc']) {
    if (!['/usr/sbin', '/sbin', '/usr/bin', '/bin'].some(d => existsSync(join(d, tool)))) return `"${tool}" is missing (Debian package iproute2)`
  }
  return undefined
}

/** True if the test may use namespaces; otherwise fails it (CI=true) or skips it loudly. */
export function requireNetns (t: ExecutionContext): boolean {
  const why = netnsUnavailable()
  if (why == null) return true
  if (process.env.CI === 'true') {
    t.fail(`${why}; CI runs as root with iproute2 installed (.ci/run), so this must not happen there`)
  } else {
    const msg = `SKIPPING network-namespace test: ${why}. Under CI=true this fails.`
    console.warn(`\n!!! ${msg} !!!\n`)
    t.log(msg)
    t.pass()
  }
  return false
}

async function sh (cmd: string, args: string[]): Promise<string> {
  try {
    return (await execFileP(cmd, args, { maxBuffer: 16 * 1024 * 1024 })).stdout
  } catch (e: any) {
    throw new Error(`${cmd} ${args.join(' ')}: ${(e.stderr as string | undefined)?.trim() || e.message}`)
  }
}
const ip = async (...args: string[]): Promise<string> => await sh('ip', args)
const tc = async (...args: string[]): Promise<string> => await sh('tc', args)

function pidAlive (pid: number): boolean {
  try { process.kill(pid, 0); return true } catch (e: any) { return e.code === 'EPERM' }
}

/** Synchronous: kill everything inside a namespace, then delete it. Never throws. */
function removeNamespaceSync (ns: string): void {
  try {
    const pids = execFileSync('ip', ['netns', 'pids', ns], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().split(/\s+/).filter(Boolean)
    for (const pid of pids) { try { process.kill(Number(pid), 'SIGKILL') } catch {} }
  } catch {}
  try { execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' }) } catch {}
}

function rootLinksSync (): Array<{ name: string, run: number, owner?: number }> {
  try {
    const links = JSON.parse(execFileSync('ip', ['-j', '-d', 'link', 'show'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString()) as Array<{ ifname: string, ifalias?: string }>
    return links.flatMap(l => {
      const m = ROOT_LINK.exec(l.ifname)
      if (m == null) return []
      const owner = /pid=(\d+)/.exec(l.ifalias ?? '')?.[1]
      return [{ name: l.ifname, run: Number(m[1]), owner: owner != null ? Number(owner) : undefined }]
    })
  } catch { return [] }
}

function namespacesSync (): string[] {
  try {
    return (JSON.parse(execFileSync('ip', ['-j', 'netns', 'list'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString() || '[]') as Array<{ name: string }>).map(n => n.name)
  } catch { return [] }
}

/** Removes the namespaces and root links of labs whose owner process is gone (a crashed run), and
 *  namespaces with our prefix that no live lab owns. A link without an owner yet (a lab being
 *  created this instant) is left alone. */
export function sweepStaleLabs (): string[] {
  const removed: string[] = []
  const links = rootLinksSync()
  const live = new Set(links.filter(l => l.owner == null || pidAlive(l.owner)).map(l => l.run))
  for (const ns of namespacesSync()) {
    const m = NS_NAME.exec(ns)
    if (m == null || live.has(Number(m[1]))) continue
    removeNamespaceSync(ns)
    removed.push(ns)
  }
  for (const l of links) {
    if (live.has(l.run)) continue
    try { execFileSync('ip', ['link', 'del', l.name], { stdio: 'ignore' }) } catch {}
    removed.push(l.name)
  }
  return removed
}

export interface LinkCaps {
  /** Upload cap of the node (bits/s; null or undefined: uncapped). */
  up?: number | null
  /** Download cap of the node (bits/s; null or undefined: uncapped). */
  down?: number | null
}

export interface LabHost {
  index: number
  /** Namespace name. */
  ns: string
  /** The node's address on the lab network. */
  addr: string
  /** Its link's port on the bridge (inside the hub namespace). */
  port: string
}

/** tbf parameters for a cap (see the header). */
export function tbfArgs (bitsPerSecond: number): string[] {
  const bytesPerSecond = bitsPerSecond / 8
  const burst = Math.max(64 * 1024, Math.ceil(bytesPerSecond * 0.01))
  return ['tbf', 'rate', `${Math.round(bitsPerSecond)}bit`, 'burst', String(burst), 'latency', '50ms']
}

const openLabs = new Set<Lab>()
let exitHook = false

export class Lab {
  readonly run: number
  readonly hub: string
  readonly rootLink: string
  readonly rootAddr: string
  readonly hosts: LabHost[] = []
  #destroyed = false

  private constructor (run: number) {
    this.run = run
    this.hub = `${PREFIX}${run}h`
    this.rootLink = `akmr${run}`
    this.rootAddr = `10.77.${run}.254`
  }

  /** Creates a lab of `n` hosts (n ≤ 200), every link uncapped. Sweeps crashed runs' leftovers. */
  static async create (n: number): Promise<Lab> {
    if (n < 1 || n > 200) throw new Error(`a lab has 1..200 hosts, not ${n}`)
    sweepStaleLabs()
    if (!exitHook) {
      exitHook = true
      process.once('exit', () => { for (const lab of openLabs) lab.destroySync() })
    }
    let lab: Lab | undefined
    for (let attempt = 0; lab == null; attempt++) {
      const run = 1 + Math.floor(Math.random() * 250)
      const candidate = new Lab(run)
      try {
        await ip('netns', 'add', candidate.hub)
      } catch (err) {
        if (attempt > 20) throw err
        continue
      }
      try {
        // The lock: fails if another lab (alive, or swept above only if dead) uses this run.
        await ip('link', 'add', candidate.rootLink, 'type', 'veth', 'peer', 'name', 'rt', 'netns', candidate.hub)
      } catch (err) {
        removeNamespaceSync(candidate.hub)
        if (attempt > 20) throw err
        continue
      }
      lab = candidate
    }
    openLabs.add(lab)
    try {
      await ip('link', 'set', lab.rootLink, 'alias', `akmesh-netns pid=${process.pid}`)
      await ip('-n', lab.hub, 'link', 'add', 'br0', 'type', 'bridge')
      await ip('-n', lab.hub, 'link', 'set', 'br0', 'up')
      await ip('-n', lab.hub, 'link', 'set', 'rt', 'master', 'br0', 'up')
      await ip('addr', 'add', `${lab.rootAddr}/24`, 'dev', lab.rootLink)
      await ip('link', 'set', lab.rootLink, 'up')
      for (let i = 0; i < n; i++) await lab.#addHost(i)
    } catch (err) {
      await lab.destroy()
      throw err
    }
    return lab
  }

  async #addHost (i: number): Promise<void> {
    const host: LabHost = { index: i, ns: `${PREFIX}${this.run}n${i}`, addr: `10.77.${this.run}.${i + 1}`, port: `v${i}` }
    await ip('netns', 'add', host.ns)
    this.hosts.push(host)
    await ip('-n', this.hub, 'link', 'add', host.port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', host.ns)
    await ip('-n', this.hub, 'link', 'set', host.port, 'master', 'br0', 'up')
    await ip('-n', host.ns, 'link', 'set', 'lo', 'up')
    await ip('-n', host.ns, 'addr', 'add', `${host.addr}/24`, 'dev', 'eth0')
    await ip('-n', host.ns, 'link', 'set', 'eth0', 'up')
    // htb root on both ends: 1:10 for the test process's own traffic, 1:20 (default) for the mesh.
    for (const [ns, dev, match] of [[host.ns, 'eth0', 'dst'], [this.hub, host.port, 'src']] as const) {
      await tc('-n', ns, 'qdisc', 'add', 'dev', dev, 'root', 'handle', '1:', 'htb', 'default', '20', 'r2q', '1000')
      for (const cls of ['1:10', '1:20']) {
        await tc('-n', ns, 'class', 'add', 'dev', dev, 'parent', '1:', 'classid', cls, 'htb', 'rate', '10gbit', 'burst', '1m', 'cburst', '1m', 'quantum', '200000')
      }
      await tc('-n', ns, 'filter', 'add', 'dev', dev, 'parent', '1:', 'protocol', 'ip', 'prio', '1', 'u32', 'match', 'ip', match, `${this.rootAddr}/32`, 'flowid', '1:10')
    }
  }

  /** Sets (or lifts, with null/undefined) the caps of host i's link; takes effect at once. */
  async shape (i: number, caps: LinkCaps): Promise<void> {
    const h = this.#host(i)
    for (const [ns, dev, rate] of [[h.ns, 'eth0', caps.up], [this.hub, h.port, caps.down]] as const) {
      if (rate != null) {
        await tc('-n', ns, 'qdisc', 'replace', 'dev', dev, 'parent', '1:20', 'handle', '20:', ...tbfArgs(rate))
      } else {
        await tc('-n', ns, 'qdisc', 'del', 'dev', dev, 'parent', '1:20').catch(() => {})
      }
    }
  }

  /** Lifts every cap (e.g. while seeding). */
  async unshapeAll (): Promise<void> {
    for (const h of this.hosts) await this.shape(h.index, {})
  }

  /** Bytes host i has sent to / received from other lab hosts (its link's mesh class), since the
   *  lab was made. The test process's own HTTP traffic is not counted. */
  async meshBytes (i: number): Promise<{ sent: number, received: number }> {
    const h = this.#host(i)
    const sentBy = async (ns: string, dev: string): Promise<number> => {
      const out = await tc('-n', ns, '-s', 'class', 'show', 'dev', dev)
      const m = /class htb 1:20 [^\n]*\n\s*Sent (\d+) bytes/.exec(out)
      if (m == null) throw new Error(`no htb class 1:20 on ${ns}/${dev}:\n${out}`)
      return Number(m[1])
    }
    const [sent, received] = await Promise.all([sentBy(h.ns, 'eth0'), sentBy(this.hub, h.port)])
    return { sent, received }
  }

  /** Every host's mesh byte counters at once. */
  async allMeshBytes (): Promise<Array<{ sent: number, received: number }>> {
    return await Promise.all(this.hosts.map(async h => await this.meshBytes(h.index)))
  }

  #host (i: number): LabHost {
    const h = this.hosts[i]
    if (h == null) throw new Error(`no host ${i} in lab ${this.run}`)
    return h
  }

  /** Kills every process in the lab's namespaces and removes them and the root link. */
  async destroy (): Promise<void> { this.destroySync() }

  destroySync (): void {
    if (this.#destroyed) return
    this.#destroyed = true
    openLabs.delete(this)
    for (const h of this.hosts) removeNamespaceSync(h.ns)
    removeNamespaceSync(this.hub)
    try { execFileSync('ip', ['link', 'del', this.rootLink], { stdio: 'ignore' }) } catch {}
  }
}

/** Anything with a teardown: an ava ExecutionContext, or the bench's shim over its cleanups. */
export type Teardown = Pick<ExecutionContext, 'teardown'>

/** A lab removed when the test ends (pass or fail). */
export async function lab (t: Teardown, n: number): Promise<Lab> {
  const l = await Lab.create(n)
  t.teardown(async () => { await l.destroy() })
  return l
}

// ---------------------------------------------------------------------------------------------
// akmesh nodes in a lab.

export interface LabNode {
  index: number
  host: LabHost
  node: TestNode
  peerId: string
  /** http://10.77.r.<i+1>:7070 */
  url: string
}

export interface LabNodeSpec {
  /** Peering `replication` (default: every repository on-demand). */
  replication?: Record<string, 'mirror' | 'on-demand' | 'none'>
  /** Peering `uploadBandwidth` (bytes/s, or null). */
  uploadBandwidth?: number | null
}

/** Starts one node per spec on hosts 0..specs.length-1, every node allowing every other (node i
 *  dials the nodes below it), and waits until each is connected to all the others.
 *  Every node that knows a blob (all of them: manifests go everywhere, and replication "none" is
 *  not enforced yet) and is asked for it fetches it too (relay, commit a5b0fdf): a scenario whose
 *  byte counts matter must run in a lab holding only its own nodes. */
export async function startLabNodes (t: Teardown, l: Lab, specs: LabNodeSpec[]): Promise<LabNode[]> {
  const tt = t as ExecutionContext
  if (specs.length > l.hosts.length) throw new Error(`${specs.length} nodes for ${l.hosts.length} hosts`)
  const ids = await Promise.all(specs.map(async () => {
    const dataDir = await makeTempDir(tt, 'akmesh-lab-')
    const r = await akmesh(['id', '--data', dataDir, '--json'])
    if (r.code !== 0) throw new Error(r.stderr)
    return { dataDir, peerId: JSON.parse(r.stdout).peerId as string }
  }))
  const meshAddr = (i: number): string => `/ip4/${l.hosts[i].addr}/tcp/${MESH_PORT}/p2p/${ids[i].peerId}`
  const nodes = await Promise.all(specs.map(async (spec, i): Promise<LabNode> => {
    const host = l.hosts[i]
    const others = ids.map((_, j) => j).filter(j => j !== i)
    const peering: Record<string, unknown> = {
      listen: [`/ip4/${host.addr}/tcp/${MESH_PORT}`],
      allow: others.map(j => ids[j].peerId),
      // Each pair is dialed from one side only (node i dials the nodes below it): mutual dials at
      // start race, and a bootstrap ping aborted on a connection being closed has crashed nodes
      // (uncaught StreamStateError from @libp2p/ping, see the swarm report).
      bootstrap: others.filter(j => j < i).map(meshAddr),
      node: { name: `lab${l.run}-${i}` }
    }
    if (spec.replication != null) peering.replication = spec.replication
    if (spec.uploadBandwidth !== undefined) peering.uploadBandwidth = spec.uploadBandwidth
    const node = await startTestNode(tt, {
      dataDir: ids[i].dataDir,
      peering,
      netns: host.ns,
      host: '0.0.0.0',
      port: HTTP_PORT,
      meshPort: MESH_PORT,
      urlHost: host.addr,
      meshHost: host.addr
      // Log level stays the default (info): startTestNode's readiness is the "listening" line.
    })
    return { index: i, host, node, peerId: ids[i].peerId, url: node.url }
  }))
  let seen: string[][] = []
  try {
    await waitFor(async () => {
      seen = await Promise.all(nodes.map(async n => await meshPeers(n).catch(() => [] as string[])))
      return seen.every((peers, i) => nodes.every((m, j) => j === i || peers.includes(m.peerId)))
    }, 'every lab node connected to every other', 90_000)
  } catch (err: any) {
    const report = nodes.map((n, i) => {
      const missing = nodes.filter((m, j) => j !== i && !(seen[i] ?? []).includes(m.peerId)).map(m => m.index)
      const exit = n.node.proc.exitCode ?? n.node.proc.signalCode
      return `node ${i}${exit != null ? ` EXITED (${exit})` : ''}: not connected to [${missing.join(', ')}]\n    ${n.node.output().split('\n').filter(l => !l.includes('"msg":"request"')).slice(exit != null ? -40 : -3).join('\n    ')}`
    })
    throw new Error(`${err.message}\n${report.join('\n')}`)
  }
  return nodes
}

export async function adminGet<T = any> (n: LabNode, path: string): Promise<{ status: number, body: T | undefined }> {
  const res = await fetch(`${n.url}${path}`, { headers: { authorization: `Bearer ${n.node.adminToken}` } })
  if (res.status !== 200) { await res.arrayBuffer(); return { status: res.status, body: undefined } }
  return { status: 200, body: await res.json() as T }
}

export async function meshPeers (n: LabNode): Promise<string[]> {
  const r = await adminGet<{ peers: Array<{ peerId: string }> }>(n, '/-/mesh/peers')
  return r.body?.peers.map(p => p.peerId) ?? []
}

/** PUT into a generic repository (`path` starts with the repository: "files/a/b.bin") with the
 *  admin token; returns the CID. */
export async function putFile (n: LabNode, path: string, body: Buffer): Promise<string> {
  const res = await fetch(`${n.url}/${path}`, {
    method: 'PUT',
    body,
    headers: { authorization: `Bearer ${n.node.adminToken}`, 'x-checksum-sha256': createHash('sha256').update(body).digest('hex') }
  })
  if (res.status !== 201) throw new Error(`PUT ${path} on ${n.url}: ${res.status} ${await res.text()}`)
  return (await res.json() as { cid: string }).cid
}

/** Whether the node holds the blob's bytes (its index, read in a child process). */
export async function hasBlob (n: LabNode, cid: string): Promise<boolean> {
  if (!/^[a-z0-9]+$/.test(cid)) throw new Error(`bad cid ${cid}`)
  const rows = await queryIndex(n.node.dataDir, `SELECT present FROM blobs WHERE cid = '${cid}'`).catch(() => [])
  return rows.length === 1 && rows[0].present === 1
}

/** Waits until the node's index names `path` ("<repo>/<folder>/<name>", from the origin's gossiped
 *  manifest). A folder listing reads only the index: it never starts a fetch. */
export async function waitKnown (n: LabNode, path: string, timeoutMs = 60_000): Promise<void> {
  const at = path.lastIndexOf('/')
  const folder = path.slice(0, at + 1)
  const name = path.slice(at + 1)
  await waitFor(async () => {
    const res = await fetch(`${n.url}/${folder}`)
    return res.status === 200 && (await res.text()).includes(name)
  }, `${path} to be known on node ${n.index}`, timeoutMs)
}

export interface Download {
  status: number
  bytes: number
  sha256: string
  ms: number
  cid?: string
  /** Set when the request or the body failed (e.g. the node cut the body): never thrown. */
  error?: string
}

/** GETs a file and hashes it as it streams (never held whole); `onProgress` sees the running
 *  byte count. A failed request or a cut body is reported in `error`, not thrown. */
export async function download (n: LabNode, path: string, onProgress?: (bytes: number) => void, signal?: AbortSignal): Promise<Download> {
  const t0 = performance.now()
  const hash = createHash('sha256')
  let bytes = 0
  let status = 0
  let cid: string | undefined
  try {
    const res = await fetch(`${n.url}/${path}`, { signal })
    status = res.status
    cid = res.headers.get('x-akmesh-cid') ?? undefined
    if (res.body != null) {
      for await (const piece of res.body as unknown as AsyncIterable<Uint8Array>) {
        hash.update(piece)
        bytes += piece.byteLength
        onProgress?.(bytes)
      }
    }
  } catch (err: any) {
    return { status, bytes, sha256: hash.digest('hex'), ms: performance.now() - t0, cid, error: `${err?.message ?? err}${err?.cause != null ? ` (${err.cause.message ?? err.cause})` : ''} after ${bytes} bytes` }
  }
  return { status, bytes, sha256: hash.digest('hex'), ms: performance.now() - t0, cid }
}

/** The node's log lines at warn level or above (pino levels 40+), for failure messages. */
export function warnings (n: LabNode, max = 20): string[] {
  return n.node.output().split('\n').filter(l => /"level":(4|5|6)0/.test(l)).slice(-max)
}

/**
 * Makes every holder hold `body`: each PUTs the same bytes (same CID) at its own path (holder 0 at
 * `path`, holder i at `path` + ".h<i>"), so no holder fetches anything through the mesh. (A mesh
 * fetch asks every connected peer `have`, and a peer that knows the blob but lacks it starts
 * fetching it too, commit a5b0fdf: seeding by fetching would make the downloader a holder.) Then
 * waits until every node in `knowers` knows `path`. Returns the CID.
 */
export async function seed (holders: LabNode[], path: string, body: Buffer, knowers: LabNode[] = []): Promise<string> {
  const cids = await Promise.all(holders.map(async (h, i) => await putFile(h, i === 0 ? path : `${path}.h${i}`, body)))
  if (new Set(cids).size !== 1) throw new Error(`the same bytes got different CIDs: ${cids.join(', ')}`)
  await Promise.all(holders.map(async h => { await waitFor(async () => await hasBlob(h, cids[0]), `${cids[0]} present on node ${h.index}`, 60_000) }))
  await Promise.all(knowers.map(async k => { await waitKnown(k, path) }))
  return cids[0]
}

/** Edits the node's peering file (atomically: temp file + rename) and waits until the running
 *  node says it reloaded it. */
export async function editPeering (n: LabNode, edit: (content: Record<string, any>) => void): Promise<void> {
  const { readFile, rename, writeFile } = await import('node:fs/promises')
  const file = n.node.peeringFile
  const content = JSON.parse(await readFile(file, 'utf8')) as Record<string, any>
  edit(content)
  const reloads = (): number => n.node.output().split('\n').filter(l => l.includes('"msg":"peering file reloaded"')).length
  const before = reloads()
  await writeFile(`${file}.tmp`, JSON.stringify(content, null, 2))
  await rename(`${file}.tmp`, file)
  await waitFor(() => reloads() > before, `node ${n.index} to reload its peering file`, 15_000)
}

/** Flips one byte in each of the given chunks of the node's stored copy of the blob (the node then
 *  serves those chunks corrupt; the signed chunk table it serves stays right). */
export async function corruptBlob (n: LabNode, cid: string, chunks: number[], chunkSize = 1024 * 1024): Promise<void> {
  const { open } = await import('node:fs/promises')
  const fh = await open(join(n.node.dataDir, 'blobs', cid.slice(-2), cid), 'r+')
  try {
    for (const c of chunks) {
      const at = c * chunkSize + 4321
      const b = Buffer.alloc(1)
      await fh.read(b, 0, 1, at)
      b[0] ^= 0xff
      await fh.write(b, 0, 1, at)
    }
    await fh.sync()
  } finally { await fh.close() }
}

// ---------------------------------------------------------------------------------------------
// The swarm scheduler's admin API (GET /-/mesh/transfers, `profiles` in GET /-/mesh/peers). Until
// the scheduler rewrite lands these answer 404 / lack `profiles`: callers check `swarmApi` first.

export interface TransferRecord {
  cid: string
  size: number
  status: string
  startedAt: number
  finishedAt?: number
  sources: Record<string, { chunks: number, bytes: number }>
}

export interface PeerProfile {
  peerId: string
  rttMs?: number
  throughputBps?: number
  bytesReceived: number
  bytesSent: number
  chunksReceived: number
  /** The issue's name for failed requests + bad chunks; the scheduler splits them into `errors`
   *  and `badChunks`. `penalties` below reads whichever is there. */
  failures?: number
  errors?: number
  badChunks?: number
  bannedUntil?: number | null
}

/** Failed requests and bad chunks held against a peer, whatever the profile calls them. */
export const penalties = (p: PeerProfile): number => (p.failures ?? 0) + (p.errors ?? 0) + (p.badChunks ?? 0)

/** Whether the node has the swarm scheduler's admin API (GET /-/mesh/transfers answers 200). */
export async function swarmApi (n: LabNode): Promise<boolean> {
  return (await adminGet(n, '/-/mesh/transfers')).status === 200
}

/** The node's recent transfers (the scheduler's API), or undefined without it. */
export async function transfers (n: LabNode): Promise<TransferRecord[] | undefined> {
  const r = await adminGet<TransferRecord[] | { transfers: TransferRecord[] }>(n, '/-/mesh/transfers')
  if (r.body == null) return undefined
  return Array.isArray(r.body) ? r.body : r.body.transfers
}

/** The node's most recent transfer of `cid`. */
export async function transferOf (n: LabNode, cid: string): Promise<TransferRecord | undefined> {
  const all = await transfers(n)
  return all?.filter(x => x.cid === cid).sort((a, b) => (b.startedAt ?? 0) - (a.startedAt ?? 0))[0]
}

/** Peer profiles (the scheduler's API), or undefined without it. */
export async function profiles (n: LabNode): Promise<PeerProfile[] | undefined> {
  const r = await adminGet<{ profiles?: PeerProfile[] }>(n, '/-/mesh/peers')
  return r.body?.profiles
}

/** Mesh bytes per host between two counter snapshots. */
export function delta (before: Array<{ sent: number, received: number }>, after: Array<{ sent: number, received: number }>): Array<{ sent: number, received: number }> {
  return after.map((a, i) => ({ sent: a.sent - before[i].sent, received: a.received - before[i].received }))
}
