// Pull-through: time to first byte and total time for one file downloaded from node B, which
// knows it only from A's manifest and streams it while fetching it from A over the mesh, against
// the same download from A directly (bytes on A's disk). Two nodes on 127.0.0.1.
//
//   node_modules/.bin/node bench/pull-through.ts
//   env: BENCH_SIZE_MIB (default 50)
import { spawn, type ChildProcess } from 'node:child_process'
import { randomFillSync } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { get, type IncomingMessage } from 'node:http'
import { join } from 'node:path'
import { AKMESH_CLI } from './lib/akmesh.ts'
import { main, NODE, onCleanup, run, tempDir } from './lib/proc.ts'
import { fmt, log, table } from './lib/stats.ts'

const SIZE = Number(process.env.BENCH_SIZE_MIB ?? 50) * 1024 * 1024

interface MeshNode { url: string, token: string, peerId: string, meshAddr: string, output: () => string }

async function peerIdOf (dataDir: string): Promise<string> {
  const r = await run(NODE, [AKMESH_CLI, 'id', '--data', dataDir, '--json'], { quiet: true })
  return JSON.parse(r.stdout).peerId
}

async function startMeshNode (dataDir: string, peering: Record<string, unknown>): Promise<MeshNode> {
  writeFileSync(join(dataDir, 'peering.json'), JSON.stringify({ listen: ['/ip4/127.0.0.1/tcp/0'], ...peering }))
  const proc: ChildProcess = spawn(NODE, [AKMESH_CLI, 'start', '--data', dataDir, '--host', '127.0.0.1', '--port', '0', '--mesh-port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] })
  onCleanup(async () => { proc.kill('SIGKILL') })
  let out = ''
  return await new Promise<MeshNode>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`node did not start:\n${out}`)) }, 90_000)
    const onData = (b: Buffer): void => {
      out += b.toString()
      const url = /"url":"(http:\/\/[^"]+)"[^\n]*"msg":"listening"/.exec(out)
      const token = /akm_[A-Za-z0-9_-]{43}/.exec(out)
      const meshLine = out.split('\n').find(l => l.includes('"msg":"mesh listening"'))
      if (url != null && token != null && meshLine != null) {
        clearTimeout(timer)
        const m = JSON.parse(meshLine) as { peerId: string, multiaddrs: string[] }
        resolve({ url: url[1], token: token[0], peerId: m.peerId, meshAddr: m.multiaddrs.find(a => a.includes('/127.0.0.1/')) as string, output: () => out })
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

async function until (check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 60_000
  while (!await check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}

await main(async () => {
  const dirA = tempDir('akmesh-pull-a-')
  const dirB = tempDir('akmesh-pull-b-')
  const [idA, idB] = [await peerIdOf(dirA), await peerIdOf(dirB)]
  const a = await startMeshNode(dirA, { allow: [idB] })
  const b = await startMeshNode(dirB, { allow: [idA], bootstrap: [a.meshAddr] })

  const body = randomFillSync(Buffer.allocUnsafe(SIZE))
  const put = await fetch(`${a.url}/files/bench/pull.bin`, { method: 'PUT', body, headers: { authorization: `Bearer ${a.token}` } })
  if (put.status !== 201) throw new Error(`PUT: ${put.status} ${await put.text()}`)
  log(`uploaded ${SIZE} bytes to A; waiting for B to learn the file from A's manifest`)
  await until(async () => (await (await fetch(`${b.url}/files/bench/`)).text()).includes('pull.bin'), 'B to know the file')

  const direct = await download(`${a.url}/files/bench/pull.bin`)
  const through = await download(`${b.url}/files/bench/pull.bin`)
  const local = await download(`${b.url}/files/bench/pull.bin`) // present on B now
  for (const r of [direct, through, local]) if (r.bytes !== SIZE) throw new Error(`got ${r.bytes} bytes, expected ${SIZE}`)
  if (process.env.BENCH_DEBUG != null) log(b.output().split('\n').filter(l => l.includes('mesh:fetch')).join('\n'))
  const row = (name: string, r: typeof direct): string[] => [name, fmt(r.ttfb, 1), fmt(r.total, 0), fmt(SIZE / 1024 / 1024 / (r.total / 1000), 1)]
  table([
    ['download', 'TTFB ms', 'total ms', 'MiB/s'],
    row('A direct (on disk)', direct),
    row('B pull-through from A', through),
    row('B again (now on disk)', local)
  ])
})
