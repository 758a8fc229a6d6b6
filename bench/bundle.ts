// Air-gap bundle throughput: `akmesh export` of a node holding 2 GiB of blobs, and `akmesh import`
// of that bundle into a fresh data directory (no node running: the direct path), each against
// `cp` of the same bytes on the same disk (the blob files for export, the bundle for import).
// Every run writes new files; akmesh fsyncs what it writes, so `cp` is also shown followed by
// `sync` of the copies. Process start-up is included on both sides.
//
//   node_modules/.bin/node bench/bundle.ts
//   env: BENCH_RUNS (default 3), BENCH_SIZE_MIB (default 2048), BENCH_FILES (default 8: the
//        size is spread over this many generic files), BENCH_BASELINE (the root of another
//        checkout, e.g. the commit before a change: its CLI exports and imports the same data in
//        the same runs, shown as "export (baseline)" and "import (baseline)"), BENCH_CPU_PROF (a
//        directory: the akmesh processes run with --cpu-prof and write their profiles there)
import { once } from 'node:events'
import { createReadStream, existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { request, type IncomingMessage } from 'node:http'
import { execFileSync } from 'node:child_process'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { AKMESH_CLI, startAkmesh, type AkmeshNode } from './lib/akmesh.ts'
import { ensureRandomFile } from './lib/random-file.ts'
import { main, NODE, ROOT, run, tempDir, WORK_DIR } from './lib/proc.ts'
import { fmt, log, median, ratio, table, timeMs } from './lib/stats.ts'

const RUNS = Number(process.env.BENCH_RUNS ?? 3)
const SIZE = Number(process.env.BENCH_SIZE_MIB ?? 2048) * 1024 * 1024
const FILES = Number(process.env.BENCH_FILES ?? 8)
const DIR = join(WORK_DIR, 'bundle')
const BASELINE = process.env.BENCH_BASELINE
const CPU_PROF = process.env.BENCH_CPU_PROF

/** Random source files, written once and kept under bench/.work/bundle. */
async function ensureFiles (): Promise<string[]> {
  mkdirSync(DIR, { recursive: true })
  const each = Math.floor(SIZE / FILES)
  const files: string[] = []
  for (let i = 0; i < FILES; i++) {
    const file = join(DIR, `part-${i}-${each}.bin`)
    files.push(file)
    await ensureRandomFile(file, each)
  }
  return files
}

async function upload (node: AkmeshNode, file: string, path: string): Promise<void> {
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = request(`${node.url}${path}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${node.token}`, 'content-type': 'application/octet-stream', 'content-length': String(statSync(file).size) }
    }, resolve)
    req.once('error', reject)
    createReadStream(file).once('error', reject).pipe(req)
  })
  res.resume()
  await once(res, 'end')
  if ((res.statusCode ?? 0) >= 300) throw new Error(`PUT ${path} -> ${res.statusCode}`)
}

/** Waits until the node has signed a manifest for each of its `n` changes. */
async function signed (node: AkmeshNode, n: number): Promise<string> {
  for (const deadline = Date.now() + 120_000; Date.now() < deadline; await new Promise(resolve => setTimeout(resolve, 200))) {
    const res = await fetch(`${node.url}/-/mesh/status`, { headers: { authorization: `Bearer ${node.token}` } })
    const s = await res.json() as { peerId: string, watermarks?: Record<string, number> }
    if ((s.watermarks?.[s.peerId] ?? 0) >= n) return s.peerId
  }
  throw new Error('the node did not sign its changes within 120 s')
}

const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('AKMESH_')))
const TIME = '/usr/bin/time'
interface Usage { peakRss?: number, cpuS?: number }
/** Runs a command, under GNU time where present for its CPU seconds (user + sys) and peak
 *  resident memory: on a shared machine CPU time is steadier than wall time. */
async function timed (cmd: string, args: string[], opts: { cwd?: string, env?: NodeJS.ProcessEnv } = {}): Promise<Usage> {
  if (!existsSync(TIME)) { await run(cmd, args, opts); return {} }
  const r = await run(TIME, ['-f', 'usage %U %S %M', cmd, ...args], opts)
  const m = /usage ([\d.]+) ([\d.]+) (\d+)/.exec(r.stderr)
  return m == null ? {} : { cpuS: Number(m[1]) + Number(m[2]), peakRss: Number(m[3]) * 1024 }
}
/** The CLI with the embedded default config (no akmesh.yaml from the working directory); `cli`
 *  is another checkout's (BENCH_BASELINE). Under BENCH_CPU_PROF each run writes a CPU profile
 *  named after its operation. */
