// What a format implements to have remote (caching proxy) repositories: a few hooks over the
// shared core (./remote-repository.ts), which owns caching, TTLs, coalescing, stale-if-error,
// streaming while caching and immutability. See protocols/README.md, "Remote repositories".
import type { DigestName } from '../../../store/types.ts'
import type { UpstreamResponse } from './upstream-client.ts'

export interface RemoteFormat {
  /** The upstream URL serving `path` (the request path below the repository's prefix, as the
   *  client sent it, percent-encoded), relative to the upstream base URL. */
  upstreamPath (path: string): string
  /** Metadata (indexes, packuments, tag lists: re-fetched after metadataTtl, served stale when
   *  the upstream fails) or content (immutable once cached, verified, stored as an artifact). */
  kind (path: string): 'metadata' | 'content'
  /** Digests (hex) fetched content must match: from the format's metadata (npm's dist.integrity,
   *  OCI's digest in the URL) or from the upstream's own checksum headers. */
  expectedDigests (path: string, res: UpstreamResponse): Partial<Record<DigestName, string>>
  /** Why a fetched metadata body is not what the format expects (an HTML error page where JSON
   *  belongs), or undefined to accept it. Refused bodies are never cached. */
  refuseMetadata? (contentType: string, body: Buffer): string | undefined
  /** Metadata as this node serves it: URLs that point at the upstream rewritten to `baseUrl`. */
  rewriteMetadata? (body: Buffer, baseUrl: string, upstream: URL): Buffer
}
