// Mesh membership by certificate, through the real CLI: `akmesh mesh init` (root key outside the
// data dir), `mesh invite` (signed certificate), `mesh join` (installed, root recorded), and the
// membership service deciding whose manifests count (grants per repository, allowlist migration).
import test from 'ava'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { issueCertificate, rootOf } from '../mesh/certificates.ts'
import { Membership, OWN_CERTIFICATE_FILE } from '../mesh/membership.ts'
import { akmesh, makeTempDir } from './helpers/node.ts'

test('mesh init, invite and join: the certificate is installed and the peering file names the root', async t => {
  const dir = await makeTempDir(t)
  const key = join(dir, 'offline', 'root.key')
  const data = join(dir, 'data')
  await mkdir(join(dir, 'offline'))
  const init = await akmesh(['mesh', 'init', '--name', 'acme', '--key', key])
  t.is(init.code, 0, init.stderr)
  const root = /^root (\S+)$/m.exec(init.stdout)?.[1]
  t.truthy(root)
  t.regex(init.stdout, new RegExp(key.replaceAll('/', '\\/')))
  t.is((await akmesh(['mesh', 'init', '--name', 'acme', '--key', key])).code, 2) // never overwritten
  const id = await akmesh(['id', '--data', data])
  const peer = id.stdout.split('\n')[0]
  const out = join(dir, 'a.cert')
  const invite = await akmesh(['mesh', 'invite', '--name', 'acme', '--key', key, '--peer', peer, '--site', 'a', '--publish', 'team-a', '--expires', '90d', '-o', out])
  t.is(invite.code, 0, invite.stderr)
  t.regex(invite.stdout, /may change team-a/)
  const join1 = await akmesh(['mesh', 'join', out, '--data', data])
  t.is(join1.code, 0, join1.stderr)
  const peering = JSON.parse(await readFile(join(data, 'peering.json'), 'utf8'))
  t.is(peering.mesh, 'acme')
  t.is(peering.meshRoot, root)
  t.is(peering.node.site, 'a')
  t.deepEqual(await readFile(join(data, OWN_CERTIFICATE_FILE)), await readFile(out))
  // Another node cannot install a's certificate as its own.
  const other = await akmesh(['mesh', 'join', out, '--data', join(dir, 'other')])
  t.is(other.code, 2)
  t.regex(other.stderr, /not of this node/)
})

test('membership: grants decide per repository; expired, other-root and unknown origins are refused with their reason; allowlist still counts', async t => {
  const dir = await makeTempDir(t)
  const rootKey = await generateKeyPair('Ed25519')
  const otherRoot = await generateKeyPair('Ed25519')
  const id = async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
  const [self, teamA, old, stranger, listed, unknown] = await Promise.all([id(), id(), id(), id(), id(), id()])
  const peering = { mesh: 'acme', allow: [listed], meshRoot: rootOf(rootKey) }
  const m = await Membership.open({ dataDir: dir, self, peering: () => peering })
  const YEAR = 365 * 86_400_000
  t.truthy(await m.learn(await issueCertificate(rootKey, { mesh: 'acme', peer: teamA, site: 'a', publish: ['team-a'], validForMs: YEAR })))
  t.truthy(await m.learn(await issueCertificate(rootKey, { mesh: 'acme', peer: old, site: 'old', validForMs: 1000 })))
  t.is(await m.learn(await issueCertificate(otherRoot, { mesh: 'acme', peer: stranger, site: 's', validForMs: YEAR })), undefined)

  t.is(m.admit(teamA, 'team-a'), undefined)
  t.is(m.admit(teamA, 'team-b')?.reason, 'outside-grants')
  t.is(m.admit(self, 'team-b'), undefined)
  t.is(m.admit(listed, 'team-b'), undefined)
  t.is(m.admit(old, 'team-a', Date.now() + 5000)?.reason, 'certificate-expired')
  t.is(m.admit(stranger, 'team-a')?.reason, 'wrong-root')
  t.is(m.admit(unknown, 'team-a')?.reason, 'not-allowed')
  t.true(m.isMember(teamA))
  t.false(m.isMember(unknown))

  // Learned certificates persist in the data directory.
  const again = await Membership.open({ dataDir: dir, self, peering: () => peering })
  t.is(again.admit(teamA, 'team-a'), undefined)
  t.is(again.certificate(teamA)?.site, 'a')
})
