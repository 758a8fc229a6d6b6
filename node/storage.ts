// A data directory's storage (the SQLite index, blobs, artifacts, accounts), opened without
// the server, the mesh or HTTP: `akmesh export`, `import`, `verify` and the token commands
// need only this, and loading node/server.ts costs ~1.5 s of module loading per command.
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { Accounts } from '../store/accounts.ts'
import { ArtifactIndex } from '../store/artifacts.ts'
import { FileBlobStore } from '../store/blobs.ts'
import { openDatabase, type DB } from '../store/db.ts'

export interface Storage {
  db: DB
  store: FileBlobStore
  artifacts: ArtifactIndex
  accounts: Accounts
}

/** Opens (creating if needed) a data directory: blobs, temp files and the SQLite index.
 *  Only the node sweeps temp files (`sweepTemp`); CLI commands run beside a live node. */
export async function openStorage (dataDir: string, opts: { sweepTemp?: boolean } = {}): Promise<Storage> {
  await mkdir(dataDir, { recursive: true })
  const db = openDatabase(join(dataDir, 'akmesh.db'))
  const store = await FileBlobStore.open(dataDir, db, { sweepTemp: opts.sweepTemp === true })
  return { db, store, artifacts: new ArtifactIndex(db), accounts: new Accounts(db) }
}

