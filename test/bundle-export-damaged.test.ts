// Export checks every chunk it reads against the store's chunk table (in a worker thread, while
// the chunk is written): a blob damaged on disk fails the export by name, and no bundle is left
// for anyone to carry to the far site.
import test from 'ava'
import { access, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { allSigned, exportBundle } from './helpers/bundle.ts'
import { makeTempDir, startTestNode } from './helpers/node.ts'
import { deterministicBytes, MiB } from './helpers/streams.ts'

const exists = async (p: string): Promise<boolean> => await access(p).then(() => true, () => false)

test.serial('a blob damaged in the store fails the export naming it and its chunk; no bundle file is left', async t => {
  const node = await startTestNode(t)
  const res = await fetch(`${node.url}/files/d/three.bin`, { method: 'PUT', body: deterministicBytes(3 * MiB + 5, 'damaged'), headers: { authorization: `Bearer ${node.adminToken}` } })
  t.is(res.status, 201)
  const { cid } = await res.json() as { cid: string }
  await allSigned(node)
  await node.stop()
  const root = await makeTempDir(t)

  const good = join(root, 'good.car')
  const ok = await exportBundle(node.dataDir, good)
  t.is(ok.code, 0, ok.stderr)
  t.true(await exists(good))

  const blob = join(node.dataDir, 'blobs', cid.slice(-2), cid)
  const bytes = await readFile(blob)
  bytes[MiB + 7] ^= 0x01 // chunk 1
  await writeFile(blob, bytes)

  const bad = join(root, 'bad.car')
  const r = await exportBundle(node.dataDir, bad)
  t.not(r.code, 0)
  t.regex(r.stderr, new RegExp(`blob ${cid} is damaged on this node \\(chunk 1 does not match its hash\\); run akmesh verify`))
  t.false(await exists(bad))

  // Over an existing bundle (--force): what was begun is no bundle, so it is removed too.
  const again = await exportBundle(node.dataDir, good, ['--force'])
  t.not(again.code, 0)
  t.false(await exists(good))
})