const akmesh = async (args: string[], cli = AKMESH_CLI, label = args[0]) => {
  const prof = CPU_PROF == null ? [] : ['--cpu-prof', '--cpu-prof-dir', CPU_PROF, '--cpu-prof-name', `${label}-${Date.now()}.cpuprofile`]
  return await timed(NODE, [...prof, cli, ...args], { env: cleanEnv, cwd: WORK_DIR })
}
const commitOf = (dir: string): string => {
  try {
    const head = execFileSync('git', ['-C', dir, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
    const dirty = execFileSync('git', ['-C', dir, 'status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() !== ''
    return dirty ? `${head} (with uncommitted changes)` : head
  } catch { return 'unknown (not a git checkout)' }
}
const load = (): string => loadavg().map(x => x.toFixed(2)).join(' ')

await main(async () => {
  const loadAtStart = load()
  if (CPU_PROF != null) mkdirSync(CPU_PROF, { recursive: true })
  const baseCli = BASELINE == null ? undefined : join(BASELINE, 'node/cli.ts')
  if (baseCli != null && !existsSync(baseCli)) throw new Error(`BENCH_BASELINE: no CLI at ${baseCli}`)
  const files = await ensureFiles()
  const node = await startAkmesh({ peering: { listen: ['/ip4/127.0.0.1/tcp/0'] } }) // not the default 7071: other nodes may run
  log(`akmesh up at ${node.url}; uploading ${FILES} files (${SIZE / 1024 / 1024} MiB)`)
  for (const [i, f] of files.entries()) await upload(node, f, `/files/bench/part-${i}.bin`)
  const peerId = await signed(node, FILES)
  await node.stop() // export reads the data directory; nothing else competes for the disk
  const blobFiles = readdirSync(join(node.dataDir, 'blobs'), { recursive: true, withFileTypes: true })
    .filter(e => e.isFile()).map(e => join(e.parentPath, e.name))
  const blobBytes = blobFiles.reduce((n, f) => n + statSync(f).size, 0)

  const work = tempDir('bundle') // same file system as the data directory (both under tmpdir)
  const bundle = join(work, 'bundle.car')
  const speeds: Record<string, number[]> = { export: [], 'cp blobs': [], 'cp blobs + sync': [], import: [], 'cp bundle': [], 'cp bundle + sync': [] }
  if (baseCli != null) { speeds['export (baseline)'] = []; speeds['import (baseline)'] = [] }
  const mbs = (bytes: number, ms: number) => bytes / 1e6 / (ms / 1000)
  let bundleBytes = 0
  const peak = { export: 0, import: 0 }
  const cpu: Record<string, number[]> = { export: [], 'export (baseline)': [], 'cp blobs': [], import: [], 'import (baseline)': [], 'cp bundle': [] }

  const exportWith = async (cli: string | undefined, i: number): Promise<void> => {
    const name = cli == null ? 'export' : 'export (baseline)'
    const out = cli == null ? bundle : join(work, 'bundle-baseline.car')
    rmSync(out, { force: true })
    const e = await timeMs(async () => await akmesh(['export', out, '--data', node.dataDir], cli ?? AKMESH_CLI, cli == null ? 'export' : 'export-baseline'))
    const bytes = statSync(out).size
    if (e.value.cpuS != null) cpu[name].push(e.value.cpuS)
    if (cli == null) {
      peak.export = Math.max(peak.export, e.value.peakRss ?? 0)
      bundleBytes = bytes
    } else rmSync(out, { force: true })
    speeds[name].push(mbs(bytes, e.ms))
    log(`${name} run ${i + 1}: ${fmt(mbs(bytes, e.ms), 0)} MB/s (${bytes} bytes)`)
  }
  const importWith = async (cli: string | undefined, i: number): Promise<void> => {
    const name = cli == null ? 'import' : 'import (baseline)'
    const target = join(work, `import-${i}`)
    mkdirSync(target)
    writeFileSync(join(target, 'peering.json'), JSON.stringify({ allow: [peerId] }))
    await akmesh(['id', '--data', target], cli ?? AKMESH_CLI) // the identity is not what is measured
    const im = await timeMs(async () => await akmesh(['import', bundle, '--data', target], cli ?? AKMESH_CLI, cli == null ? 'import' : 'import-baseline'))
    if (im.value.cpuS != null) cpu[name].push(im.value.cpuS)
    if (cli == null) peak.import = Math.max(peak.import, im.value.peakRss ?? 0)
    speeds[name].push(mbs(bundleBytes, im.ms))
    log(`${name} run ${i + 1}: ${fmt(mbs(bundleBytes, im.ms), 0)} MB/s`)
    rmSync(target, { recursive: true, force: true })
  }

  for (let i = 0; i < RUNS; i++) {
    // The baseline goes first in every other run: the second of two back-to-back 1 GiB writes
    // was measured ~1.5 x slower on this disk with identical code.
    const order = baseCli == null ? [undefined] : i % 2 === 0 ? [undefined, baseCli] : [baseCli, undefined]
    for (const cli of order) await exportWith(cli, i)
    for (const withSync of [false, true]) {
      const copyDir = join(work, 'blobs-copy')
      mkdirSync(copyDir)
      const c = await timeMs(async () => {
        const u = await timed('cp', [...blobFiles, copyDir])
        if (!withSync && u.cpuS != null) cpu['cp blobs'].push(u.cpuS)
        if (withSync) await run('sync', readdirSync(copyDir).map(f => join(copyDir, f)))
      })
      speeds[withSync ? 'cp blobs + sync' : 'cp blobs'].push(mbs(blobBytes, c.ms))
      rmSync(copyDir, { recursive: true, force: true })
    }

    for (const cli of order) await importWith(cli, i)
    for (const withSync of [false, true]) {
      const copy = join(work, 'bundle-copy.car')
      const c = await timeMs(async () => {
        const u = await timed('cp', [bundle, copy])
        if (!withSync && u.cpuS != null) cpu['cp bundle'].push(u.cpuS)
        if (withSync) await run('sync', [copy])
      })
      speeds[withSync ? 'cp bundle + sync' : 'cp bundle'].push(mbs(bundleBytes, c.ms))
      rmSync(copy, { force: true })
    }
  }

  console.log(`\ncommit ${commitOf(ROOT)}${BASELINE != null ? `, baseline ${commitOf(BASELINE)} (${BASELINE})` : ''}; load average at start ${loadAtStart}, at end ${load()}`)
  console.log(`air-gap bundle of ${FILES} generic files, ${blobBytes} bytes of blobs (bundle ${bundleBytes} bytes), ${RUNS} runs each, same disk`)
  const rows = [['operation', 'runs (MB/s)', 'median (MB/s)']]
  for (const [name, xs] of Object.entries(speeds)) rows.push([name, xs.map(x => fmt(x, 0)).join(' '), fmt(median(xs), 0)])
  table(rows)
  const m = (k: string) => median(speeds[k])
  console.log(`ratio export/cp: ${ratio(m('export'), m('cp blobs'))}   export/(cp+sync): ${ratio(m('export'), m('cp blobs + sync'))}`)
  if (cpu.export.length > 0) {
    const c = (k: string) => median(cpu[k])
    console.log(`CPU seconds (user+sys, median): export ${fmt(c('export'))}, cp blobs ${fmt(c('cp blobs'))}, import ${fmt(c('import'))}, cp bundle ${fmt(c('cp bundle'))}`)
    if (baseCli != null) console.log(`CPU seconds of the baseline (user+sys, median): export ${fmt(c('export (baseline)'))}, import ${fmt(c('import (baseline)'))}`)
  }
  if (peak.export > 0) console.log(`peak RSS of the akmesh process: export ${fmt(peak.export / 1024 / 1024, 0)} MiB, import ${fmt(peak.import / 1024 / 1024, 0)} MiB`)
  console.log(`ratio import/cp: ${ratio(m('import'), m('cp bundle'))}   import/(cp+sync): ${ratio(m('import'), m('cp bundle + sync'))}`)
  if (baseCli != null) {
    console.log(`baseline: ratio export/cp: ${ratio(m('export (baseline)'), m('cp blobs'))}   export/(cp+sync): ${ratio(m('export (baseline)'), m('cp blobs + sync'))}`)
    console.log(`baseline: ratio import/cp: ${ratio(m('import (baseline)'), m('cp bundle'))}   import/(cp+sync): ${ratio(m('import (baseline)'), m('cp bundle + sync'))}`)
  }
})
