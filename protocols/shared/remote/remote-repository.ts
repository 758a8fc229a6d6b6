// The shared core of every remote (caching proxy) repository, whatever its format: offline mode,
// negative caching, one upstream request per missing thing however many clients ask, content
// streamed while it is cached, metadata with a TTL served stale when the upstream fails, and the
// immutability check of what is cached. A format supplies only its hooks (./hooks.ts).
import type { Logger } from 'pino'
import type { RemoteSettings } from '../../../config/remote-schema.ts'
import { notFound, upstreamError, type RegistryError } from '../../../store/errors.ts'
import type { BlobInfo, BlobStore, DigestName, PeerLookup } from '../../../store/types.ts'
import { fetchIntoStore } from './content-fetch.ts'
import type { ContentProgress } from './content-progress.ts'
import { SingleFlight } from './single-flight.ts'
import { TtlCache, type CachedDocument } from './ttl-cache.ts'
import { UpstreamClient, type UpstreamRequest, type UpstreamResponse } from './upstream-client.ts'

/** What a format adds to its upstream requests: headers (OCI's Accept), the token scope, and
 *  whether digest-verified content may come from a redirect to another host. */
export type UpstreamOptions = Pick<UpstreamRequest, 'headers' | 'tokenScope' | 'crossOriginRedirects'>

/** RFC 7234 §5.5.1, sent with metadata served past its TTL because the upstream failed. */
export const STALE_WARNING = '110 - "Response is Stale"'

export interface RemoteRepositoryParts {
  name: string
  settings: RemoteSettings
  store: BlobStore
  limits: { uploadBytes: number, metadataBytes: number }
  log: Logger
  /** Cache bookkeeping (node/cache.ts): last use for LRU eviction, and the quota after a fetch. */
  cache?: CacheHooks
  /** The mesh, asked for content another node already cached before going upstream (absent:
   *  a node without a mesh, or a test of the core alone). */
  peers?: PeerLookup
  /** Where peers' lookups see what this node is getting now (shared by a node's remotes). */
  progress?: ContentProgress
}

export interface CacheHooks {
  /** A cached blob was served (cheap: noted in memory). */
  served (cid: string): void
  /** Content was fetched and recorded as `cid`: may evict other cached blobs of the repository. */
  fetched (cid: string): void
}

export interface ContentRequest<T> {
  /** Digests the body must have, from the format's knowledge or the upstream's headers. */
  expect: (res: UpstreamResponse) => Partial<Record<DigestName, string>>
  /** Records the stored blob (an artifact row marked cached); runs before the stream ends. */
  commit: (blob: BlobInfo, res: UpstreamResponse) => T | Promise<T>
  /** Whether the caller streams the bytes to its client as they arrive. */
  toClient: boolean
  upstream?: UpstreamOptions
  /** Whether the content is in the cache now. Asked when no fetch of the key is in flight: a
   *  caller that missed the cache just before another request's fetch committed (it was waiting
   *  for metadata) must not fetch again. True: `done` resolves at once (to undefined). */
  isCached?: () => boolean
  /** The artifact row this content is cached as. With it (and `isKnown`), the mesh is asked
   *  first: a peer's signed manifest of it, once applied here, makes it known without the
   *  upstream (its bytes then come from that peer). */
  artifact?: { name: string, version: string }
  /** Whether the artifact's row is here, its bytes perhaps not (evicted, or replicated from a
   *  peer). A row known before the fetch means the peers were asked for the bytes already (the
   *  cache-hit path, ./cached-blob.ts) and none served them: no lookup then. */
  isKnown?: () => boolean
}

/** The first caller gets the upstream response and a stream; later ones wait for `done`. */
export type ContentAnswer<T> =
  | { first: true, response: UpstreamResponse, stream: NodeJS.ReadableStream, done: Promise<T>, flowing: Promise<void> }
  | { first: false, done: Promise<T>, fromPeer?: true }

export interface MetadataRequest {
  /** Why a body is not the metadata expected (an HTML error page instead of JSON), or undefined. */
  refuse?: (contentType: string, body: Buffer, headers: Headers) => string | undefined
  /** Request headers and options the format's upstream needs (PyPI: the Accept that picks PEP 691
   *  JSON; OCI: manifest types and the token scope). */
  upstream?: UpstreamOptions
}

export interface CachedFacts { etag?: string, lastModified?: string, size: number }

export class RemoteRepository {
  readonly settings: RemoteSettings
  readonly client: UpstreamClient
  readonly #p: RemoteRepositoryParts
  readonly #notFound = new TtlCache<string>()
  readonly #metadata = new TtlCache<CachedDocument>()
  readonly #metadataFlights = new SingleFlight<CachedDocument>()
  readonly #content = new Map<string, Promise<unknown>>()
  readonly #checked = new TtlCache<true>()

