// The Docker token flow that OCI clients follow: a 401 names a token endpoint (realm) and the scope
// to ask for; the client fetches a bearer token there with its credentials (or none) and retries.
// https://distribution.github.io/distribution/spec/auth/token/
//
// A token grants exactly what was asked and the user holds, per image (token.ts). Requests with
// the user's own credentials (Basic, an akm_ token) are authorized by the node as for any format.
import type { Context } from 'koa'
import type { Accounts, Principal, Scope } from '../../store/accounts.ts'
import type { FormatContext } from '../format.ts'
import { OciError } from './errors.ts'
import { parseRoute, checkName, type Route } from './names.ts'
import {
  grantedActions, isOciToken, parseScopes, requestedActions, TokenSigner, TOKEN_TTL_SECONDS,
  type AccessEntry, type OciAction, type TokenClaims
} from './token.ts'

export const SERVICE = 'akmesh'
export const API_VERSION = { 'Docker-Distribution-API-Version': 'registry/2.0' }

// One signing key per node (keyed by its Accounts, so two nodes in one test process differ).
const signers = new WeakMap<Accounts, TokenSigner>()
function signerOf (accounts: Accounts): TokenSigner {
  let s = signers.get(accounts)
  if (s == null) { s = new TokenSigner(); signers.set(accounts, s) }
  return s
}

/** The registry's root URL (without /v2), from a repository's base URL `<root>/v2/<repo>`. */
export function registryRoot (ctx: Context, fc: FormatContext): string {
  return fc.baseUrl(ctx).slice(0, -`/v2/${fc.repo.name}`.length)
}

export function challenge (root: string, scope?: string, error?: string): Record<string, string> {
  const s = scope == null ? '' : `,scope="${scope}"`
  const e = error == null ? '' : `,error="${error}"`
  return { ...API_VERSION, 'WWW-Authenticate': `Bearer realm="${root}/v2/token",service="${SERVICE}"${s}${e}` }
}

/** The endpoint a request addresses under its repository, or undefined (no endpoint there). */
export function routeOf (ctx: Context, fc: FormatContext): Route | undefined {
  const rest = ctx.path.slice(`/v2/${fc.repo.name}`.length)
  return rest === '' || rest === '/' ? undefined : parseRoute(fc.repo.name, rest)
}

/** The token action a request needs. Uploads are pushes whatever their method. */
export function neededAction (route: Route, method: string): OciAction {
  if (route.kind === 'uploads' || route.kind === 'upload') return 'push'
  if (method === 'GET' || method === 'HEAD') return 'pull'
  return method === 'DELETE' ? 'delete' : 'push'
}

export const scopeOf = (action: OciAction): Scope => action === 'pull' ? 'read' : 'write'

const tokenClaims = (ctx: Context) => (ctx.state as { ociToken?: TokenClaims }).ociToken

/** Verifies a bearer token from the token endpoint, if the request carries one. An invalid or
 *  expired one stays "bad credentials" (node/auth.ts), which answers 401 and a new challenge. */
function verifyToken (ctx: Context, accounts: Accounts): TokenClaims | undefined {
  const m = /^bearer\s+(\S+)$/i.exec(ctx.get('authorization'))
  if (m == null || !isOciToken(m[1])) return undefined
  const claims = signerOf(accounts).verify(m[1])
  if (claims == null) return undefined
  ctx.state.badCredentials = false
  ctx.state.principal = undefined
  ctx.state.ociToken = claims
  return claims
}

/** FormatHandler.authenticate: on an image's endpoint a token stands for its user with just the
 *  action it grants for that image and this request; without that grant, for no one (so an
 *  anonymous read still works where allowed, and anything else is a 401 asking for that scope). */
export function authenticateToken (ctx: Context, fc: FormatContext): void {
  const claims = verifyToken(ctx, fc.accounts)
  if (claims == null || claims.sub == null) return
  let route: Route | undefined
  try { route = routeOf(ctx, fc) } catch { return }
  if (route == null) return
  const action = neededAction(route, ctx.method)
  if (!grantedActions(claims, `${fc.repo.name}/${route.name}`).has(action)) return
  // A virtual repository's members, for those the token was granted this action on too.
  const members = (fc.virtual?.members ?? []).filter(m => grantedActions(claims, `${m.name}/${(route as Route).name}`).has(action)).map(m => m.name)
  ctx.state.principal = { name: claims.sub, scopes: [scopeOf(action)], repos: [fc.repo.name, ...members] } satisfies Principal
}

