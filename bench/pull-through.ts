// Pull-through: one file downloaded from a node that knows it only from a manifest and streams it
// while fetching it over the mesh, against the same download from the node that holds it. Three
// nodes on 127.0.0.1 in a line, A - B - C (C peers only with B): a file PUT on A is downloaded
// from A directly, from B (one hop: B pulls from A), and, for a second file, from C (two hops: C
// pulls from B, which relays it from A while it fetches it). Ratios are total-time ratios
// against the direct download of the same run.
//
//   node_modules/.bin/node bench/pull-through.ts
//   env: BENCH_SIZE_MIB (default 256), BENCH_RUNS (1), BENCH_BASELINE (the root of another
//        checkout: the same scenario with its CLI, in the same invocation), BENCH_CPU_PROF (a
//        directory: B writes a V8 CPU profile there when it stops), BENCH_DEBUG=1 (fetch logs)
import { spawn, type ChildProcess } from 'node:child_process'
import { createReadStream, existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs'
import { get, request, type IncomingMessage } from 'node:http'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { AKMESH_CLI } from './lib/akmesh.ts'
import { cpuMs, main, NODE, onCleanup, run, tempDir, WORK_DIR } from './lib/proc.ts'
import { ensureRandomFile } from './lib/random-file.ts'
import { loadAverage, runInfo } from './lib/run-info.ts'
import { fmt, log, median, table } from './lib/stats.ts'

const SIZE = Number(process.env.BENCH_SIZE_MIB ?? 256) * 1024 * 1024
const RUNS = Number(process.env.BENCH_RUNS ?? 1)
const BASELINE = process.env.BENCH_BASELINE
const PROF = process.env.BENCH_CPU_PROF

interface MeshNode { pid: number, url: string, token: string, peerId: string, meshAddr: string, output: () => string, stop: () => Promise<void> }

function cleanEnv (): NodeJS.ProcessEnv {
  const env = { ...process.env }
  for (const k of Object.keys(env)) if (k.startsWith('AKMESH_')) delete env[k]
  return env
}

async function peerIdOf (cli: string, dataDir: string): Promise<string> {
  const r = await run(NODE, [cli, 'id', '--data', dataDir, '--json'], { quiet: true, env: cleanEnv() })
  return JSON.parse(r.stdout).peerId
}

async function startMeshNode (cli: string, dataDir: string, peering: Record<string, unknown>, nodeArgs: string[] = []): Promise<MeshNode> {
  writeFileSync(join(dataDir, 'peering.json'), JSON.stringify({ listen: ['/ip4/127.0.0.1/tcp/0'], ...peering }))
  const proc: ChildProcess = spawn(NODE, [...nodeArgs, cli, 'start', '--data', dataDir, '--host', '127.0.0.1', '--port', '0', '--mesh-port', '0'], { stdio: ['ignore', 'pipe', 'pipe'], env: cleanEnv() })
  const exited = new Promise<void>(resolve => proc.once('exit', () => { resolve() }))
  // SIGTERM: the node stops cleanly (and writes its CPU profile); SIGKILL if it does not.
  const stop = async (): Promise<void> => {
    if (proc.exitCode != null || proc.signalCode != null) return
    proc.kill('SIGTERM')
    const timer = setTimeout(() => { proc.kill('SIGKILL') }, 20_000)
    await exited
    clearTimeout(timer)
  }
  onCleanup(stop)
  let out = ''
  return await new Promise<MeshNode>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`node did not start:\n${out}`)) }, 90_000)
    const onData = (b: Buffer): void => {
      out += b.toString()
      if (out.length > 4_000_000) out = out.slice(-1_000_000)
      const url = /"url":"(http:\/\/[^"]+)"[^\n]*"msg":"listening"/.exec(out)
      const token = /akm_[A-Za-z0-9_-]{43}/.exec(out)
      const meshLine = out.split('\n').find(l => l.includes('"msg":"mesh listening"'))
      if (url != null && token != null && meshLine != null) {
        clearTimeout(timer)
        const m = JSON.parse(meshLine) as { peerId: string, multiaddrs: string[] }
        resolve({ pid: proc.pid as number, url: url[1], token: token[0], peerId: m.peerId, meshAddr: m.multiaddrs.find(a => a.includes('/127.0.0.1/')) as string, output: () => out, stop })
      }
    }
    proc.stdout!.on('data', onData)
    proc.stderr!.on('data', onData)
    proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`node exited with ${code}:\n${out}`)) })
  })
}

