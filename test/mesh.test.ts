// The mesh layer, with nodes as separate processes over real TCP on 127.0.0.1: persistent
// identity, allowlist (at connect time and after live edits of the peering file), private
// networks (pre-shared key), peering file validation and `akmesh peers`.
import test, { type ExecutionContext } from 'ava'
import { randomBytes } from 'node:crypto'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { run } from './helpers/clients.ts'
import { CLI, akmesh, makeTempDir, startTestNode, waitFor, type TestNode, type TestNodeOptions } from './helpers/node.ts'

interface MeshPeersBody { peerId: string, multiaddrs: string[], peers: Array<{ peerId: string, addrs: string[] }> }

async function meshPeers (node: TestNode): Promise<MeshPeersBody> {
  const res = await fetch(`${node.url}/-/mesh/peers`, { headers: { authorization: `Bearer ${node.adminToken}` } })
  if (res.status !== 200) throw new Error(`GET /-/mesh/peers: ${res.status} ${await res.text()}`)
  return await res.json() as MeshPeersBody
}
const connectedTo = async (node: TestNode, peerId: string) => (await meshPeers(node)).peers.some(p => p.peerId === peerId)

/** A data dir with its identity created (`akmesh id`), so peers can be allowlisted before start. */
async function identity (t: ExecutionContext): Promise<{ dataDir: string, peerId: string }> {
  const dataDir = await makeTempDir(t, 'akmesh-mesh-')
  const r = await akmesh(['id', '--data', dataDir, '--json'])
  if (r.code !== 0) throw new Error(r.stderr)
  return { dataDir, peerId: JSON.parse(r.stdout).peerId }
}

const start = async (t: ExecutionContext, id: { dataDir: string }, peering: TestNodeOptions['peering']) =>
  await startTestNode(t, { dataDir: id.dataDir, peering })

const swarmKey = () => `/key/swarm/psk/1.0.0/\n/base16/\n${randomBytes(32).toString('hex')}\n`

test.serial('the identity persists across restarts and akmesh id prints it', async t => {
  const node = await startTestNode(t)
  t.regex(node.peerId, /^12D3KooW/)
  t.true(node.multiaddrs.every(a => a.endsWith(`/p2p/${node.peerId}`)), node.multiaddrs.join(' '))
  const key = await stat(join(node.dataDir, 'identity.key'))
  t.is(key.mode & 0o777, 0o600)

  const id = await akmesh(['id', '--data', node.dataDir])
  t.is(id.code, 0, id.stderr)
  const [first, ...listen] = id.stdout.trim().split('\n')
  t.is(first, node.peerId)
  t.deepEqual(listen, [`/ip4/0.0.0.0/tcp/7071/p2p/${node.peerId}`]) // the configured address, not the --mesh-port override

  const before = node.peerId
  await node.restart()
  t.is(node.peerId, before)
  const body = await meshPeers(node)
  t.is(body.peerId, before)
  t.deepEqual(body.peers, [])
})

test.serial('two allowlisted nodes connect; /-/mesh/peers needs an admin token', async t => {
  const a = await identity(t)
  const b = await identity(t)
  const nodeA = await start(t, a, { allow: [b.peerId] })
  const nodeB = await start(t, b, { allow: [a.peerId], bootstrap: [nodeA.meshAddr] })
  await waitFor(async () => await connectedTo(nodeB, a.peerId) && await connectedTo(nodeA, b.peerId), 'A and B connected')
  const fromB = (await meshPeers(nodeB)).peers.find(p => p.peerId === a.peerId)
  t.true(fromB?.addrs.some(x => x.startsWith('/ip4/127.0.0.1/tcp/')), JSON.stringify(fromB))

  t.is((await fetch(`${nodeA.url}/-/mesh/peers`)).status, 401)
  t.is((await fetch(`${nodeA.url}/-/mesh/peers`, { headers: { authorization: 'Bearer akm_wrong' } })).status, 401)
})

