// 1 GiB upload throughput: a generic PUT and an OCI monolithic blob upload (POST ?digest=) of the
// same random file, each next to its ceiling in the same run: a Node script hashing the file with
// the digests that format stores (bench/lib/hash-file.ts; BLAKE3 and the chunk table are always
// stored). Also shown: the script with every digest (sha256+sha512+sha1), what uploads cost when
// every format's digests were computed on every upload.
//
//   node_modules/.bin/node bench/upload.ts
//   env: BENCH_RUNS (default 3), BENCH_SIZE_MIB (default 1024), AKMESH_BENCH_LOG_LEVEL,
//        AKMESH_BENCH_NODE_ARGS (node flags for the node, e.g. --cpu-prof --cpu-prof-dir=DIR)
import { createReadStream } from 'node:fs'
import { once } from 'node:events'
import { request, type IncomingMessage } from 'node:http'
import { join } from 'node:path'
import { startAkmesh, type AkmeshNode } from './lib/akmesh.ts'
import { ensureRandomFile } from './lib/random-file.ts'
import { BENCH_DIR, main, NODE, run, WORK_DIR } from './lib/proc.ts'
import { loadAverage, runInfo } from './lib/run-info.ts'
import { fmt, log, median, ratio, table, timeMs } from './lib/stats.ts'

const RUNS = Number(process.env.BENCH_RUNS ?? 3)
const SIZE = Number(process.env.BENCH_SIZE_MIB ?? 1024) * 1024 * 1024
const DIR = join(WORK_DIR, 'download') // the same file bench/download.ts serves
const NAME = SIZE === 1024 ** 3 ? '1g.bin' : `${SIZE / 1024 / 1024}m.bin`
const FILE = join(DIR, NAME)

/** What each format stores besides BLAKE3 and its chunk table (protocols/<format> declares it). */
const FORMAT_DIGESTS = { generic: 'blake3,sha256', oci: 'blake3,sha256' }
const ALL_DIGESTS = 'blake3,sha256,sha512,sha1'

const ensureFile = async () => { await ensureRandomFile(FILE, SIZE) }

async function hashScript (digests: string): Promise<{ ms: number, digests: Record<string, string> }> {
  const r = await run(NODE, [join(BENCH_DIR, 'lib/hash-file.ts'), FILE, digests], { quiet: true })
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { ms: number, digests: Record<string, string> }
}

async function send (url: string, method: string, headers: Record<string, string>): Promise<void> {
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = request(url, { method, headers: { ...headers, 'content-type': 'application/octet-stream', 'content-length': String(SIZE) } }, resolve)
    req.once('error', reject)
    createReadStream(FILE, { highWaterMark: 1024 * 1024 }).once('error', reject).pipe(req)
  })
  let body = ''
  res.setEncoding('utf8').on('data', (d: string) => { body += d })
  await once(res, 'end')
  if ((res.statusCode ?? 0) >= 300) throw new Error(`${method} ${url} -> ${res.statusCode} ${body.slice(0, 500)}`)
}

const uploads = (node: AkmeshNode, sha256: string, i: number): Record<string, () => Promise<void>> => ({
  generic: async () => await send(`${node.url}/files/bench/run${i}/${NAME}`, 'PUT', { authorization: `Bearer ${node.token}` }),
  oci: async () => await send(`${node.url}/v2/docker/bench/up/blobs/uploads/?digest=sha256:${sha256}`, 'POST',
    { authorization: `Basic ${Buffer.from(`admin:${node.token}`).toString('base64')}` })
})

await main(async () => {
  const loadAtStart = loadAverage()
  await ensureFile()
  const first = await hashScript(ALL_DIGESTS)
  const sha256 = first.digests.sha256
  const node = await startAkmesh()
  log(`akmesh up at ${node.url}`)
  const results = new Map<string, number[]>()
  const add = (k: string, mbs: number) => { results.set(k, [...(results.get(k) ?? []), mbs]); log(`${k}: ${fmt(mbs, 0)} MB/s`) }
  const mbs = (ms: number) => SIZE / 1e6 / (ms / 1000)
  for (let i = 0; i < RUNS; i++) {
    for (const format of ['generic', 'oci'] as const) {
      add(`${format} upload`, mbs((await timeMs(uploads(node, sha256, i)[format])).ms))
      add(`${format} script (${FORMAT_DIGESTS[format]})`, mbs((await hashScript(FORMAT_DIGESTS[format])).ms))
    }
    add(`script (${ALL_DIGESTS})`, mbs((await hashScript(ALL_DIGESTS)).ms))
  }

  console.log(`\nupload of a ${SIZE / 1024 / 1024} MiB random file over 127.0.0.1 (node:http client), ${RUNS} runs each;` +
    ' script = one Node process hashing the file in 1 MiB reads')
  const rows = [['what', 'runs (MB/s)', 'median (MB/s)']]
  for (const [name, xs] of results) rows.push([name, xs.map(x => fmt(x, 0)).join(' '), fmt(median(xs), 0)])
  table(rows)
  for (const format of ['generic', 'oci'] as const) {
    const up = median(results.get(`${format} upload`)!)
    console.log(`ratio ${format} upload / script with its digests: ${ratio(up, median(results.get(`${format} script (${FORMAT_DIGESTS[format]})`)!))}` +
      `; / script with all digests: ${ratio(up, median(results.get(`script (${ALL_DIGESTS})`)!))}`)
  }
  console.log(runInfo(loadAtStart))
})
