// Composition: opens the store and index, builds the HTTP front, listens. The one place parts meet.
import { mkdir } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import type { Logger } from 'pino'
import { peeringPath } from '../config/peering.ts'
import { replicationFor } from '../config/peering-schema.ts'
import type { Config } from '../config/schema.ts'
import { BlobFetcher } from '../mesh/fetcher.ts'
import { startMesh, type Mesh } from '../mesh/index.ts'
import { serveBlobs } from '../mesh/transfer.ts'
import { TokenBucket } from '../mesh/bandwidth.ts'
import { PeerProfiles } from '../mesh/profiles.ts'
import { Accounts } from '../store/accounts.ts'
import { ArtifactIndex } from '../store/artifacts.ts'
import { FileBlobStore } from '../store/blobs.ts'
import { openDatabase, type DB } from '../store/db.ts'
import { blake3Implementation } from '../store/hash.ts'
import { continueWhenRead } from './expect-continue.ts'
import { buildApp } from './http.ts'
import { guardProcess } from './process-guard.ts'

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

export interface RunningNode {
  url: string
  server: Server
  mesh: Mesh
  close (): Promise<void>
}

export interface MeshOptions {
  /** Default: $AKMESH_PEERING, else <dataDir>/peering.json. */
  peeringFile?: string
  /** Overrides the TCP port of the peering file's listen addresses (0: ephemeral). */
  listenPort?: number
}

export async function startNode (config: Config, log: Logger, meshOptions: MeshOptions = {}): Promise<RunningNode> {
  const storage = await openStorage(config.dataDir, { sweepTemp: true })
  for (const r of config.repositories) storage.artifacts.ensureRepository(r.name, r.format)

  if (storage.accounts.tokenCount() === 0) {
    const { token } = storage.accounts.createToken({ owner: 'admin', description: 'first-run admin token', scopes: ['admin'], repos: ['*'] })
    // Shown once, on stderr, outside the JSON log stream so it is not shipped to log storage.
    process.stderr.write(`\nakmesh: created the first admin token (shown only this once, store it now):\n\n  ${token}\n\n` +
      'Use it as a bearer token, e.g. npm config set //HOST:PORT/npm/:_authToken <token>\n\n')
  }

  // Always: a node without peers is a mesh of one.
  let mesh: Mesh
  try {
    mesh = await startMesh({ dataDir: config.dataDir, peering: peeringPath(config.dataDir, meshOptions.peeringFile), log, listenPort: meshOptions.listenPort, storage })
  } catch (err) {
    storage.db.close()
    throw err
  }

  // Blob transfer: serve blobs (and chunks of blobs still arriving) to peers, under the upload
  // cap; fetch known-but-absent ones from every peer holding them, chosen by measured profiles.
  const meshName = mesh.peering.current.mesh
  const profiles = new PeerProfiles({ file: join(config.dataDir, 'peer-profiles.json'), log })
  await profiles.load()
  profiles.start(mesh.libp2p)
  const fetcher = new BlobFetcher({ libp2p: mesh.libp2p, store: storage.store, mesh: meshName, profiles, log })
  const bucket = new TokenBucket(() => mesh.peering.current.uploadBandwidth)
  await serveBlobs({ libp2p: mesh.libp2p, store: storage.store, mesh: meshName, log, bucket, profiles, partial: (cid) => fetcher.partial(cid), relay: (cid, hops) => fetcher.relay(cid, hops) })
  storage.store.remote = fetcher
  await fetcher.start()
  // Mirrored repositories hold every blob: what a restart (or a policy change) left absent is queued.
  for (const { repo, cid } of storage.artifacts.absentBlobs()) {
    if (replicationFor(mesh.peering.current, repo) === 'mirror') fetcher.mirror(cid)
  }
  const announcing = new AbortController()
  void fetcher.provideAll(announcing.signal)
  // Replication policy: a mirrored repository's blobs are fetched as soon as its manifest is
  // applied; blobs of local changes are announced as they are signed.
  mesh.replication?.onApplied((m) => {
    if (replicationFor(mesh.peering.current, m.repo) === 'mirror') for (const f of m.files) fetcher.mirror(f.cid)
  })
  mesh.replication?.signer.onManifest(({ manifest }) => { for (const f of manifest.files) void fetcher.provide(f.cid) })

  const app = buildApp({ config, log, ...storage, mesh, transfers: { list: () => fetcher.transfers(), profiles: () => profiles.all() } })
  const handle = app.callback()
  const server = createServer(handle)
  continueWhenRead(server, handle)
  const unguard = guardProcess(log.child({ component: 'http' }))
  // Large uploads and downloads can take long; only the headers have a deadline.
  server.requestTimeout = 0
  server.headersTimeout = 60_000
  server.keepAliveTimeout = 65_000

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(config.http.port, config.http.host, () => { server.off('error', reject); resolve() })
    })
  } catch (err) {
    unguard()
    await mesh.stop()
    storage.db.close()
    throw err
  }
  const addr = server.address() as AddressInfo
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address
  const url = `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${addr.port}`
  log.info({ url, dataDir: config.dataDir, blake3: (await blake3Implementation()).implementation, repositories: config.repositories.map(r => `${r.name} (${r.format})`) }, 'listening')

  return {
    url,
    server,
    mesh,
    close: async () => {
      announcing.abort()
      await new Promise<void>(resolve => { server.close(() => resolve()); server.closeAllConnections() })
      await fetcher.stop()
      await profiles.stop()
      await mesh.stop()
      storage.db.close()
      unguard()
    }
  }
}
