// A data directory from before the mesh: its history stays, unsigned and unfolded, and a baseline
// of what exists is appended, so the existing artifacts replicate like new changes.
import test from 'ava'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { MIGRATIONS } from '../store/db.ts'
import { PRE_MESH_ORIGIN } from '../store/changes.ts'
import { MESH, openMeshStore, snapshot } from './helpers/mesh-store.ts'
import { openEnvelope } from '../mesh/manifest.ts'
import { makeTempDir } from './helpers/node.ts'

test('a pre-mesh index is baselined: existing artifacts, tags and tombstones become signed changes', async t => {
  const dir = await makeTempDir(t, 'akmesh-premesh-')
  // Build the schema and rows exactly as the version before the mesh left them.
  const old = new Database(join(dir, 'akmesh.db'))
  MIGRATIONS.slice(0, 2).forEach(m => old.exec(m))
  old.pragma('user_version = 2')
  const cid = 'bafkr4ibrtu4wqgw7yy3swufkm3ltbmsouldzjwtagdqeqdwg5jogyf6ltm'
  old.exec(`
    INSERT INTO repositories VALUES ('npm', 'npm', 1);
    INSERT INTO blobs (cid, size, sha256, sha512, sha1, md5, chunk_size, created_at) VALUES ('${cid}', 3, '${'a'.repeat(64)}', '${'b'.repeat(128)}', '${'c'.repeat(40)}', NULL, 1048576, 1);
    INSERT INTO chunks VALUES ('${cid}', 0, x'${'11'.repeat(32)}');
    INSERT INTO artifacts VALUES (1, 'npm', 'p', '1.0.0', '{"name":"p","version":"1.0.0"}', 10, 20);
    INSERT INTO files VALUES (1, 'p-1.0.0.tgz', '${cid}');
    INSERT INTO tags VALUES ('npm', 'p', 'latest', '1.0.0');
    INSERT INTO tombstones VALUES ('npm', 'p', '0.9.0', 15);
    INSERT INTO changes (kind, repo, name, version, detail, at) VALUES ('publish', 'npm', 'p', '0.9.0', '{"files":[]}', 5);
    INSERT INTO changes (kind, repo, name, version, detail, at) VALUES ('delete', 'npm', 'p', '0.9.0', '{}', 15);
    INSERT INTO changes (kind, repo, name, version, detail, at) VALUES ('publish', 'npm', 'p', '1.0.0', '{"files":[]}', 20);
  `)
  old.close()

  const a = await openMeshStore(t, { dir, repos: [['npm', 'npm']] })
  const before = snapshot(a.db)
  t.deepEqual(a.db.prepare('SELECT seq, origin FROM changes WHERE seq <= 3').all(), [1, 2, 3].map(seq => ({ seq, origin: PRE_MESH_ORIGIN })))
  t.deepEqual(a.db.prepare('SELECT kind, version FROM changes WHERE origin IS NULL ORDER BY seq').all(),
    [{ kind: 'delete', version: '0.9.0' }, { kind: 'publish', version: '1.0.0' }, { kind: 'tag', version: '1.0.0' }])
  t.like(a.store.stat(cid), { cid, size: 3 })

  await a.signer.start()
  const records = a.manifests.since(a.peerId, 0, 100)
  t.is(records.length, 3)
  const pub = await openEnvelope(records[1].envelope, { mesh: MESH, isAllowed: () => true })
  t.like(pub, { kind: 'publish', version: '1.0.0', metadata: { name: 'p', version: '1.0.0' }, timestamp: 20 })
  t.like(pub.files[0], { filename: 'p-1.0.0.tgz', cid, size: 3 })

  // Replicated elsewhere, the baseline rebuilds the same index; and A's own fold keeps it as is.
  const b = await openMeshStore(t, { repos: [['npm', 'npm']] })
  for (const r of records) b.applier.applyRemote(await openEnvelope(r.envelope, { mesh: MESH, isAllowed: () => true }), r.envelope)
  t.deepEqual(snapshot(b.db), before)
  // A change from B to the same package makes A re-fold it from its baseline: nothing is lost.
  await b.signer.start()
  b.artifacts.setTag('npm', 'p', 'next', '1.0.0')
  await b.signer.signPending()
  const fromB = b.manifests.since(b.peerId, 0, 100)
  t.is(fromB.length, 1)
  t.is(a.applier.applyRemote(await openEnvelope(fromB[0].envelope, { mesh: MESH, isAllowed: () => true }), fromB[0].envelope).status, 'applied')
  t.deepEqual(snapshot(a.db), snapshot(b.db))
  t.deepEqual(a.artifacts.tags('npm', 'p'), { latest: '1.0.0', next: '1.0.0' })
  t.like(a.artifacts.get('npm', 'p', '1.0.0'), { metadata: { name: 'p', version: '1.0.0' }, files: [{ filename: 'p-1.0.0.tgz', cid }] })
})
