// Formats declare the digests they serve: a generic upload stores sha256 (+ BLAKE3 and the chunk
// table) only; a digest asked for later is computed once from the stored file and recorded.
import test from 'ava'
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { FileBlobStore } from '../store/blobs.ts'
import { openDatabase } from '../store/db.ts'
import { makeTempDir, startTestNode } from './helpers/node.ts'
import { packument } from './helpers/mesh.ts'
import { makeTarball, publishBody } from './helpers/npm-client.ts'
import { MiB, deterministicBytes } from './helpers/streams.ts'

const hex = (algorithm: string, data: Buffer) => createHash(algorithm).update(data).digest('hex')

test('a blob stored without sha512/sha1 gets them computed when asked, once, with the right values', async t => {
  const dir = await makeTempDir(t, 'akmesh-digests-')
  const db = openDatabase(join(dir, 'akmesh.db'))
  t.teardown(() => { if (db.open) db.close() })
  const store = await FileBlobStore.open(dir, db)
  const data = deterministicBytes(9 * MiB + 123, 'digests') // several 4 MiB stages and a partial one
  const put = await store.put((async function * () { yield data })(), { digests: [] })
  t.is(put.sha256, hex('sha256', data))
  t.is(put.sha512, '')
  t.is(put.sha1, '')
  const done = await store.completeDigests(put.cid, ['sha512', 'sha1'])
  t.is(done.sha512, hex('sha512', data))
  t.is(done.sha1, hex('sha1', data))
  t.is(store.stat(put.cid)?.sha512, hex('sha512', data), 'recorded in the row')
})

test('a generic upload skips sha512; npm publishing the same bytes serves the right integrity', async t => {
  const node = await startTestNode(t)
  const root = await makeTempDir(t)
  const tgz = await makeTarball(root, { name: 'ondemand', version: '1.0.0' })
  const auth = { authorization: `Bearer ${node.adminToken}` }

  const up = await fetch(`${node.url}/files/shared/ondemand-1.0.0.tgz`, { method: 'PUT', headers: auth, body: tgz })
  t.is(up.status, 201, await up.clone().text())
  const checksums = ((await up.json()) as { checksums: Record<string, unknown> }).checksums
  t.is(checksums.sha256, hex('sha256', tgz))
  t.false('sha512' in checksums, 'generic computes no sha512')
  // (Its download may already name a sha512: the node's manifest signer needs every digest and
  // computes the missing ones in the background after the publish.)

  const pub = await fetch(`${node.url}/npm/ondemand`, {
    method: 'PUT', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify(publishBody('ondemand', '1.0.0', tgz))
  })
  t.is(pub.status, 201, await pub.text())
  const dist = (await packument(node, 'ondemand')).versions['1.0.0'].dist
  t.is(dist.integrity, `sha512-${createHash('sha512').update(tgz).digest('base64')}`)
  t.is(dist.shasum, hex('sha1', tgz))
  // The same blob, now with its sha512 recorded, says so on the generic download too.
  const after = await fetch(`${node.url}/files/shared/ondemand-1.0.0.tgz`, { method: 'HEAD', headers: auth })
  t.is(after.headers.get('x-checksum-sha512'), hex('sha512', tgz))
})
