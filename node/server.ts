// Composition: opens the store and index, builds the HTTP front, listens. The one place parts meet.
import type { Server } from 'node:http'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import type { Logger } from 'pino'
import { peeringPath } from '../config/peering.ts'
import { replicationFor } from '../config/peering-schema.ts'
import type { Config } from '../config/schema.ts'
import { BlobFetcher } from '../mesh/fetcher.ts'
import { startMesh, type Mesh } from '../mesh/index.ts'
import { ArtifactLookup } from '../mesh/lookup.ts'
import { ContentProgress } from '../protocols/shared/remote/content-progress.ts'
import { CertificateExpiryWatch, MemberReport } from '../mesh/member-report.ts'
import { serveBlobs } from '../mesh/transfer.ts'
import { TokenBucket } from '../mesh/bandwidth.ts'
import { PeerProfiles } from '../mesh/profiles.ts'
import { blake3Implementation } from '../store/hash.ts'
import { checkReplicatedArtifact } from './artifact-check.ts'
import { BlobCollector, gcRoutes } from './gc.ts'
import { CacheKeeper, cacheRoutes } from './cache.ts'
import { createHttpServer } from './expect-continue.ts'
import { buildApp } from './http.ts'
import { Lifecycle } from './lifecycle.ts'
import { guardProcess } from './process-guard.ts'

// Storage lives in storage.ts (the CLI's offline commands load it without the server's
// libraries: ~1.5 s of module loading per command); re-exported for existing importers.
import { openStorage } from './storage.ts'
import { digestOrigin } from '../store/digest-origin.ts'
export { openStorage, type Storage } from './storage.ts'

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
  // Each step's undo is recorded as it succeeds: a failing step stops what started, in reverse;
  // so does a throw between steps.
  const parts = new Lifecycle(log)
  try {
    return await startParts(parts, config, log, meshOptions)
  } catch (err) {
    await parts.stop()
    throw err
  }
}

