// Who is asking: resolves Authorization headers into a principal and decides per repository.
import type { Context, Next } from 'koa'
import type { RepositoryConfig } from '../config/schema.ts'
import { grants, type Accounts, type Principal, type Scope } from '../store/accounts.ts'
import { forbidden, unauthorized } from '../store/errors.ts'

const CHALLENGE = { 'WWW-Authenticate': 'Bearer realm="akmesh", Basic realm="akmesh"' }

export interface AuthState {
  principal?: Principal
  /** Credentials were sent but are wrong: never fall back to anonymous. */
  badCredentials?: boolean
}

/** Accepts `Bearer <token>`, and Basic with either a token or a user's password as the password. */
export function authenticate (accounts: Accounts) {
  return async (ctx: Context, next: Next) => {
    const header = ctx.get('authorization')
    const state = ctx.state as AuthState
    if (header !== '') {
      const [kind, value = ''] = header.split(/\s+/, 2)
      let principal: Principal | undefined
      if (/^bearer$/i.test(kind)) {
        principal = accounts.resolveToken(value)
      } else if (/^basic$/i.test(kind)) {
        const decoded = Buffer.from(value, 'base64').toString('utf8')
        const colon = decoded.indexOf(':')
        const user = decoded.slice(0, colon)
        const secret = decoded.slice(colon + 1)
        if (colon > 0) {
          principal = secret.startsWith('akm_')
            ? accounts.resolveToken(secret)
            : await accounts.checkPassword(user, secret)
        }
      }
      if (principal == null) state.badCredentials = true
      else state.principal = principal
    }
    await next()
  }
}

export function authorize (ctx: Context, repo: RepositoryConfig, scope: Scope): string {
  const state = ctx.state as AuthState
  if (state.badCredentials === true) throw unauthorized('invalid, expired or revoked credentials', CHALLENGE)
  const p = state.principal
  if (p == null) {
    if (scope === 'read' && repo.anonymousRead) return 'anonymous'
    throw unauthorized(`authentication required to ${scope} repository ${repo.name}`, CHALLENGE)
  }
  if (!grants(p, scope, repo.name)) throw forbidden(`${p.name} has no ${scope} access to repository ${repo.name}`)
  return p.name
}

/** `authorize` as a question, for checks beyond a route's own declaration. */
export function allows (ctx: Context, repo: RepositoryConfig, scope: Scope): boolean {
  try { authorize(ctx, repo, scope); return true } catch { return false }
}