test.serial('a peer outside the allowlist cannot connect until akmesh peers add allows it, and is cut off when removed', async t => {
  const a = await identity(t)
  const c = await identity(t)
  const nodeA = await start(t, a, { allow: [] })
  const nodeC = await start(t, c, { allow: [a.peerId], bootstrap: [nodeA.meshAddr] })
  await waitFor(() => /"msg":"bootstrap dial failed"/.test(nodeC.output()), 'C’s dial to A to fail')
  t.false(await connectedTo(nodeA, c.peerId))

  // An invalid edit is reported precisely and changes nothing.
  await writeFile(nodeA.peeringFile, JSON.stringify({ allow: ['not-a-peer-id'] }))
  await waitFor(() => nodeA.output().includes('invalid peering file'), 'A to reject the invalid edit')
  t.regex(nodeA.output(), /peering\.json: allow\[0\]: expected a peer ID/)
  await writeFile(nodeA.peeringFile, JSON.stringify({ listen: ['/ip4/127.0.0.1/tcp/0'], allow: [] }))

  // Adding C (address and ID) while A runs: A dials C at once.
  const add = await akmesh(['peers', 'add', nodeC.meshAddr, '--data', nodeA.dataDir])
  t.is(add.code, 0, add.stderr)
  await waitFor(async () => await connectedTo(nodeA, c.peerId) && await connectedTo(nodeC, a.peerId), 'A and C connected')

  // Removing it disconnects it, and C's re-dials are refused.
  const remove = await akmesh(['peers', 'remove', c.peerId, '--data', nodeA.dataDir])
  t.is(remove.code, 0, remove.stderr)
  await waitFor(async () => !await connectedTo(nodeA, c.peerId), 'A to disconnect C')
  await waitFor(() => nodeA.output().includes('disconnecting peer no longer in the allowlist'), 'the disconnect log line')
})

test.serial('allowing a peer by editing the file lets its own re-dials in, without restart', async t => {
  const a = await identity(t)
  const d = await identity(t)
  const nodeA = await start(t, a, { allow: [] })
  const nodeD = await start(t, d, { allow: [a.peerId], bootstrap: [nodeA.meshAddr] })
  await waitFor(() => /"msg":"bootstrap dial failed"/.test(nodeD.output()), 'D’s dial to A to fail')
  t.false(await connectedTo(nodeA, d.peerId))

  const content = JSON.parse(await readFile(nodeA.peeringFile, 'utf8'))
  content.allow = [d.peerId]
  await writeFile(nodeA.peeringFile, JSON.stringify(content, null, 2))
  await waitFor(async () => await connectedTo(nodeA, d.peerId), 'D to connect after the edit', 60_000)
})

test.serial('with a pre-shared key nodes connect; without it or with another they cannot', async t => {
  const key = swarmKey()
  const [a, b, c, d] = [await identity(t), await identity(t), await identity(t), await identity(t)]
  const nodeA = await start(t, a, { allow: ['*'], psk: key })
  // B reads the same key from a file named relative to its peering file.
  await writeFile(join(b.dataDir, 'swarm.key'), key)
  const nodeB = await start(t, b, { allow: ['*'], psk: 'swarm.key', bootstrap: [nodeA.meshAddr] })
  const nodeC = await start(t, c, { allow: ['*'], psk: swarmKey(), bootstrap: [nodeA.meshAddr] })
  const nodeD = await start(t, d, { allow: ['*'], bootstrap: [nodeA.meshAddr] })
  await waitFor(async () => await connectedTo(nodeA, b.peerId), 'A and B (same key) connected')
  await waitFor(() => /"msg":"bootstrap dial failed"/.test(nodeC.output()), 'C (other key) to fail')
  await waitFor(() => /"msg":"bootstrap dial failed"/.test(nodeD.output()), 'D (no key) to fail')
  const peers = (await meshPeers(nodeA)).peers.map(p => p.peerId)
  t.false(peers.includes(c.peerId))
  t.false(peers.includes(d.peerId))
  t.deepEqual((await meshPeers(nodeC)).peers, [])
  t.deepEqual((await meshPeers(nodeD)).peers, [])
})

