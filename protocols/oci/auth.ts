// The Docker token flow that OCI clients follow: a 401 names a token endpoint (realm), the client
// fetches a bearer token there with its credentials (or none) and retries with it.
// https://distribution.github.io/distribution/spec/auth/token/
//
// Tokens handed out are ordinary akm_ tokens, so the node's one authentication path checks them;
// a client that logs in with an akm_ token gets that token back.
import type { Context } from 'koa'
import type { Accounts, Principal, Scope } from '../../store/accounts.ts'
import { RegistryError } from '../../store/errors.ts'
import type { FormatContext } from '../format.ts'
import { OciError } from './errors.ts'

export const SERVICE = 'akmesh'

/** Anonymous clients need some token to follow the flow; this one grants nothing beyond what
 *  a request without credentials may do. */
const ANONYMOUS_TOKEN = 'akmesh-anonymous'

/** The registry's root URL (without /v2), from a repository's base URL `<root>/v2/<repo>`. */
export function registryRoot (ctx: Context, fc: FormatContext): string {
  return fc.baseUrl(ctx).slice(0, -`/v2/${fc.repo.name}`.length)
}

export function challenge (root: string, scope?: string): Record<string, string> {
  const s = scope == null ? '' : `,scope="${scope}"`
  return { 'WWW-Authenticate': `Bearer realm="${root}/v2/token",service="${SERVICE}"${s}` }
}

const actions = (scope: Scope) => scope === 'read' ? 'pull' : scope === 'write' ? 'pull,push' : '*'

/** The anonymous token stands for "no credentials" (node/auth.ts counted it as a bad one). */
export function acceptAnonymousToken (ctx: Context): boolean {
  if (!/^bearer\s+akmesh-anonymous$/i.test(ctx.get('authorization'))) return false
  ctx.state.badCredentials = false
  return true
}

/** `fc.authorize` with OCI's answers: 401 carries the token challenge for this image's scope,
 *  403 is DENIED. */
export function ociAuthorize (ctx: Context, fc: FormatContext, scope: Scope, name: string): string {
  acceptAnonymousToken(ctx)
  try {
    return fc.authorize(ctx, scope)
  } catch (err) {
    if (!(err instanceof RegistryError)) throw err
    if (err.code === 'Unauthorized') {
      throw new OciError('UNAUTHORIZED', err.message, {
        headers: challenge(registryRoot(ctx, fc), `repository:${fc.repo.name}/${name}:${actions(scope)}`)
      })
    }
    if (err.code === 'Forbidden') throw new OciError('DENIED', err.message)
    throw err
  }
}

/** True if the request may read the repository; never throws. */
export function canRead (ctx: Context, fc: FormatContext): boolean {
  acceptAnonymousToken(ctx)
  try { fc.authorize(ctx, 'read'); return true } catch { return false }
}

const TOKEN_TTL_MS = 60 * 60_000
const MARK = 'issued by /v2/token, expires '

export interface IssuedToken { token: string, expiresIn: number, issuedAt: string }

/** Issues akm_ tokens to users who present a password at the token endpoint. A user's token is
 *  reused while more than half its life remains, so a busy CI does not mint one per pull; expired
 *  ones are revoked (their expiry is written in the description, so this survives restarts). */
export class TokenIssuer {
  readonly #accounts: Accounts
  readonly #current = new Map<string, { token: string, expiresAt: number, issuedAt: number }>()
  #lastSweep = 0

  constructor (accounts: Accounts) { this.#accounts = accounts }

  issue (p: Principal, now = Date.now()): IssuedToken {
    this.#sweep(now)
    let t = this.#current.get(p.name)
    if (t == null || t.expiresAt - now < TOKEN_TTL_MS / 2) {
      const expiresAt = now + TOKEN_TTL_MS
      const { token } = this.#accounts.createToken({
        owner: p.name, description: MARK + new Date(expiresAt).toISOString(), scopes: p.scopes, repos: p.repos
      })
      t = { token, expiresAt, issuedAt: now }
      this.#current.set(p.name, t)
    }
    return { token: t.token, expiresIn: Math.floor((t.expiresAt - now) / 1000), issuedAt: new Date(t.issuedAt).toISOString() }
  }

  #sweep (now: number): void {
    if (now - this.#lastSweep < 60_000) return
    this.#lastSweep = now
    for (const t of this.#accounts.listTokens()) {
      if (!t.description.startsWith(MARK)) continue
      const expiresAt = Date.parse(t.description.slice(MARK.length))
      if (expiresAt < now) { try { this.#accounts.revokeToken(t.id) } catch {} }
    }
  }
}

/** GET /v2/token?service=&scope=: Basic user:password, Basic user:akm_token, Bearer akm_token,
 *  or nothing (the anonymous token). */
export function tokenResponse (ctx: Context, issuer: TokenIssuer, root: string): Record<string, unknown> {
  if (acceptAnonymousToken(ctx) || ctx.get('authorization') === '') return body({ token: ANONYMOUS_TOKEN, expiresIn: 3600, issuedAt: new Date().toISOString() })
  const principal = ctx.state.principal as Principal | undefined
  if (ctx.state.badCredentials === true || principal == null) {
    throw new OciError('UNAUTHORIZED', 'invalid username, password or token', { headers: challenge(root) })
  }
  if (principal.tokenId != null) {
    return body({ token: presentedToken(ctx.get('authorization')), expiresIn: 3600, issuedAt: new Date().toISOString() })
  }
  return body(issuer.issue(principal))
}

function presentedToken (header: string): string {
  const [kind, value = ''] = header.split(/\s+/, 2)
  if (/^bearer$/i.test(kind)) return value
  const decoded = Buffer.from(value, 'base64').toString('utf8')
  return decoded.slice(decoded.indexOf(':') + 1)
}

const body = (t: IssuedToken) => ({ token: t.token, access_token: t.token, expires_in: t.expiresIn, issued_at: t.issuedAt })