/** Downloads `url`, discarding bytes: time to first body byte and total, in ms. */
async function download (url: string): Promise<{ ttfb: number, total: number, bytes: number }> {
  const t0 = performance.now()
  const res = await new Promise<IncomingMessage>((resolve, reject) => { get(url, resolve).once('error', reject) })
  if (res.statusCode !== 200) throw new Error(`GET ${url}: ${res.statusCode}`)
  let ttfb = -1
  let bytes = 0
  for await (const piece of res) {
    if (ttfb < 0) ttfb = performance.now() - t0
    bytes += (piece as Buffer).length
  }
  return { ttfb, total: performance.now() - t0, bytes }
}

async function upload (node: MeshNode, path: string, file: string): Promise<void> {
  const req = request(`${node.url}/files/${path}`, { method: 'PUT', headers: { authorization: `Bearer ${node.token}`, 'content-length': String(statSync(file).size) } })
  const res = new Promise<IncomingMessage>((resolve, reject) => { req.once('response', resolve).once('error', reject) })
  await pipeline(createReadStream(file, { highWaterMark: 1024 * 1024 }), req)
  const r = await res
  let text = ''
  for await (const piece of r) text += String(piece)
  if (r.statusCode !== 201) throw new Error(`PUT ${path}: ${r.statusCode} ${text}`)
}

