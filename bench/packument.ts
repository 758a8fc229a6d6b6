// Packument GET throughput (autocannon, 20 connections, 10 s) against akmesh vs Verdaccio for the
// same package with 50 published versions; full JSON and the abbreviated install-v1 form.
//
//   node_modules/.bin/node bench/packument.ts
//   env: BENCH_PACKAGE (default express), BENCH_VERSIONS (50), BENCH_DURATION (10 s),
//        BENCH_CONNECTIONS (20), BENCH_ANONYMOUS=1 (no Authorization header),
//        AKMESH_BENCH_LOG_LEVEL (akmesh log level; default: the node's own default),
//        BENCH_GZIP=0 (no Accept-Encoding: gzip; default: clients ask for gzip, as npm does)
// Baseline: nginx serving akmesh's own documents from files, gzip on (the issue's yardstick).
import { versionsCorpus } from './lib/corpus.ts'
import { ensureBenchDeps } from './lib/deps.ts'
import { escapeName } from './lib/npm-publish.ts'
import { chmod, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startNginx } from './lib/nginx.ts'
import { main, NODE, run, tempDir } from './lib/proc.ts'
import { load, startRegistries } from './lib/registries.ts'
import { fmt, log, ratio, table } from './lib/stats.ts'
import type { Registry } from './lib/types.ts'

const PACKAGE = process.env.BENCH_PACKAGE ?? 'express'
const VERSIONS = Number(process.env.BENCH_VERSIONS ?? 50)
const DURATION = Number(process.env.BENCH_DURATION ?? 10)
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 20)
const ANONYMOUS = process.env.BENCH_ANONYMOUS === '1'
const ABBREVIATED = 'application/vnd.npm.install-v1+json'
const GZIP = process.env.BENCH_GZIP !== '0'

interface CannonResult {
  requests: { average: number, total: number }
  throughput: { average: number }
  latency: { p50: number, p99: number }
  errors: number
  timeouts: number
  non2xx: number
}

await main(async () => {
  const { autocannonBin } = await ensureBenchDeps()
  const packages = await versionsCorpus(PACKAGE, VERSIONS)
  const { registries, failures } = await startRegistries()
  if (registries.length === 0) throw new Error(failures.join('\n'))
  const usable: Registry[] = []
  for (const reg of registries) {
    try {
      await load(reg, packages)
      usable.push(reg)
    } catch (err) {
      failures.push(`${reg.name}: publishing ${PACKAGE} failed: ${err instanceof Error ? err.message : String(err)}`)
      log(failures.at(-1)!)
    }
  }

  // The baseline: the same documents (as akmesh renders them) as files behind nginx.
  const akmesh = usable.find(r => r.name === 'akmesh')
  const files = tempDir('packument-files')
  if (akmesh != null) {
    for (const [file, accept] of [['full.json', undefined], ['abbreviated.json', ABBREVIATED]] as const) {
      const res = await fetch(`${akmesh.registry}${escapeName(PACKAGE)}`, { headers: { ...(accept != null ? { accept } : {}), authorization: `Bearer ${akmesh.token}` } })
      await writeFile(join(files, file), Buffer.from(await res.arrayBuffer()), { mode: 0o644 })
    }
  }
  await chmod(files, 0o755) // nginx's workers run as another user
  const nginx = akmesh == null ? undefined : await startNginx(files, { gzip: true })
  const urlOf = (reg: Registry, accept: string | undefined) => reg.name === 'nginx'
    ? `${reg.registry}${accept == null ? 'full.json' : 'abbreviated.json'}`
    : `${reg.registry}${escapeName(PACKAGE)}`
  if (nginx != null) usable.push({ ...akmesh as Registry, name: 'nginx', registry: `${nginx.url}/` })

  const cannon = async (reg: Registry, accept: string | undefined, seconds: number): Promise<CannonResult> => {
    const url = urlOf(reg, accept)
    const headers: string[] = []
    if (accept != null) headers.push('-H', `accept=${accept}`)
    if (GZIP) headers.push('-H', 'accept-encoding=gzip')
    if (!ANONYMOUS && reg.name !== 'nginx') headers.push('-H', `authorization=Bearer ${reg.token}`)
    const { stdout } = await run(NODE, [autocannonBin, '--json', '-c', String(CONNECTIONS), '-d', String(seconds), ...headers, url])
    return JSON.parse(stdout) as CannonResult
  }
  const size = async (reg: Registry, accept: string | undefined): Promise<number> => {
    const res = await fetch(urlOf(reg, accept), {
      headers: { ...(accept != null ? { accept } : {}), ...(ANONYMOUS ? {} : { authorization: `Bearer ${reg.token}` }) }
    })
    const body = await res.arrayBuffer()
    if (!res.ok) throw new Error(`${reg.name}: GET ${PACKAGE} (${accept ?? 'default accept'}) -> ${res.status}`)
    return body.byteLength
  }

  const rows = [['registry', 'accept', 'body (KiB)', 'req/s', 'MB/s', 'p50 ms', 'p99 ms', 'non2xx+err']]
  const rps = new Map<string, number>()
  for (const accept of [undefined, ABBREVIATED]) {
    for (const reg of usable) {
      try {
        const bytes = await size(reg, accept)
        await cannon(reg, accept, 2) // warm-up, not reported
        const r = await cannon(reg, accept, DURATION)
        const bad = r.non2xx + r.errors + r.timeouts
        rps.set(`${reg.name} ${accept ?? ''}`, r.requests.average)
        rows.push([reg.name, accept ?? '(none)', fmt(bytes / 1024, 1), fmt(r.requests.average, 0), fmt(r.throughput.average / 1e6, 1), String(r.latency.p50), String(r.latency.p99), String(bad)])
        log(`${reg.name} ${accept ?? '(no accept)'}: ${fmt(r.requests.average, 0)} req/s`)
        if (bad > 0) failures.push(`${reg.name} (${accept ?? 'no accept'}): ${r.non2xx} non-2xx, ${r.errors} errors, ${r.timeouts} timeouts`)
      } catch (err) {
        failures.push(`${reg.name} (${accept ?? 'no accept'}): ${err instanceof Error ? err.message : String(err)}`)
        log(failures.at(-1)!)
      }
    }
  }

  await nginx?.stop()
  console.log(`\npackument GET ${PACKAGE} (${packages.length} versions), autocannon -c ${CONNECTIONS} -d ${DURATION}, ${ANONYMOUS ? 'anonymous' : 'with bearer token'}, ${GZIP ? 'accept-encoding gzip' : 'uncompressed'}`)
  table(rows)
  for (const accept of ['', ABBREVIATED]) {
    const a = rps.get(`akmesh ${accept}`)
    const v = rps.get(`verdaccio ${accept}`)
    const n = rps.get(`nginx ${accept}`)
    const what = accept === '' ? 'full packument' : 'install-v1'
    if (a != null && v != null) console.log(`ratio akmesh/verdaccio req/s (${what}): ${ratio(a, v)}`)
    if (a != null && n != null) console.log(`ratio akmesh/nginx (file, gzip) req/s (${what}): ${ratio(a, n)}`)
  }
  if (failures.length > 0) {
    console.log(`\nFAILURES:\n${failures.map(f => `- ${f}`).join('\n')}`)
    process.exitCode = 1
  }
})
