// Member visibility (/-/mesh/status `members` and `warnings`, `akmesh peers list`) and the
// migration of an allowlist mesh to certificates (`akmesh mesh init --from-allowlist`), with
// separate node processes over real TCP.
import test from 'ava'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { readFile, readdir, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { decodeCertificate, issueCertificate, rootOf, verifyCertificate } from '../mesh/certificates.ts'
import { OWN_CERTIFICATE_FILE } from '../mesh/membership.ts'
import { adminGet, connectedTo, hasVersion, identity, rawPublish } from './helpers/mesh.ts'
import { akmesh, makeTempDir, startTestNode, waitFor } from './helpers/node.ts'

const DAY = 86_400_000
const row = (members: any[], peer: string): any => members.find(m => m.peer === peer)

test('status and peers list show each member: site, state, grants, expiry, connected, last manifest; allow-listed peers marked; an expiring own certificate is warned about with the commands that renew it', async t => {
  const rootKey = await generateKeyPair('Ed25519')
  const meshRoot = rootOf(rootKey)
  const [a, b, listed] = [await identity(t), await identity(t), await identity(t)]
  await writeFile(join(a.dataDir, OWN_CERTIFICATE_FILE), await issueCertificate(rootKey, { mesh: 'default', peer: a.peerId, site: 'a', validForMs: 7 * DAY }))
  await writeFile(join(b.dataDir, OWN_CERTIFICATE_FILE), await issueCertificate(rootKey, { mesh: 'default', peer: b.peerId, site: 'b', publish: ['npm'], validForMs: 365 * DAY }))
  const nodeB = await startTestNode(t, { dataDir: b.dataDir, peering: { meshRoot, allow: [a.peerId] } })
  const nodeA = await startTestNode(t, { dataDir: a.dataDir, peering: { meshRoot, allow: [b.peerId, listed.peerId], bootstrap: [nodeB.meshAddr] } })
  await rawPublish(nodeB, await makeTempDir(t), 'seen-from-b', '1.0.0')
  await waitFor(async () => await hasVersion(nodeA, 'seen-from-b', '1.0.0'), 'A to apply B\'s publish')
  const headB = (await adminGet(nodeB, '/-/mesh/status')).heads[b.peerId]
  t.true(headB > 0)

  // A holds B's certificate once B caught up from it (the request carries it).
  const status = await waitFor(async () => {
    const s = await adminGet(nodeA, '/-/mesh/status')
    return row(s.members, b.peerId)?.state === 'member' && row(s.members, b.peerId)?.lastManifest?.seq === headB ? s : undefined
  }, 'A to list B as a member with its last manifest')
  t.like(row(status.members, b.peerId), { self: false, site: 'b', publish: ['npm'], state: 'member', connected: true, expired: false, expiring: false })
  t.true(Date.parse(row(status.members, b.peerId).lastManifest.timestamp) > Date.now() - DAY)
  t.like(row(status.members, listed.peerId), { site: null, publish: null, expires: null, state: 'allowlist', connected: false, lastManifest: null })
  t.like(row(status.members, a.peerId), { self: true, site: 'a', publish: ['*'], state: 'expiring', expiring: true })
  t.is(status.members.length, 3)

  const warning = status.warnings.find((w: any) => w.peer === a.peerId)
  t.like(warning, { self: true, kind: 'expiring', site: 'a' })
  t.regex(warning.message, /this node's certificate \(site a\) expires .* \(in 7 days\)/)
  t.true(warning.message.includes(`akmesh mesh invite --name default --peer ${a.peerId} --site a -o a.cert`), warning.message)
  t.regex(warning.message, /akmesh mesh join a\.cert/)
  t.false(status.warnings.some((w: any) => w.peer === b.peerId), 'B\'s certificate is valid for a year')
  // Logged at start (and then daily).
  t.true(nodeA.output().split('\n').some(l => l.includes('"level":40') && l.includes('"kind":"expiring"') && l.includes(a.peerId)), nodeA.output())

  // The CLI reads the same from the data directory, beside the running node.
  const text = await akmesh(['peers', 'list', '--data', a.dataDir])
  t.is(text.code, 0, text.stderr)
  const lines = text.stdout.split('\n')
  t.regex(lines.find(l => l.startsWith(b.peerId)) ?? '', new RegExp(`^\\S+\\s+b\\s+member\\s+npm\\s+\\d{4}-\\d\\d-\\d\\d\\s+yes\\s+seq ${headB} at `))
  t.regex(lines.find(l => l.startsWith(listed.peerId)) ?? '', /^\S+\s+-\s+allowlist\s+all \(allow list\)\s+-\s+no\s+-$/)
  t.regex(lines.find(l => l.startsWith(a.peerId)) ?? '', /\(this node\)\s+a\s+expiring\s+\*/)
  t.true(lines.some(l => l.startsWith('warning: this node\'s certificate (site a) expires')), text.stdout)
  const json = JSON.parse((await akmesh(['peers', 'list', '--data', a.dataDir, '--json'])).stdout)
  t.deepEqual(json.members, status.members)

  // B goes away: not connected any more; with A stopped too, the CLI still knows B's last manifest.
  await nodeB.stop()
  await waitFor(async () => row((await adminGet(nodeA, '/-/mesh/status')).members, b.peerId).connected === false, 'A to see B disconnected')
  await nodeA.stop()
  const offline = JSON.parse((await akmesh(['peers', 'list', '--data', a.dataDir, '--json'])).stdout)
  t.like(row(offline.members, b.peerId), { state: 'member', connected: null, lastManifest: { seq: headB } })
})

test('mesh init --from-allowlist issues certificates for this node and every allow-listed peer; the printed join commands work, and the nodes then list each other as members', async t => {
  const dir = await makeTempDir(t)
  const [a, b, c] = [await identity(t), await identity(t), await identity(t)]
  const listen = ['/ip4/127.0.0.1/tcp/0']
  await writeFile(join(a.dataDir, 'peering.json'), JSON.stringify({ mesh: 'lab', node: { name: 'alpha' }, allow: [b.peerId, c.peerId], listen }))
  await writeFile(join(b.dataDir, 'peering.json'), JSON.stringify({ mesh: 'lab', allow: [a.peerId], listen }))
  const key = join(dir, 'root.key')
  const out = join(dir, 'certs')

  const wrongName = await akmesh(['mesh', 'init', '--from-allowlist', '--name', 'other', '--data', a.dataDir, '--key', key])
  t.not(wrongName.code, 0)
  t.regex(wrongName.stderr, /names mesh "lab"/)
  const typo = await akmesh(['mesh', 'init', '--from-allowlist', '--data', a.dataDir, '--key', key, '--site', `${a.peerId.slice(0, -1)}x=berlin`])
  t.not(typo.code, 0)
  t.regex(typo.stderr, /neither this node nor in the allow list/)

  const init = await akmesh(['mesh', 'init', '--from-allowlist', '--data', a.dataDir, '--key', key, '--site', `${b.peerId}=berlin`, '--expires', '90d', '--out-dir', out])
  t.is(init.code, 0, init.stderr)
  const root = /^root (\S+)$/m.exec(init.stdout)?.[1] as string
  t.truthy(root)
  t.is((await stat(key)).mode & 0o777, 0o600)
  t.deepEqual((await readdir(out)).sort(), ['alpha.cert', 'berlin.cert', `site-${c.peerId.slice(-8)}.cert`])
  const certs = await Promise.all([a, b, c].map(async (n, i) => await verifyCertificate(await readFile(join(out, ['alpha.cert', 'berlin.cert', `site-${c.peerId.slice(-8)}.cert`][i]!)), { mesh: 'lab', root })))
  t.deepEqual(certs.map(x => [x.peer, x.site, x.publish]), [[a.peerId, 'alpha', ['*']], [b.peerId, 'berlin', ['*']], [c.peerId, `site-${c.peerId.slice(-8)}`, ['*']]])
  t.true(certs.every(x => Math.abs(x.expires - x.issued - 90 * DAY) < 1000))

  // The printed join commands, run as printed (B's from the certificate directory).
  const ownJoin = /this node \S+ \(site alpha\): akmesh (mesh join .*)$/m.exec(init.stdout)?.[1]
  t.is(ownJoin, `mesh join ${join(out, 'alpha.cert')} --data ${a.dataDir}`)
  t.true(init.stdout.includes(`${b.peerId} (site berlin): copy ${join(out, 'berlin.cert')} to that node, then there: akmesh mesh join berlin.cert`), init.stdout)
  t.is((await akmesh(ownJoin!.split(' '))).code, 0)
  const joinB = await akmesh(['mesh', 'join', join(out, 'berlin.cert'), '--data', b.dataDir])
  t.is(joinB.code, 0, joinB.stderr)
  t.is(JSON.parse(await readFile(join(b.dataDir, 'peering.json'), 'utf8')).meshRoot, root)
  t.deepEqual(decodeCertificate(await readFile(join(a.dataDir, OWN_CERTIFICATE_FILE))).peer, a.peerId)

  // Run again: the peering file now names a root; the key is never overwritten either.
  const again = await akmesh(['mesh', 'init', '--from-allowlist', '--data', a.dataDir, '--key', join(dir, 'root2.key'), '--out-dir', join(dir, 'certs2')])
  t.not(again.code, 0)
  t.regex(again.stderr, /already names mesh root/)

  // The allow lists stay while the nodes learn each other's certificates at catch-up.
  const nodeA = await startTestNode(t, { dataDir: a.dataDir })
  const nodeB = await startTestNode(t, { dataDir: b.dataDir })
  await writeFile(nodeB.peeringFile, JSON.stringify({ ...JSON.parse(await readFile(nodeB.peeringFile, 'utf8')), bootstrap: [nodeA.meshAddr] }))
  await waitFor(async () => await connectedTo(nodeA, b.peerId), 'B to connect to A')
  const seenByA = await waitFor(async () => {
    const m = (await adminGet(nodeA, '/-/mesh/status')).members
    return row(m, b.peerId)?.state === 'member' ? m : undefined
  }, 'A to list B as a member by certificate')
  t.like(row(seenByA, b.peerId), { site: 'berlin', connected: true })
  t.like(row(seenByA, c.peerId), { state: 'allowlist', connected: false })
  t.like(row(seenByA, a.peerId), { self: true, site: 'alpha', state: 'member' })
  const seenByB = await waitFor(async () => {
    const m = (await adminGet(nodeB, '/-/mesh/status')).members
    return row(m, a.peerId)?.state === 'member' ? m : undefined
  }, 'B to list A as a member by certificate')
  t.like(row(seenByB, a.peerId), { site: 'alpha', connected: true })
})

test('mesh init without --name or --from-allowlist says what is missing', async t => {
  const r = await akmesh(['mesh', 'init', '--key', join(await makeTempDir(t), 'k')])
  t.not(r.code, 0)
  t.regex(r.stderr, /--name <mesh> is required/)
})
