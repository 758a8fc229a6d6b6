// Requests to a remote repository's upstream: credentials added (and never logged), a deadline
// for the response headers and between body pieces, redirects followed only within the
// upstream's origin, the registry token flow (a 401 with a Bearer challenge: ./bearer-token.ts),
// and every failure turned into a typed error naming the upstream.
import type { RemoteSettings } from '../../../config/remote-schema.ts'
import { upstreamError, upstreamTimeout } from '../../../store/errors.ts'
import { BearerTokens, parseBearerChallenge } from './bearer-token.ts'

const MAX_REDIRECTS = 5

export interface UpstreamRequest {
  method?: 'GET' | 'HEAD'
  headers?: Record<string, string>
  signal?: AbortSignal
  /** What a Bearer token for this request is kept under (an OCI registry's scope, e.g.
   *  "repository:library/alpine:pull"), so the next request of that scope sends it at once
   *  instead of being challenged first. Without it, tokens are kept by the challenge's scope. */
  tokenScope?: string
  /** Follow a redirect to another host, without credentials. Only for content verified by a
   *  digest the format already knows (OCI blobs, which registries redirect to storage or a CDN):
   *  what that host serves cannot pass as the upstream's unless it has the right bytes. */
  crossOriginRedirects?: boolean
}

export interface UpstreamResponse {
  status: number
  url: URL
  headers: Headers
  /** The declared length, if any. */
  length?: number
  /** The body, each piece within the idle timeout; throws UpstreamError/UpstreamTimeout. */
  body (): AsyncIterable<Uint8Array>
  /** Releases the connection without reading the body. */
  discard (): Promise<void>
}

export class UpstreamClient {
  readonly #settings: RemoteSettings
  readonly #auth?: string
  /** Unset with a configured static token: that token is the credential, no flow replaces it. */
  readonly #tokens?: BearerTokens

  constructor (settings: RemoteSettings) {
    this.#settings = settings
    const a = settings.auth
    if (a != null) {
      this.#auth = 'token' in a ? `Bearer ${a.token}` : `Basic ${Buffer.from(`${a.username}:${a.password}`).toString('base64')}`
    }
    if (a == null || !('token' in a)) this.#tokens = new BearerTokens({ basic: this.#auth, timeoutMs: settings.timeouts.response })
  }

  /** The upstream URL of a path below the upstream base (already percent-encoded). */
  urlOf (encodedPath: string): URL {
    return new URL(encodedPath.replace(/^\/+/, ''), this.#settings.upstream)
  }

  /** Where a URL came from, for messages: origin and path, never credentials or query. */
  static describe (url: URL): string { return `${url.origin}${url.pathname}` }

  async request (url: URL, req: UpstreamRequest = {}): Promise<UpstreamResponse> {
    const { response: responseMs, idle: idleMs } = this.#settings.timeouts
    // A URL on another host came from the upstream's own metadata (PyPI indexes name files on a
    // separate file host): it gets no credentials, and redirects stay on that host.
    const upstreamOrigin = this.#settings.upstream.origin
    const origin = url.origin
    let current = url
    let bearer = req.tokenScope != null ? this.#tokens?.cached(req.tokenScope) : undefined
    let challenged = false
    for (let hop = 0; ; hop++) {
      const ac = new AbortController()
      const timer = setTimeout(() => ac.abort(new TimeoutMarker()), responseMs)
      const signal = req.signal == null ? ac.signal : AbortSignal.any([ac.signal, req.signal])
      let res: Response
      try {
        res = await fetch(current, {
          method: req.method ?? 'GET',
          // Credentials go to the upstream's origin only.
          headers: { ...req.headers, ...(current.origin === upstreamOrigin ? authorization(bearer != null ? `Bearer ${bearer}` : this.#auth) : {}) },
          redirect: 'manual',
          signal
        })
      } catch (err) {
        throw failure(err, current, `did not answer within ${responseMs} ms`)
      } finally { clearTimeout(timer) }
      // Challenged once per request: a token that is refused again is the upstream's answer.
      const challenge = res.status === 401 && !challenged && this.#tokens != null && current.origin === upstreamOrigin ? parseBearerChallenge(res.headers.get('www-authenticate')) : undefined
      if (challenge != null && this.#tokens != null) {
        await res.body?.cancel().catch(() => {})
        challenged = true
        bearer = await this.#tokens.fetch(challenge, req.tokenScope ?? challenge.scope ?? '', req.signal)
        continue
      }
      if (res.status >= 300 && res.status < 400 && res.headers.has('location')) {
        await res.body?.cancel().catch(() => {})
        const next = new URL(res.headers.get('location') as string, current)
        // Credentials go with every request: following another host would hand them to it, and
        // what it serves would be cached as this upstream's.
        if (next.origin !== origin && req.crossOriginRedirects !== true) {
          throw upstreamError(`upstream ${UpstreamClient.describe(current)} redirected to another host (${next.origin}); refused, nothing cached`)
        }
        if (hop >= MAX_REDIRECTS) throw upstreamError(`upstream ${UpstreamClient.describe(url)} redirected more than ${MAX_REDIRECTS} times`)
        current = next
        continue
      }
      const declared = res.headers.get('content-length')
      return {
        status: res.status,
        url: current,
        headers: res.headers,
        length: declared != null && /^\d+$/.test(declared) ? Number(declared) : undefined,
        body: () => idleBody(res, current, idleMs, req.signal),
        discard: async () => { await res.body?.cancel().catch(() => {}) }
      }
    }
  }
}

const authorization = (value?: string): Record<string, string> => value != null ? { authorization: value } : {}

/** Aborts a fetch whose deadline passed (told apart from the caller's own abort). */
class TimeoutMarker extends Error { constructor () { super('upstream timeout') } }

function failure (err: unknown, url: URL, timeoutText: string): Error {
  const e = err as { name?: string, cause?: { code?: string, message?: string }, message?: string }
  if (err instanceof TimeoutMarker || e.cause instanceof TimeoutMarker) return upstreamTimeout(`upstream ${UpstreamClient.describe(url)} ${timeoutText}`)
  if (e.name === 'AbortError') return err as Error // the client went away; its own signal
  const why = e.cause?.code ?? e.cause?.message ?? e.message ?? String(err)
  return upstreamError(`upstream ${UpstreamClient.describe(url)} is unreachable or broke off (${why})`)
}

async function * idleBody (res: Response, url: URL, idleMs: number, signal?: AbortSignal): AsyncIterable<Uint8Array> {
  if (res.body == null) return
  const reader = res.body.getReader()
  try {
    for (;;) {
      signal?.throwIfAborted()
      let timer: NodeJS.Timeout | undefined
      const idle = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new TimeoutMarker()), idleMs) })
      let piece: Awaited<ReturnType<typeof reader.read>>
      try {
        piece = await Promise.race([reader.read(), idle])
      } catch (err) {
        throw failure(err, url, `sent nothing for ${idleMs} ms in the middle of its response`)
      } finally { clearTimeout(timer) }
      if (piece.done) return
      yield piece.value
    }
  } finally {
    await reader.cancel().catch(() => {})
  }
}
