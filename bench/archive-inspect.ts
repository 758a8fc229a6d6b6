// Event-loop responsiveness while a large, legitimate npm tarball is inspected: the old path (tar's
// Parser fed the whole buffer in one synchronous loop, inflating with its own synchronous zlib)
// against protocols/shared/archive.ts (node:zlib on the thread pool, a yield every MiB). A 1 ms
// ticker runs meanwhile; the figure is the longest the loop went without running it, i.e. how
// long every other request on the node would have waited. A third row runs the old path in a
// worker thread (the other way off the loop), the tarball copied to it, for comparison.
//
//   node_modules/.bin/node bench/archive-inspect.ts
//   env: BENCH_SIZE_MIB (unpacked size, default 128), BENCH_FILES (default 2000), BENCH_RUNS (3)
import { randomBytes } from 'node:crypto'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads'
import { Parser, type ReadEntry } from 'tar'
import { DEFAULT_ARCHIVE_LIMITS } from '../protocols/shared/archive.ts'
import { inspectTarball } from '../protocols/npm/tarball.ts'
import { npmTgz } from '../test/helpers/archives.ts'
import { main } from './lib/proc.ts'
import { fmt, log, median, ratio, table } from './lib/stats.ts'

const SIZE = Number(process.env.BENCH_SIZE_MIB ?? 128) * 1024 * 1024
const FILES = Number(process.env.BENCH_FILES ?? 2000)
const RUNS = Number(process.env.BENCH_RUNS ?? 3)

/** The inspection as it was before the shared reader (protocols/npm/tarball.ts at 5a1de67). */
async function oldInspect (tgz: Buffer): Promise<number> {
  let files = 0
  const parser = new Parser({ strict: true, onReadEntry: (e: ReadEntry) => { files++; e.resume() } })
  const done = new Promise<void>((resolve, reject) => { parser.on('end', resolve); parser.on('error', reject) })
  for (let at = 0; at < tgz.length; at += 256 * 1024) parser.write(tgz.subarray(at, at + 256 * 1024))
  parser.end()
  await done
  return files
}

async function inWorker (tgz: Buffer): Promise<number> {
  const worker = new Worker(new URL(import.meta.url), { workerData: tgz })
  try {
    return await new Promise<number>((resolve, reject) => { worker.once('message', resolve); worker.once('error', reject) })
  } finally { await worker.terminate() }
}

async function newInspect (tgz: Buffer): Promise<number> {
  const limits = { ...DEFAULT_ARCHIVE_LIMITS, ratio: 1e9 }
  return (await inspectTarball(tgz, limits)).fileCount
}

/** Runs `fn` with a 1 ms ticker; the longest gap between ticks and the loop delay's p99. */
async function measure (fn: () => Promise<number>): Promise<{ ms: number, maxGapMs: number, p99Ms: number, files: number }> {
  const h = monitorEventLoopDelay({ resolution: 1 })
  let last = performance.now()
  let maxGap = 0
  const ticker = setInterval(() => { const now = performance.now(); maxGap = Math.max(maxGap, now - last); last = now }, 1)
  h.enable()
  const t0 = performance.now()
  const files = await fn()
  const ms = performance.now() - t0
  maxGap = Math.max(maxGap, performance.now() - last)
  h.disable()
  clearInterval(ticker)
  return { ms, maxGapMs: maxGap, p99Ms: h.percentile(99) / 1e6, files }
}

if (!isMainThread) {
  parentPort?.postMessage(await oldInspect(Buffer.from(workerData as Uint8Array)))
} else {
await main(async () => {
  // Text-like content (hex of random bytes) compresses about 2:1, like source and data files.
  const per = Math.floor(SIZE / FILES)
  log(`building a tarball of ${FILES} files, ${fmt(SIZE / 1024 / 1024, 0)} MiB unpacked`)
  const tgz = await npmTgz('big-pkg', '1.0.0', Array.from({ length: FILES }, (_, i) => ({ path: `package/data/f${i}.txt`, text: randomBytes(per / 2).toString('hex') })))
  log(`tarball: ${fmt(tgz.length / 1024 / 1024, 1)} MiB`)
  const results: Record<string, Array<Awaited<ReturnType<typeof measure>>>> = { old: [], shared: [], worker: [] }
  for (let run = 0; run < RUNS; run++) {
    results.old.push(await measure(async () => await oldInspect(tgz)))
    results.shared.push(await measure(async () => await newInspect(tgz)))
    results.worker.push(await measure(async () => await inWorker(tgz)))
  }
  const NAMES: Record<string, string> = { old: 'old (synchronous)', shared: 'shared reader', worker: 'old, in a worker' }
  const m = (k: string, f: (r: Awaited<ReturnType<typeof measure>>) => number) => median(results[k].map(f))
  table([
    ['path', 'inspect ms', 'longest loop stall ms', 'loop delay p99 ms', 'files'],
    ...['old', 'shared', 'worker'].map(k => [NAMES[k], fmt(m(k, r => r.ms), 0), fmt(m(k, r => r.maxGapMs), 1), fmt(m(k, r => r.p99Ms), 1), String(results[k][0].files)])
  ])
  console.log(`longest stall, old / shared: ${ratio(m('old', r => r.maxGapMs), m('shared', r => r.maxGapMs))}; inspect time, shared / old: ${ratio(m('shared', r => r.ms), m('old', r => r.ms))} (medians of ${RUNS} runs)`)
})
}
