// The token flow of an upstream that answers 401 with `WWW-Authenticate: Bearer realm=...,
// service=..., scope=...` (OCI registries; any upstream using the same scheme): ask the realm
// for a token, with the configured username and password if any, and keep it until it expires.
// https://distribution.github.io/distribution/spec/auth/token/
import { upstreamError, upstreamTimeout } from '../../../store/errors.ts'
import { SingleFlight } from './single-flight.ts'
import { TtlCache } from './ttl-cache.ts'

export interface BearerChallenge { realm: URL, service?: string, scope?: string }

/** The spec's default when a token endpoint names no lifetime. */
const DEFAULT_EXPIRES_SECONDS = 60
/** Asked for again this long before it expires, so a request never carries a token that lapses
 *  on the way. */
const EXPIRY_MARGIN_MS = 5_000

/** The Bearer challenge of a 401, or undefined (another scheme, or no usable realm). */
export function parseBearerChallenge (header: string | null): BearerChallenge | undefined {
  const m = header == null ? null : /^\s*bearer\s+(.*)$/i.exec(header)
  if (m == null) return undefined
  const params: Record<string, string> = {}
  for (const p of m[1].matchAll(/([a-zA-Z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))/g)) {
    params[p[1].toLowerCase()] = p[2] != null ? p[2].replace(/\\(.)/g, '$1') : p[3]
  }
  let realm: URL
  try { realm = new URL(params.realm ?? '') } catch { return undefined }
  if (realm.protocol !== 'http:' && realm.protocol !== 'https:') return undefined
  return { realm, service: params.service, scope: params.scope }
}

export class BearerTokens {
  readonly #basic?: string
  readonly #timeoutMs: number
  readonly #tokens = new TtlCache<{ token: string, expiresAt: number }>(1_000)
  readonly #flights = new SingleFlight<string>()

  /** `basic`: the configured username and password, sent to the realm only. */
  constructor (opts: { basic?: string, timeoutMs: number }) {
    this.#basic = opts.basic
    this.#timeoutMs = opts.timeoutMs
  }

  /** A token still valid for `key` (a scope the caller named, or a challenge's scope). */
  cached (key: string): string | undefined {
    const t = this.#tokens.get(key)?.value
    return t != null && t.expiresAt > Date.now() ? t.token : undefined
  }

  /** Fetches a token for a challenge (one request however many callers wait for it). */
  async fetch (challenge: BearerChallenge, key: string, signal?: AbortSignal): Promise<string> {
    const flight = `${key}\n${challenge.realm.href}\n${challenge.service ?? ''}\n${challenge.scope ?? ''}`
    return await this.#flights.run(flight, async () => {
      const { token, expiresAt } = await this.#request(challenge, signal)
      this.#tokens.set(key, { token, expiresAt })
      return token
    })
  }

  async #request (c: BearerChallenge, signal?: AbortSignal): Promise<{ token: string, expiresAt: number }> {
    const url = new URL(c.realm)
    if (c.service != null) url.searchParams.set('service', c.service)
    for (const s of (c.scope ?? '').split(' ').filter(s => s !== '')) url.searchParams.append('scope', s)
    const where = `${url.origin}${url.pathname}`
    const timeout = AbortSignal.timeout(this.#timeoutMs)
    let res: Response
    try {
      res = await fetch(url, {
        headers: this.#basic != null ? { authorization: this.#basic } : {},
        redirect: 'error',
        signal: signal == null ? timeout : AbortSignal.any([timeout, signal])
      })
    } catch (err) {
      if (timeout.aborted) throw upstreamTimeout(`upstream token endpoint ${where} did not answer within ${this.#timeoutMs} ms`)
      throw upstreamError(`upstream token endpoint ${where} is unreachable (${(err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message})`)
    }
    if (res.status !== 200) {
      await res.body?.cancel().catch(() => {})
      const why = res.status === 401 || res.status === 403 ? ' (check the repository\'s auth: username and password)' : ''
      throw upstreamError(`upstream token endpoint ${where} answered ${res.status}${why}`)
    }
    let doc: { token?: unknown, access_token?: unknown, expires_in?: unknown }
    try { doc = await res.json() as typeof doc } catch { throw upstreamError(`upstream token endpoint ${where} sent no JSON`) }
    const token = typeof doc.token === 'string' && doc.token !== '' ? doc.token : doc.access_token
    if (typeof token !== 'string' || token === '') throw upstreamError(`upstream token endpoint ${where} sent no token`)
    const seconds = typeof doc.expires_in === 'number' && doc.expires_in > 0 ? doc.expires_in : DEFAULT_EXPIRES_SECONDS
    return { token, expiresAt: Date.now() + Math.max(seconds * 1000 - EXPIRY_MARGIN_MS, 1_000) }
  }
}
