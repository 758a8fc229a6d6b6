// The store's interfaces: bytes named by CIDs, and rows describing artifacts.
// Protocols and (later) the mesh meet the store only through these types.
import type { Readable } from 'node:stream'

/** Every blob is split into fixed chunks of this size for per-chunk verification and transfer.
 *  1 MiB: small enough that a 2 GiB blob is 2048 independently verifiable pieces a swarm can
 *  spread across peers, large enough that the table (32 bytes per chunk) stays tiny. */
export const CHUNK_SIZE = 1024 * 1024

export type DigestName = 'sha256' | 'sha512' | 'sha1' | 'md5'
/** Digests a format may leave out of an upload (sha256, BLAKE3 and the chunk table are always kept). */
export type OptionalDigest = Exclude<DigestName, 'sha256'>

export interface BlobInfo {
  /** CIDv1, raw codec, BLAKE3 multihash, base32 string. */
  cid: string
  size: number
  sha256: string   // hex
  // hex; '' = not computed yet (a format that does not serve it stored the blob): whoever needs it
  // calls FileBlobStore.completeDigests, which computes it once and records it.
  sha512: string
  sha1: string
  md5: string | null
  chunkSize: number
  createdAt: number
}

export interface PutOptions {
  /** Digests (hex) or size the client declared; a mismatch fails the put and stores nothing. */
  expect?: Partial<Record<DigestName, string>> & { size?: number }
  /** Reject (TooLarge) as soon as more bytes than this arrive. */
  maxBytes?: number
  /** Also compute md5 (only formats that need it ask). */
  md5?: boolean
  /** The optional digests to compute (default sha512 + sha1); any declared in `expect` are
   *  computed too, to check them. A format passes what it serves (FormatHandler.digests). */
  digests?: readonly OptionalDigest[]
  signal?: AbortSignal
}

export interface ByteRange { start: number, end: number } // inclusive, like HTTP

/** Where bytes of blobs known here but not present come from (the mesh; set by node/server.ts). */
export interface RemoteBlobs {
  /** Starts or joins the fetch; rejects (Unavailable) if no source holds the blob. */
  ready (cid: string): Promise<void>
  /** The bytes (or a range of them) as they arrive. */
  open (cid: string, range?: ByteRange): Readable
  /** False when no peer is connected (so no peer can serve anything now): a remote repository then
   *  goes to its upstream at once for a cached blob whose bytes were evicted, without waiting. */
  reachable? (): boolean
}

/** Asks the mesh for an artifact this node does not hold yet (a remote repository asks before
 *  going upstream: blob bytes are fetched from upstream once per mesh). Implemented by
 *  mesh/lookup.ts; set by node/server.ts. */
export interface PeerLookup {
  /** Asks reachable peers for their signed manifests of (repo, name, version) and applies what
   *  comes back through replication's usual checks, until `held` (the caller's own test: this
   *  file of the version is cached here) says yes. True then (its bytes come from a peer through
   *  `BlobStore.locate`). False at once without peers; never throws; bounded in time. */
  find (repo: string, name: string, version: string, held: () => boolean, signal?: AbortSignal): Promise<boolean>
}

export interface BlobStore {
  /** A present blob, or one known here that `remote` can fetch (resolves once a source is found;
   *  rejects Unavailable if none). Formats look blobs up with this so absent ones stream through. */
  locate (cid: string): Promise<BlobInfo | undefined>
  /** Where absent blobs come from, if anywhere (the mesh). */
  readonly remote?: RemoteBlobs
  /** Streams bytes to disk while hashing; visible (has/open) only after fsync + rename. */
  put (source: AsyncIterable<Uint8Array> | Readable, opts?: PutOptions): Promise<BlobInfo>
  stat (cid: string): BlobInfo | undefined
  statBySha256 (sha256: string): BlobInfo | undefined
  /** The CID of a blob with this sha256, present or only known from a manifest (then `locate`
   *  fetches it): how digest-addressed protocols (OCI) reach blobs held elsewhere in the mesh. */
  cidBySha256 (sha256: string): string | undefined
  has (cid: string): boolean
  open (cid: string, range?: ByteRange): Readable
  /** An open descriptor (read-only) of a present blob's file, which the caller must close; undefined
   *  if the bytes are not here. Downloads read it in big blocks instead of through a stream. */
  openFd? (cid: string): number | undefined
  chunkHashes (cid: string): Uint8Array[]
}

export interface ArtifactFile {
  filename: string
  cid: string
}

export interface ArtifactDraft {
  repo: string
  name: string
  version: string
  files: ArtifactFile[]
  /** Whatever the format needs to serve the artifact later (npm: the version document). */
  metadata: Record<string, unknown>
}

export interface Artifact extends ArtifactDraft {
  createdAt: number
  updatedAt: number
}

export interface FileWithBlob extends ArtifactFile {
  blob: BlobInfo
}
