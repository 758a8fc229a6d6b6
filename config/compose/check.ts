// Checks what config/compose/generate.ts produces without docker: generates three sites into a
// temp dir, starts the three nodes on this machine with the same identities, tokens and allowlists
// (their peering.local.json: 127.0.0.1 ports, bootstrap by /dns4/localhost), waits until every
// site is connected to the other two, publishes an npm package on site-a and waits until site-b
// and site-c list it. Exit 0 on success. Everything it starts is stopped, also on Ctrl-C.
//
//   node_modules/.bin/node config/compose/check.ts [--keep DIR]   (--keep: generate into DIR, kept)
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { AKMESH_CLI } from '../../bench/lib/akmesh.ts'
import { tinyTarball } from '../../bench/lib/mesh.ts'
import { publishTarball } from '../../bench/lib/npm-publish.ts'
import { freePort, main, NODE, startService, tempDir } from '../../bench/lib/proc.ts'
import { log } from '../../bench/lib/stats.ts'
import { generate } from './generate.ts'

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

async function until (check: () => Promise<boolean>, what: string, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!await check().catch(() => false)) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(250)
  }
}

await main(async () => {
  const at = process.argv.indexOf('--keep')
  const out = at > 0 && process.argv[at + 1] != null ? process.argv[at + 1]! : tempDir('compose-check')
  const sites = generate(out)
  log(`generated ${sites.map(s => `${s.name}=${s.peerId}`).join(', ')} in ${out}`)

  const nodes = await Promise.all(sites.map(async s => {
    const port = await freePort()
    const url = `http://127.0.0.1:${port}`
    const env = { ...process.env }
    for (const k of Object.keys(env)) if (k.startsWith('AKMESH_')) delete env[k]
    const service = await startService(s.name, NODE, [AKMESH_CLI, 'start', '--data', s.dataDir, '--peering', s.localPeering, '--host', '127.0.0.1', '--port', String(port)], {
      env,
      ready: () => false,
      probe: async () => (await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2000) })).status === 200,
      timeoutMs: 120_000
    })
    return { ...s, url, service }
  }))
  log('three nodes up; waiting for every site to be connected to the other two')
  const peersOf = async (n: typeof nodes[number]): Promise<string[]> => {
    const res = await fetch(`${n.url}/-/mesh/peers`, { headers: { authorization: `Bearer ${n.token}` } })
    if (res.status !== 200) throw new Error(`${n.name}: /-/mesh/peers -> ${res.status}`)
    return (await res.json() as { peers: Array<{ peerId: string }> }).peers.map(p => p.peerId)
  }
  await until(async () => (await Promise.all(nodes.map(peersOf))).every((ids, i) => nodes.every((o, j) => i === j || ids.includes(o.peerId))), 'a full mesh of three')
  for (const n of nodes) log(`${n.name} connected to ${(await peersOf(n)).map(id => sites.find(s => s.peerId === id)?.name ?? id).join(', ')}`)

  const [a, b, c] = nodes
  const version = `1.0.${Date.now() % 100000}`
  await publishTarball({ name: 'site-a', registry: `${a!.url}/npm/`, token: a!.token, stop: async () => {} }, await tinyTarball(join(out, 'tgz'), 'compose-check', version), { name: 'compose-check', version })
  log(`published compose-check@${version} on site-a`)
  for (const n of [b!, c!]) {
    await until(async () => {
      const res = await fetch(`${n.url}/npm/compose-check`, { headers: { authorization: `Bearer ${n.token}` } })
      return res.status === 200 && (await res.json() as { versions?: Record<string, unknown> }).versions?.[version] != null
    }, `${n.name} to list compose-check@${version}`, 60_000)
    log(`${n.name} lists compose-check@${version}`)
  }
  // The generated files name a token the nodes accept, and the peering files the nodes loaded.
  for (const n of nodes) {
    const expected = readFileSync(join(n.dir, 'admin-token'), 'utf8').trim()
    if (expected !== n.token) throw new Error(`${n.name}: admin-token file does not match`)
  }
  console.log('OK: three sites meshed from the generated identities and peering files; a publish on site-a reached site-b and site-c')
})