async function startParts (parts: Lifecycle, config: Config, log: Logger, meshOptions: MeshOptions): Promise<RunningNode> {
  const storage = await parts.start('storage', () => openStorage(config.dataDir, { sweepTemp: true }), (s) => { s.db.close() })
  await parts.start('repositories', () => { for (const r of config.repositories) storage.artifacts.ensureRepository(r.name, r.format) })

  if (storage.accounts.tokenCount() === 0) {
    const { token } = storage.accounts.createToken({ owner: 'admin', description: 'first-run admin token', scopes: ['admin'], repos: ['*'] })
    // Shown once, on stderr, outside the JSON log stream so it is not shipped to log storage.
    process.stderr.write(`\nakmesh: created the first admin token (shown only this once, store it now):\n\n  ${token}\n\n` +
      'Use it as a bearer token, e.g. npm config set //HOST:PORT/npm/:_authToken <token>\n\n')
  }

  // Always: a node without peers is a mesh of one.
  const mesh: Mesh = await parts.start('mesh',
    () => startMesh({ dataDir: config.dataDir, peering: peeringPath(config.dataDir, meshOptions.peeringFile), log, listenPort: meshOptions.listenPort, storage: { ...storage, validate: checkReplicatedArtifact } }),
    (m) => m.stop())

  // Who the members are, connected or not, last manifest seen; certificates expiring within 14
  // days are logged now and daily (and listed by /-/mesh/status).
  const members = new MemberReport({
    dataDir: config.dataDir,
    self: mesh.peerId.toString(),
    membership: mesh.membership,
    peering: () => mesh.peering.current,
    connected: () => mesh.peers().map(p => p.peerId),
    lastSeen: (origin) => mesh.replication?.manifests.lastSeen(origin)
  })
  await parts.start('certificate expiry watch', async () => { const w = new CertificateExpiryWatch(members, log); await w.start(); return w }, (w) => { w.stop() })

  // Blob transfer: serve blobs (and chunks of blobs still arriving) to peers, under the upload
  // cap; fetch known-but-absent ones from every peer holding them, chosen by measured profiles.
  const meshName = mesh.peering.current.mesh
  const profiles = await parts.start('peer profiles', async () => {
    const p = new PeerProfiles({ file: join(config.dataDir, 'peer-profiles.json'), log })
    await p.load()
    p.start(mesh.libp2p)
    return p
  }, (p) => p.stop())
  const fetcher = new BlobFetcher({ libp2p: mesh.libp2p, store: storage.store, mesh: meshName, profiles, log, waitMs: () => mesh.peering.current.blobWaitMs, digestOrigin: digestOrigin(storage.db) })
  const bucket = new TokenBucket(() => mesh.peering.current.uploadBandwidth)
  // The libp2p handlers go when the mesh stops.
  await parts.start('blob serving', () => serveBlobs({ libp2p: mesh.libp2p, store: storage.store, mesh: meshName, log, bucket, profiles, partial: (cid) => fetcher.partial(cid), relay: (cid, hops) => fetcher.relay(cid, hops), isMember: (p) => mesh.membership.isMember(p), guard: (h) => mesh.introductions.membersOnly(h) }))
  await parts.start('blob fetcher', async () => { storage.store.remote = fetcher; await fetcher.start() }, () => fetcher.stop())
  // Mirrored repositories hold every blob: what a restart (or a policy change) left absent is queued.
  for (const { repo, cid } of storage.artifacts.absentBlobs()) {
    if (replicationFor(mesh.peering.current, repo) === 'mirror') fetcher.mirror(cid)
  }
  // Remote repositories ask peers for what another site already cached before going upstream.
  const replication = mesh.replication
  const progress = new ContentProgress()
  const lookup = replication == null
    ? undefined
    : await parts.start('artifact lookup', async () => {
      const l = new ArtifactLookup({ libp2p: mesh.libp2p, mesh: meshName, manifests: replication.manifests, receiver: replication, certificates: mesh.membership, guard: (h) => mesh.introductions.membersOnly(h), progress: (repo, name, version) => progress.phase(repo, name, version), log })
      await l.start()
      return l
    }, (l) => l.stop())
  await parts.start('announcing', () => {
    const c = new AbortController()
    void fetcher.provideAll(c.signal)
    return c
  }, (c) => { c.abort() })
  // Replication policy: a mirrored repository's blobs are fetched as soon as its manifest is
  // applied; blobs of local changes are announced as they are signed.
  mesh.replication?.onApplied((m) => {
    if (replicationFor(mesh.peering.current, m.repo) === 'mirror') for (const f of m.files) fetcher.mirror(f.cid)
  })
  mesh.replication?.signer.onManifest(({ manifest }) => { for (const f of manifest.files) void fetcher.provide(f.cid) })

  // Blob gc: orphan files a crash left are swept once they are a grace period old; unreferenced
  // blobs are collected every `gc.interval` and on POST /-/gc (what `akmesh gc` calls). Its timers
  // start once the node listens.
  const collector = await parts.start('blob gc',
    () => new BlobCollector({ db: storage.db, store: storage.store, config: config.gc, self: mesh.libp2p.peerId.toString(), log }),
    (c) => c.stop())
  // Remote repositories' caches: last use of cached blobs (flushed every minute), quotas, prune.
  const cache = await parts.start('cache keeper', () => {
    const k = new CacheKeeper({ db: storage.db, store: storage.store, config, self: mesh.libp2p.peerId.toString(), log })
    k.start()
    return k
  }, (k) => k.stop())
  const app = await parts.start('http app', () => {
    const a = buildApp({ config, log, ...storage, mesh, transfers: { list: () => fetcher.transfers(), profiles: () => profiles.all() }, members, cache, peers: lookup, progress })
    a.use(gcRoutes(collector).routes())
    a.use(cacheRoutes(cache).routes())
    return a
  })
  const server = createHttpServer(app)
  // An error escaping one client's request is logged, never fatal (node/process-guard.ts).
  await parts.start('process guard', () => guardProcess(log.child({ component: 'http' })), (unguard) => { unguard() })

  await parts.start('http listener', () => listen(server, config.http.port, config.http.host), () => closeServer(server))
  const addr = server.address() as AddressInfo
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address
  const url = `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${addr.port}`
  collector.start()
  log.info({ url, dataDir: config.dataDir, blake3: (await blake3Implementation()).implementation, repositories: config.repositories.map(r => `${r.name} (${r.format})`) }, 'listening')

  return {
    url,
    server,
    mesh,
    close: async () => { await parts.stop() }
  }
}

async function listen (server: Server, port: number, host: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const failed = (err: NodeJS.ErrnoException) => {
      reject(err.code === 'EADDRINUSE'
        ? new Error(`HTTP port ${host}:${port} is already in use (http.port in the config, or --port)`, { cause: err })
        : err)
    }
    server.once('error', failed)
    server.listen(port, host, () => { server.off('error', failed); resolve() })
  })
}

async function closeServer (server: Server): Promise<void> {
  await new Promise<void>(resolve => { server.close(() => resolve()); server.closeAllConnections() })
}
