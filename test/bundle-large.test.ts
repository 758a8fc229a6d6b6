// Bundles whose blobs, after the manifests, span many of the import reader's windows (issue 17,
// item 1): the manifests kept while the blobs stream must arrive byte for byte as signed, through
// both paths: straight into a stopped node's data directory (B) and through a running node (C,
// import --url). One exporter (A) for every case; each case is an incremental export of what it
// added, imported into both sides. Data is generated and uploaded as streams.
import test from 'ava'
import { join } from 'node:path'
import { allSigned, exportBundle, holdings, importBundle, inventory } from './helpers/bundle.ts'
import { identity, queryIndex } from './helpers/mesh.ts'
import { akmesh, makeTempDir, startTestNode, type TestNode } from './helpers/node.ts'
import { deterministicStream, downloadSha256, MiB, rawRequest } from './helpers/streams.ts'
import { createHash } from 'node:crypto'

async function putStream (node: TestNode, path: string, size: number, seed: string): Promise<string> {
  const hash = createHash('sha256')
  const res = await rawRequest('PUT', `${node.url}/files/${path}`, {
    body: deterministicStream(size, seed, { hash }),
    headers: { authorization: `Bearer ${node.adminToken}`, 'content-length': String(size) }
  })
  if (res.status !== 201) throw new Error(`PUT ${path}: ${res.status} ${res.body.toString()}`)
  return hash.digest('hex')
}

/** Per (origin, seq), the sha256 of the stored envelope: equal only if every byte is. */
const envelopes = async (dataDir: string): Promise<Record<string, string>> => {
  const rows = await queryIndex(dataDir, 'SELECT origin, seq, hex(envelope) AS e FROM manifests ORDER BY origin, seq') as Array<{ origin: string, seq: number, e: string }>
  return Object.fromEntries(rows.map(r => [`${r.origin}/${r.seq}`, createHash('sha256').update(Buffer.from(r.e, 'hex')).digest('hex')]))
}

// Blob sizes per case: the total after the manifests is 1, 9, 64 and 300 MiB.
const CASES: Array<[string, number[]]> = [
  ['1MiB', [MiB]],
  ['9MiB', [5 * MiB + 17, 4 * MiB - 17]],
  ['64MiB', [64 * MiB]],
  ['300MiB', [200 * MiB + 3, 100 * MiB - 3]]
]

test.serial('bundles with 1, 9, 64 and 300 MiB of blobs after their manifests: both import paths store every manifest as signed, verify clean', async t => {
  const [a, b, c] = [await identity(t), await identity(t), await identity(t)]
  const nodeA = await startTestNode(t, { dataDir: a.dataDir, peering: { allow: [b.peerId, c.peerId] } })
  const { writeFile } = await import('node:fs/promises')
  await writeFile(join(b.dataDir, 'peering.json'), JSON.stringify({ allow: [a.peerId] }))
  const nodeC = await startTestNode(t, { dataDir: c.dataDir, peering: { allow: [a.peerId] } })
  const root = await makeTempDir(t)
  const files: Array<{ path: string, sha256: string }> = []

  for (const [label, sizes] of CASES) {
    for (const [i, size] of sizes.entries()) {
      const path = `large/${label}/${i}.bin`
      files.push({ path, sha256: await putStream(nodeA, path, size, `${label}-${i}`) })
    }
    await allSigned(nodeA)
    const file = join(root, `${label}.car`)
    const e = await exportBundle(a.dataDir, file, ['--to', 'sides', '--since-last'])
    t.is(e.code, 0, e.stderr)
    const direct = await importBundle(b.dataDir, file)
    t.is(direct.code, 0, `${label} direct: ${direct.stderr}`)
    t.regex(direct.stdout, new RegExp(`${sizes.length} added, 0 skipped, 0 not applied; blobs: ${sizes.length} added`), label)
    const through = await importBundle(c.dataDir, file, { node: nodeC })
    t.is(through.code, 0, `${label} through the node: ${through.stderr}`)
    t.regex(through.stdout, new RegExp(`${sizes.length} added, 0 skipped, 0 not applied; blobs: ${sizes.length} added`), label)

    const want = await envelopes(a.dataDir)
    t.deepEqual(await envelopes(b.dataDir), want, `${label}: the direct import stored other bytes than A signed`)
    t.deepEqual(await envelopes(c.dataDir), want, `${label}: the node's import stored other bytes than A signed`)
    const inv = holdings(await inventory(a.dataDir))
    t.deepEqual(holdings(await inventory(b.dataDir)), inv, label)
    t.deepEqual(holdings(await inventory(c.dataDir)), inv, label)
  }

  for (const dir of [a.dataDir, b.dataDir, c.dataDir]) {
    const v = await akmesh(['verify', '--data', dir])
    t.is(v.code, 0, v.stdout + v.stderr)
    t.regex(v.stdout, /all intact/)
  }
  // The running node serves what it imported.
  for (const f of files.slice(0, 3)) {
    const got = await downloadSha256(`${nodeC.url}/files/${f.path}`)
    t.is(got.status, 200)
    t.is(got.sha256, f.sha256, f.path)
  }
})