const BAD_PEERING: Array<{ what: string, content: string, expected: RegExp }> = [
  { what: 'a bad peer ID', content: '{"allow":["12D3KooWnope"]}', expected: /peering\.json: allow\[0\]: expected a peer ID/ },
  { what: 'a bootstrap address without /p2p/', content: '{"bootstrap":["/ip4/10.0.0.1/tcp/7071"]}', expected: /peering\.json: bootstrap\[0\]: expected a multiaddr ending in \/p2p\/<peerId>/ },
  { what: 'a bad listen multiaddr', content: '{"listen":["tcp://0.0.0.0:7071"]}', expected: /peering\.json: listen\[0\]: expected a multiaddr/ },
  { what: 'an unknown key', content: '{"bootstrapp":[]}', expected: /peering\.json: bootstrapp: unknown key; expected one of .*bootstrap/ },
  { what: 'a bad replication mode', content: '{"replication":{"npm":"eager"}}', expected: /peering\.json: replication\.npm: .*mirror.*on-demand.*none/ },
  { what: 'a bad bandwidth', content: '{"uploadBandwidth":"fast"}', expected: /peering\.json: uploadBandwidth: expected bytes per second/ },
  { what: 'a bad psk', content: '{"psk":"/key/swarm/psk/1.0.0/\\n/base16/\\nxyz"}', expected: /peering\.json: psk: expected a swarm key/ },
  { what: 'invalid JSON', content: '{"allow": [', expected: /peering\.json: invalid JSON/ }
]

for (const { what, content, expected } of BAD_PEERING) {
  test.serial(`akmesh start refuses a peering file with ${what}`, async t => {
    const dir = await makeTempDir(t)
    const file = join(dir, 'peering.json')
    await writeFile(file, content)
    const r = await run(process.execPath, [CLI, 'start', '--data', join(dir, 'data'), '--host', '127.0.0.1', '--port', '0', '--mesh-port', '0', '--peering', file], { timeoutMs: 60_000 })
    t.not(r.code, 0)
    t.regex(r.stderr, expected)
    t.true(r.stderr.includes(file), r.stderr)
  })
}

test.serial('akmesh peers add, list and remove edit the file and keep everything else', async t => {
  const dir = await makeTempDir(t)
  const [x, y] = [await identity(t), await identity(t)]
  const file = join(dir, 'peering.json')
  await writeFile(file, JSON.stringify({ mesh: 'lab', node: { name: 'n1', site: 'paris' }, replication: { npm: 'mirror', '*': 'none' } }))
  const peers = async (...args: string[]) => await akmesh(['peers', ...args, '--data', dir])

  const addr = `/ip4/10.0.0.2/tcp/7071/p2p/${x.peerId}`
  t.is((await peers('add', addr)).code, 0)
  t.is((await peers('add', addr)).code, 0) // idempotent
  t.is((await peers('add', `/dns4/y.example/tcp/7071/p2p/${y.peerId}`, '--allow-only')).code, 0)
  const listed = await peers('list', '--json')
  t.is(listed.code, 0, listed.stderr)
  // Members known only through the allow list (no identity in this data dir: no self row).
  const allowListed = (peer: string) => ({ peer, self: false, site: null, publish: null, expires: null, expired: false, expiring: false, state: 'allowlist', connected: null, lastManifest: null })
  const members = [x.peerId, y.peerId].sort((p, q) => p.localeCompare(q)).map(allowListed)
  t.deepEqual(JSON.parse(listed.stdout), { mesh: 'lab', profiles: [], bootstrap: [addr], allow: [x.peerId, y.peerId], running: false, connected: [], members, warnings: [] })
  t.regex((await peers('list')).stdout, new RegExp(`bootstrap ${addr}`))

  const bad = await peers('add', '/ip4/10.0.0.3/tcp/7071')
  t.not(bad.code, 0)
  t.regex(bad.stderr, /ending in \/p2p\/<peerId>/)

  t.is((await peers('remove', x.peerId)).code, 0)
  const missing = await peers('remove', x.peerId)
  t.not(missing.code, 0)
  t.regex(missing.stderr, /neither allowed nor a bootstrap peer/)

  const content = JSON.parse(await readFile(file, 'utf8'))
  t.deepEqual(content, { mesh: 'lab', node: { name: 'n1', site: 'paris' }, replication: { npm: 'mirror', '*': 'none' }, allow: [y.peerId], bootstrap: [] })

  // --peering and $AKMESH_PEERING name another file.
  const other = join(dir, 'other.json')
  t.is((await akmesh(['peers', 'add', addr, '--peering', other])).code, 0)
  const viaEnv = await akmesh(['peers', 'list', '--json'], { env: { AKMESH_PEERING: other } })
  t.deepEqual(JSON.parse(viaEnv.stdout).bootstrap, [addr])
})
