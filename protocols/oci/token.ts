// Bearer tokens of the Docker token flow: each carries exactly the (repository, actions) the token
// endpoint granted, lives five minutes, and means something only to this node's OCI API.
// https://distribution.github.io/distribution/spec/auth/token/ (claims modelled on its JWT:
// `sub`, `access: [{ type, name, actions }]`, `iat`, `exp`).
//
// Signed with HMAC-SHA256 under a key drawn when the node starts, so a token cannot be forged,
// widened or replayed after a restart (the client then follows the 401 challenge for a new one).
// No other format accepts them: node/auth.ts does not know the prefix, so elsewhere they are bad
// credentials.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'

export const TOKEN_TTL_SECONDS = 300
const PREFIX = 'akmoci.'

export type OciAction = 'pull' | 'push' | 'delete'
const ACTIONS: readonly OciAction[] = ['pull', 'push', 'delete']

export interface AccessEntry { type: 'repository', name: string, actions: OciAction[] }

export interface TokenClaims {
  /** The user the token acts for; null for a token handed to an anonymous client. */
  sub: string | null
  access: AccessEntry[]
  /** Repositories whose images `registry:catalog:*` lets the token list. */
  catalog?: string[]
  iat: number
  exp: number
}

export class TokenSigner {
  readonly #key = randomBytes(32)

  sign (claims: TokenClaims): string {
    const payload = Buffer.from(JSON.stringify(claims)).toString('base64url')
    return `${PREFIX}${payload}.${this.#mac(payload)}`
  }

  /** The claims of a token this signer issued and that has not expired; else undefined. */
  verify (token: string, now = Date.now()): TokenClaims | undefined {
    if (!token.startsWith(PREFIX)) return undefined
    const [payload, mac, extra] = token.slice(PREFIX.length).split('.')
    if (payload == null || mac == null || extra != null) return undefined
    const want = Buffer.from(this.#mac(payload))
    const got = Buffer.from(mac)
    if (got.length !== want.length || !timingSafeEqual(got, want)) return undefined
    let claims: TokenClaims
    try { claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) } catch { return undefined }
    return claims.exp * 1000 > now ? claims : undefined
  }

  #mac (payload: string): string {
    return createHmac('sha256', this.#key).update(payload).digest('base64url')
  }
}

export const isOciToken = (token: string) => token.startsWith(PREFIX)

/** The actions `claims` grants on the image `fullName` ("<repository>/<image>"). */
export function grantedActions (claims: TokenClaims, fullName: string): Set<OciAction> {
  const out = new Set<OciAction>()
  for (const e of claims.access) if (e.type === 'repository' && e.name === fullName) for (const a of e.actions) out.add(a)
  return out
}

export interface RequestedScope { type: string, name: string, actions: string[] }

/** `scope` query values: "repository:docker/team/app:pull,push", several per value separated by
 *  spaces, or repeated parameters. Malformed entries are dropped (they grant nothing). */
export function parseScopes (values: string[]): RequestedScope[] {
  const out: RequestedScope[] = []
  for (const item of values.flatMap(v => v.split(' '))) {
    const first = item.indexOf(':')
    const last = item.lastIndexOf(':')
    if (first <= 0 || last === first) continue
    out.push({ type: item.slice(0, first), name: item.slice(first + 1, last), actions: item.slice(last + 1).split(',').filter(a => a !== '') })
  }
  return out
}

/** Requested actions as OCI actions; '*' asks for all of them. */
export function requestedActions (actions: string[]): OciAction[] {
  if (actions.includes('*')) return [...ACTIONS]
  return ACTIONS.filter(a => actions.includes(a))
}