  constructor (parts: RemoteRepositoryParts) {
    this.#p = parts
    this.settings = parts.settings
    this.client = new UpstreamClient(parts.settings)
  }

  get upstream (): string { return this.settings.upstream.href }

  /** Tells the cache bookkeeping a cached blob was served (its last use, for LRU eviction). */
  served (cid: string): void { this.#p.cache?.served(cid) }

  /** Fetches content not cached yet: joins a fetch of the same key in flight, else asks upstream. */
  async content<T> (key: string, url: URL, req: ContentRequest<T>): Promise<ContentAnswer<T>> {
    const running = this.#content.get(key)
    if (running != null) return { first: false, done: running as Promise<T> }
    if (req.isCached?.() === true) return { first: false, done: Promise.resolve(undefined as T) }
    this.#gate(key)
    let fetchEnded!: () => void
    const fetched = new Promise<void>(resolve => { fetchEnded = resolve })
    const started = (async () => {
      // Inside the single flight: however many clients ask, one lookup, then one upstream request.
      if (await this.fromPeers(key, req.artifact, req.isKnown)) return undefined
      this.#markFetching(req, fetched)
      const res = await this.#ok(key, await this.client.request(url, req.upstream))
      return { res, fetch: fetchIntoStore(this.#p.store, res, {
        expect: req.expect(res),
        maxBytes: this.#p.limits.uploadBytes,
        commit: async (blob) => {
          const result = await req.commit(blob, res)
          this.#p.cache?.fetched(blob.cid)
          return result
        },
        toClient: req.toClient,
        log: this.#p.log
      }) }
    })()
    // Just fetched: nothing to revalidate until metadataTtl has passed.
    const done = started.then(async s => s == null ? undefined as T : await s.fetch.done).then(v => { this.#checked.set(key, true); return v })
    this.#content.set(key, done)
    done.catch(() => {}).finally(() => { fetchEnded(); if (this.#content.get(key) === done) this.#content.delete(key) })
    const s = await started
    if (s == null) return { first: false, done, fromPeer: true }
    return { first: true, response: s.res, stream: s.fetch.stream, done: s.fetch.done, flowing: s.fetch.flowing }
  }

  /** Peers asking for this artifact now wait for this fetch (its end: committed or failed). */
  #markFetching (req: ContentRequest<unknown>, fetched: Promise<void>): void {
    if (this.#p.progress == null || req.artifact == null) return
    const unmark = this.#p.progress.mark(this.#p.name, req.artifact.name, req.artifact.version, fetched)
    void fetched.then(unmark)
  }

  /** Whether a peer's copy made `key` known here (its manifest applied; the bytes follow from
   *  that peer when served). A failed or empty lookup only means: go upstream. Also for formats
   *  whose content is pinned by metadata they fetched (OCI: a manifest by tag), asked before they
   *  record it themselves. */
  async fromPeers (key: string, artifact: { name: string, version: string } | undefined, known: (() => boolean) | undefined): Promise<boolean> {
    const peers = this.#p.peers
    if (peers == null || artifact == null || known == null || known()) return false
    const { name, version } = artifact
    const unmark = this.#p.progress?.mark(this.#p.name, name, version, 'looking')
    let found = false
    try { found = await peers.find(this.#p.name, name, version, known) } catch (err) {
      this.#p.log.debug({ key, err: (err as Error).message }, 'mesh lookup failed')
    } finally { unmark?.() }
    if (!found || !known()) return false
    this.#p.log.info({ key, name, version }, 'cached by a peer of the mesh: served from its copy, not from upstream')
    return true
  }

  /** Answers a HEAD for content not cached, from the upstream's headers (nothing is cached). */
  async head (key: string, url: URL, upstream: UpstreamOptions = {}): Promise<UpstreamResponse> {
    this.#gate(key)
    const res = await this.#ok(key, await this.client.request(url, { ...upstream, method: 'HEAD' }))
    await res.discard()
    return res
  }

  /** A metadata document: fresh from the cache, else from upstream, else stale from the cache
   *  (with `stale: true`, for a Warning header) when the upstream fails. */
  async metadata (key: string, url: URL, req: MetadataRequest = {}): Promise<{ doc: CachedDocument, stale: boolean }> {
    const cached = this.#metadata.get(key)
    if (this.settings.offline) {
      if (cached == null) throw this.#offlineMiss(key)
      return { doc: cached.value, stale: false }
    }
    if (cached != null && cached.age < this.settings.metadataTtl) return { doc: cached.value, stale: false }
    const remembered = this.#notFound.fresh(key, this.settings.negativeTtl)
    if (remembered != null) throw notFound(remembered)
    try {
      return { doc: await this.#metadataFlights.run(key, async () => await this.#fetchMetadata(key, url, req, cached?.value)), stale: false }
    } catch (err) {
      const code = (err as RegistryError).code
      if (cached == null || (code !== 'UpstreamError' && code !== 'UpstreamTimeout')) throw err
      this.#p.log.warn({ key, upstream: UpstreamClient.describe(url), err: (err as Error).message, ageMs: cached.age }, 'upstream failed; serving stale metadata')
      return { doc: cached.value, stale: true }
    }
  }

  /** Checks, at most once per metadataTtl, that the upstream still has what was cached for `key`.
   *  Cached content is immutable: a change is refused and logged, and `onChanged` is told. */
  revalidate (key: string, url: URL, known: CachedFacts, onChanged: (why: string) => void, upstream: UpstreamOptions = {}): void {
    if (this.settings.offline || this.#checked.fresh(key, this.settings.metadataTtl) != null) return
    this.#checked.set(key, true)
    void (async () => {
      const res = await this.client.request(url, { ...upstream, method: 'HEAD' })
      await res.discard()
      if (res.status < 200 || res.status > 299) return // gone upstream: the cached copy stays
      const why = changed(known, res)
      if (why == null) return
      this.#p.log.warn({ key, upstream: UpstreamClient.describe(url), change: why },
        'upstream changed content that is already cached; refused, the cached bytes are still served')
      onChanged(why)
    })().catch((err: Error) => { this.#p.log.debug({ key, err: err.message }, 'revalidation failed') })
  }

  #gate (key: string): void {
    if (this.settings.offline) throw this.#offlineMiss(key)
    const remembered = this.#notFound.fresh(key, this.settings.negativeTtl)
    if (remembered != null) throw notFound(remembered)
  }

  #offlineMiss (key: string): RegistryError {
    return notFound(`${key} is not cached in ${this.#p.name}, and the repository is offline (offline: true)`)
  }

  /** The response if 2xx; a 404/410 is remembered for negativeTtl; anything else is a 502. */
  async #ok (key: string, res: UpstreamResponse): Promise<UpstreamResponse> {
    if (res.status >= 200 && res.status <= 299) return res
    await res.discard()
    const from = UpstreamClient.describe(res.url)
    if (res.status === 404 || res.status === 410) {
      const message = `${key} not found upstream (${from} answered ${res.status}); remembered for ${Math.round(this.settings.negativeTtl / 1000)}s`
      this.#notFound.set(key, message)
      throw notFound(message)
    }
    throw upstreamError(`upstream ${from} answered ${res.status}; nothing cached`)
  }

  async #fetchMetadata (key: string, url: URL, req: MetadataRequest, stale?: CachedDocument): Promise<CachedDocument> {
    const headers: Record<string, string> = { ...req.upstream?.headers }
    if (stale?.etag != null) headers['if-none-match'] = stale.etag
    if (stale?.lastModified != null) headers['if-modified-since'] = stale.lastModified
    const res = await this.client.request(url, { ...req.upstream, headers })
    if (res.status === 304 && stale != null) {
      await res.discard()
      const doc = { ...stale, fetchedAt: Date.now() }
      this.#metadata.set(key, doc)
      return doc
    }
    await this.#ok(key, res)
    const max = this.#p.limits.metadataBytes
    const from = UpstreamClient.describe(res.url)
    if (res.length != null && res.length > max) {
      await res.discard()
      throw upstreamError(`upstream ${from} declares ${res.length} bytes of metadata, over limits.metadataBytes (${max}); refused`)
    }
    const pieces: Uint8Array[] = []
    let size = 0
    for await (const piece of res.body()) {
      size += piece.byteLength
      if (size > max) throw upstreamError(`upstream ${from} sent more than limits.metadataBytes (${max}) of metadata; refused`)
      pieces.push(piece)
    }
    const body = Buffer.concat(pieces)
    if (res.length != null && size !== res.length) throw upstreamError(`upstream ${from} sent ${size} of the ${res.length} bytes it declared; refused`)
    const contentType = res.headers.get('content-type') ?? ''
    const refused = req.refuse?.(contentType, body, res.headers)
    if (refused != null) throw upstreamError(`upstream ${from}: ${refused}; refused, nothing cached`)
    const doc: CachedDocument = {
      body, contentType, fetchedAt: Date.now(),
      etag: res.headers.get('etag') ?? undefined, lastModified: res.headers.get('last-modified') ?? undefined
    }
    this.#metadata.set(key, doc)
    return doc
  }
}

/** How the upstream's answer differs from what was cached, by its validators, else its size. */
function changed (known: CachedFacts, res: UpstreamResponse): string | undefined {
  const etag = res.headers.get('etag')
  if (known.etag != null && etag != null) return etag === known.etag ? undefined : `ETag ${known.etag} is now ${etag}`
  const lm = res.headers.get('last-modified')
  if (known.lastModified != null && lm != null && lm !== known.lastModified) return `Last-Modified ${known.lastModified} is now ${lm}`
  if (res.length != null && res.length !== known.size) return `size ${known.size} is now ${res.length}`
  return undefined
}
