// 1 GiB download throughput: the same random file from akmesh's generic repository and from
// nginx serving it from disk; streamed with node:http, bytes discarded; 3 downloads each.
//
//   node_modules/.bin/node bench/download.ts
//   env: BENCH_RUNS (default 3), BENCH_SIZE_MIB (default 1024),
//        AKMESH_BENCH_LOG_LEVEL (akmesh log level; default: the node's own default)
import { createReadStream } from 'node:fs'
import { once } from 'node:events'
import { Agent, get, request, type IncomingMessage } from 'node:http'
import { join } from 'node:path'
import { startAkmesh, type AkmeshNode } from './lib/akmesh.ts'
import { ensureRandomFile } from './lib/random-file.ts'
import { startNginx } from './lib/nginx.ts'
import { main, WORK_DIR } from './lib/proc.ts'
import { fmt, log, median, ratio, table, timeMs } from './lib/stats.ts'
import { loadAverage, runInfo } from './lib/run-info.ts'

const RUNS = Number(process.env.BENCH_RUNS ?? 3)
const SIZE = Number(process.env.BENCH_SIZE_MIB ?? 1024) * 1024 * 1024
const DIR = join(WORK_DIR, 'download')
const NAME = SIZE === 1024 ** 3 ? '1g.bin' : `${SIZE / 1024 / 1024}m.bin`
const FILE = join(DIR, NAME)

const ensureFile = async () => { await ensureRandomFile(FILE, SIZE) }

async function upload (node: AkmeshNode, path: string): Promise<void> {
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = request(`${node.url}${path}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${node.token}`, 'content-type': 'application/octet-stream', 'content-length': String(SIZE) }
    }, resolve)
    req.once('error', reject)
    createReadStream(FILE).once('error', reject).pipe(req)
  })
  let body = ''
  res.setEncoding('utf8').on('data', (d: string) => { body += d })
  await once(res, 'end')
  if ((res.statusCode ?? 0) >= 300) throw new Error(`akmesh: PUT ${path} -> ${res.statusCode} ${body.slice(0, 500)}`)
}

const agent = new Agent({ keepAlive: false })

/** Streams the URL's body and discards it; returns the byte count. */
async function download (url: string): Promise<number> {
  return await new Promise((resolve, reject) => {
    get(url, { agent }, res => {
      if (res.statusCode !== 200) { res.resume(); reject(new Error(`GET ${url} -> ${res.statusCode}`)); return }
      let n = 0
      res.on('data', (c: Buffer) => { n += c.length })
      res.once('end', () => resolve(n))
      res.once('error', reject)
    }).once('error', reject)
  })
}

await main(async () => {
  const loadAtStart = loadAverage()
  await ensureFile()
  const failures: string[] = []
  const targets: Array<{ name: string, url: string }> = []

  const nginx = await startNginx(DIR)
  targets.push({ name: 'nginx', url: `${nginx.url}/${NAME}` })
  let uploadMs: number | undefined
  try {
    const node = await startAkmesh()
    log(`akmesh up at ${node.url}; uploading ${NAME}`)
    const path = `/files/bench/${NAME}`
    uploadMs = (await timeMs(async () => await upload(node, path))).ms
    log(`akmesh: upload took ${fmt(uploadMs / 1000)} s`)
    targets.unshift({ name: 'akmesh', url: `${node.url}${path}` })
  } catch (err) {
    failures.push(`akmesh: ${err instanceof Error ? err.message : String(err)}`)
    log(failures.at(-1)!)
  }

  const speeds = new Map<string, number[]>(targets.map(t => [t.name, []]))
  for (let i = 0; i < RUNS; i++) {
    for (const t of i % 2 === 0 ? [...targets] : [...targets].reverse()) {
      try {
        const { ms, value: bytes } = await timeMs(async () => await download(t.url))
        if (bytes !== SIZE) throw new Error(`${t.name}: got ${bytes} bytes, expected ${SIZE}`)
        const mbs = bytes / 1e6 / (ms / 1000)
        speeds.get(t.name)!.push(mbs)
        log(`${t.name} run ${i + 1}/${RUNS}: ${fmt(mbs, 0)} MB/s`)
      } catch (err) {
        failures.push(`${t.name}: ${err instanceof Error ? err.message : String(err)}`)
        log(failures.at(-1)!)
        targets.splice(targets.indexOf(t), 1)
      }
    }
  }

  console.log(`\ndownload of a ${SIZE / 1024 / 1024} MiB random file over 127.0.0.1 (node:http client, bytes discarded), ${RUNS} runs each`)
  const rows = [['server', 'runs (MB/s)', 'median (MB/s)']]
  for (const [name, xs] of speeds) if (xs.length > 0) rows.push([name, xs.map(x => fmt(x, 0)).join(' '), fmt(median(xs), 0)])
  table(rows)
  if (uploadMs != null) console.log(`akmesh upload (PUT /files/bench/${NAME}): ${fmt(uploadMs / 1000)} s = ${fmt(SIZE / 1e6 / (uploadMs / 1000), 0)} MB/s`)
  const a = speeds.get('akmesh') ?? []
  const n = speeds.get('nginx') ?? []
  if (a.length > 0 && n.length > 0) console.log(`ratio akmesh/nginx (median MB/s): ${ratio(median(a), median(n))}`)
  console.log(runInfo(loadAtStart))
  if (failures.length > 0) {
    console.log(`\nFAILURES:\n${failures.map(f => `- ${f}`).join('\n')}`)
    process.exitCode = 1
  }
})