async function until (check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 120_000
  while (!await check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}

const knows = async (node: MeshNode, name: string): Promise<boolean> =>
  (await (await fetch(`${node.url}/files/bench/`)).text()).includes(name)

interface Result {
  direct: number[], oneHop: number[], twoHops: number[], ttfb: { direct: number[], oneHop: number[], twoHops: number[] }
  /** CPU ms (user + system, all threads) of the nodes during each download: robust to other load
   *  on a shared machine, unlike the times. */
  cpu: { direct: number[], oneHop: number[], twoHops: number[] }
}

/** Runs `fn` and the CPU ms the nodes used meanwhile. */
async function withCpu<T> (nodes: MeshNode[], fn: () => Promise<T>): Promise<[T, number]> {
  const before = nodes.map(n => cpuMs(n.pid))
  const value = await fn()
  return [value, nodes.reduce((sum, n, i) => sum + cpuMs(n.pid) - before[i], 0)]
}

/** One line A - B - C with `cli`; each run uploads two fresh files to A. */
async function scenario (label: string, cli: string, files: string[]): Promise<Result> {
  const dirs = ['a', 'b', 'c'].map(n => tempDir(`pull-${label}-${n}`))
  const [idA, idB, idC] = await Promise.all(dirs.map(async d => await peerIdOf(cli, d)))
  const prof = PROF != null && PROF !== '' ? join(PROF, label) : undefined
  if (prof != null) mkdirSync(prof, { recursive: true })
  const a = await startMeshNode(cli, dirs[0], { allow: [idB] })
  const b = await startMeshNode(cli, dirs[1], { allow: [idA, idC], bootstrap: [a.meshAddr] }, prof != null ? ['--cpu-prof', '--cpu-prof-dir', prof] : [])
  // C accepts A's manifests (A is a member) but connects only to B: A's allowlist refuses C.
  const c = await startMeshNode(cli, dirs[2], { allow: [idA, idB], bootstrap: [b.meshAddr] })
  const r: Result = { direct: [], oneHop: [], twoHops: [], ttfb: { direct: [], oneHop: [], twoHops: [] }, cpu: { direct: [], oneHop: [], twoHops: [] } }
  for (let i = 0; i < RUNS; i++) {
    const [one, two] = [`one-${i}.bin`, `two-${i}.bin`]
    await upload(a, `bench/${one}`, files[0])
    await upload(a, `bench/${two}`, files[1])
    await until(async () => await knows(b, one) && await knows(c, two), 'B and C to know the files from A\'s manifests')
    const [direct, cpuDirect] = await withCpu([a, b, c], async () => await download(`${a.url}/files/bench/${one}`))
    const [oneHop, cpuOne] = await withCpu([a, b, c], async () => await download(`${b.url}/files/bench/${one}`))
    const [twoHops, cpuTwo] = await withCpu([a, b, c], async () => await download(`${c.url}/files/bench/${two}`))
    r.cpu.direct.push(cpuDirect); r.cpu.oneHop.push(cpuOne); r.cpu.twoHops.push(cpuTwo)
    for (const x of [direct, oneHop, twoHops]) if (x.bytes !== SIZE) throw new Error(`got ${x.bytes} bytes, expected ${SIZE}`)
    r.direct.push(direct.total); r.oneHop.push(oneHop.total); r.twoHops.push(twoHops.total)
    r.ttfb.direct.push(direct.ttfb); r.ttfb.oneHop.push(oneHop.ttfb); r.ttfb.twoHops.push(twoHops.ttfb)
    log(`${label} run ${i + 1}: direct ${fmt(direct.total, 0)} ms, one hop ${fmt(oneHop.total, 0)} ms, two hops ${fmt(twoHops.total, 0)} ms`)
  }
  if (process.env.BENCH_DEBUG != null) log(b.output().split('\n').filter(l => l.includes('mesh:fetch')).join('\n'))
  await Promise.all([a.stop(), b.stop(), c.stop()])
  return r
}

await main(async () => {
  const loadAtStart = loadAverage()
  const files = [join(WORK_DIR, `pull-${SIZE}-1.bin`), join(WORK_DIR, `pull-${SIZE}-2.bin`)]
  // Two different files (fresh random bytes per path): the second is not on B when C asks.
  for (const f of files) await ensureRandomFile(f, SIZE)
  const results: Array<[string, Result]> = []
  if (BASELINE != null) {
    const baseCli = join(BASELINE, 'node/cli.ts')
    if (!existsSync(baseCli)) throw new Error(`BENCH_BASELINE: no CLI at ${baseCli}`)
    results.push(['baseline', await scenario('baseline', baseCli, files)])
  }
  results.push(['this', await scenario('this', AKMESH_CLI, files)])

  const mibs = (ms: number): string => fmt(SIZE / 1024 / 1024 / (ms / 1000), 1)
  const rows = [['checkout', 'download', 'TTFB ms', 'total ms', 'MiB/s', 'x direct', 'nodes CPU ms/MiB']]
  for (const [label, r] of results) {
    const d = median(r.direct)
    for (const [name, xs, ttfb, cpu] of [['A direct', r.direct, r.ttfb.direct, r.cpu.direct], ['B one hop (from A)', r.oneHop, r.ttfb.oneHop, r.cpu.oneHop], ['C two hops (via B)', r.twoHops, r.ttfb.twoHops, r.cpu.twoHops]] as const) {
      rows.push([label, name, fmt(median(ttfb), 1), fmt(median(xs), 0), mibs(median(xs)), fmt(d / median(xs), 2), fmt(median(cpu) / (SIZE / 1024 / 1024), 1)])
    }
  }
  console.log(`\n${SIZE / 1024 / 1024} MiB, ${RUNS} run(s) per checkout${BASELINE != null ? `, baseline ${BASELINE}` : ''}`)
  table(rows)
  for (const [label, r] of results) {
    console.log(`${label}: one hop / direct ${fmt(median(r.direct) / median(r.oneHop), 2)}   two hops / direct ${fmt(median(r.direct) / median(r.twoHops), 2)}`)
  }
  console.log(runInfo(loadAtStart))
})