/** On the shared routes: a valid token (anonymous ones too) is accepted; on the catalog it stands
 *  for its user reading the repositories it was granted. True if a token was presented. */
export function authenticateSharedToken (ctx: Context, fcs: FormatContext[]): boolean {
  const claims = verifyToken(ctx, fcs[0].accounts)
  if (claims == null) return false
  if (claims.sub != null && claims.catalog != null) {
    ctx.state.principal = { name: claims.sub, scopes: ['read'], repos: claims.catalog } satisfies Principal
  }
  return true
}

/** FormatHandler.challenge: the scope to ask for is this image's; a token that was presented and
 *  fell short gets `insufficient_scope` so the client asks for a new one. */
export function tokenChallenge (ctx: Context, fc: FormatContext): Record<string, string> {
  let route: Route | undefined
  try { route = routeOf(ctx, fc) } catch {}
  const action = route == null ? undefined : neededAction(route, ctx.method)
  const actions = action === 'push' ? 'pull,push' : action
  const wanted = route == null ? undefined : `repository:${fc.repo.name}/${route.name}:${actions}`
  const claims = tokenClaims(ctx)
  return challenge(registryRoot(ctx, fc), wanted, claims?.sub != null ? 'insufficient_scope' : undefined)
}

/** True if the request may read image `name` of `fc` (a mount's source); never throws. A token
 *  must have been granted pull on it, unless the repository is anonymously readable. */
export function canRead (ctx: Context, fc: FormatContext, name?: string): boolean {
  const claims = tokenClaims(ctx)
  if (claims == null || name == null) return fc.allows(ctx, 'read')
  return fc.repo.anonymousRead || grantedActions(claims, `${fc.repo.name}/${name}`).has('pull')
}

/** GET /v2/token?service=&scope=: Basic user:password, Basic user:akm_token, Bearer akm_token,
 *  or nothing (anonymous). Grants each requested action the caller holds, and nothing else. */
export function tokenResponse (ctx: Context, fcs: FormatContext[], root: string, now = Date.now()): Record<string, unknown> {
  const principal = ctx.state.principal as Principal | undefined
  if (ctx.state.badCredentials === true || (principal == null && ctx.get('authorization') !== '')) {
    throw new OciError('UNAUTHORIZED', 'invalid username, password or token', { headers: challenge(root) })
  }
  const byName = new Map(fcs.map(fc => [fc.repo.name, fc]))
  const access: AccessEntry[] = []
  let catalog: string[] | undefined
  const scopes = ([] as string[]).concat(ctx.query.scope ?? [])
  for (const s of parseScopes(scopes)) {
    if (s.type === 'registry' && s.name === 'catalog' && principal != null) {
      catalog = fcs.filter(fc => fc.allows(ctx, 'read')).map(fc => fc.repo.name)
      continue
    }
    if (s.type !== 'repository') continue
    const slash = s.name.indexOf('/')
    const fc = slash > 0 ? byName.get(s.name.slice(0, slash)) : undefined
    if (fc == null) continue
    try { checkName(fc.repo.name, s.name.slice(slash + 1)) } catch { continue }
    const actions = requestedActions(s.actions).filter(a => fc.allows(ctx, scopeOf(a)))
    if (actions.length > 0) access.push({ type: 'repository', name: s.name, actions })
    if (fc.virtual != null && actions.length > 0) access.push(...memberGrants(ctx, fc, s.name.slice(slash + 1), actions))
  }
  const iat = Math.floor(now / 1000)
  const claims: TokenClaims = { sub: principal?.name ?? null, access, iat, exp: iat + TOKEN_TTL_SECONDS }
  if (catalog != null) claims.catalog = catalog
  const token = signerOf(fcs[0].accounts).sign(claims)
  return { token, access_token: token, expires_in: TOKEN_TTL_SECONDS, issued_at: new Date(iat * 1000).toISOString() }
}

/** What a token for an image of a virtual repository also grants on its members, so the request
 *  can be served from them: pull where the caller may read the member, push on defaultLocal where
 *  the caller may write (pushes land there). */
function memberGrants (ctx: Context, fc: FormatContext, image: string, actions: OciAction[]): AccessEntry[] {
  const out: AccessEntry[] = []
  for (const m of fc.virtual?.members ?? []) {
    const granted = actions.filter(a => a === 'pull'
      ? m.fc.allows(ctx, 'read')
      : a === 'push' && m.name === fc.virtual?.defaultLocal && m.fc.allows(ctx, 'write'))
    if (granted.length > 0) out.push({ type: 'repository', name: `${m.name}/${image}`, actions: granted })
  }
  return out
}
