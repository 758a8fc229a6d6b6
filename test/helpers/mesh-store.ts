// A node's storage as the mesh sees it (index, blobs, manifest log, signer, applier) on a temp
// dir with a real SQLite file and a real Ed25519 key.
import { join } from 'node:path'
import { Readable } from 'node:stream'
import type { ExecutionContext } from 'ava'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { RemoteApplier } from '../../store/apply.ts'
import { ArtifactIndex } from '../../store/artifacts.ts'
import { FileBlobStore } from '../../store/blobs.ts'
import { openDatabase, type DB } from '../../store/db.ts'

// Databases stay referenced until the worker exits: a better-sqlite3 handle collected by the
// final GC during environment teardown aborts the process (Database::~Database →
// RemoveEnvironmentCleanupHook with no env), which ava reports as a failed test file.
const keepAlive: DB[] = []
import { canonicalJson } from '../../store/fold.ts'
import { ManifestLog } from '../../store/manifests.ts'
import type { BlobInfo } from '../../store/types.ts'
import { ManifestSigner } from '../../mesh/signer.ts'
import { makeTempDir } from './node.ts'

export const MESH = 'test-mesh'
export const REPOS: Array<[string, string]> = [['npm', 'npm'], ['files', 'generic'], ['py', 'pypi']]

export interface MeshStore {
  dir: string
  db: DB
  store: FileBlobStore
  artifacts: ArtifactIndex
  manifests: ManifestLog
  key: PrivateKey
  peerId: string
  signer: ManifestSigner
  applier: RemoteApplier
  put (text: string): Promise<BlobInfo>
  close (): Promise<void>
}

export async function openMeshStore (t: ExecutionContext, opts: { dir?: string, key?: PrivateKey, repos?: Array<[string, string]> } = {}): Promise<MeshStore> {
  const dir = opts.dir ?? await makeTempDir(t, 'akmesh-mesh-')
  const key = opts.key ?? await generateKeyPair('Ed25519')
  const peerId = peerIdFromPrivateKey(key).toString()
  const db = openDatabase(join(dir, 'akmesh.db'))
  keepAlive.push(db)
  const store = await FileBlobStore.open(dir, db)
  const artifacts = new ArtifactIndex(db)
  for (const [name, format] of opts.repos ?? REPOS) artifacts.ensureRepository(name, format)
  const manifests = new ManifestLog(db)
  const signer = new ManifestSigner({ db, artifacts, store, manifests, mesh: MESH, privateKey: key })
  const applier = new RemoteApplier({ db, artifacts, store, manifests, self: peerId })
  const close = async () => { await signer.stop(); if (db.open) db.close() }
  t.teardown(close)
  return {
    dir, db, store, artifacts, manifests, key, peerId, signer, applier, close,
    put: async (text) => await store.put(Readable.from([Buffer.from(text)]))
  }
}

/** The index's visible state, comparable across nodes (ids and local timestamps left out). */
export function snapshot (db: DB): unknown {
  const artifacts = db.prepare<[], { id: number, repo: string, name: string, version: string, metadata: string }>(
    'SELECT id, repo, name, version, metadata FROM artifacts ORDER BY repo, name, version').all()
  const files = db.prepare<[number], { filename: string, cid: string }>('SELECT filename, cid FROM files WHERE artifact_id = ? ORDER BY filename')
  return {
    artifacts: artifacts.map(a => ({ repo: a.repo, name: a.name, version: a.version, metadata: canonicalJson(JSON.parse(a.metadata)), files: files.all(a.id) })),
    tags: db.prepare('SELECT repo, name, tag, version FROM tags ORDER BY repo, name, tag').all(),
    tombstones: db.prepare('SELECT repo, name, version FROM tombstones ORDER BY repo, name, version').all()
  }
}

/** Waits for `condition` with a deadline (no sleeps as synchronisation). */
export async function until (condition: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time')
    await new Promise(resolve => setTimeout(resolve, 5))
  }
}
