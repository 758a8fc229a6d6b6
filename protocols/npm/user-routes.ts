// Accounts as npm sees them: login (CouchDB user documents), whoami, logout, ping.
// Users are created on the node (`akmesh user add`); `npm login` exchanges a password for a token.
import type { Context } from 'koa'
import { badRequest, notFound, unauthorized } from '../../store/errors.ts'
import { principalOf, type FormatContext, type RepoRoutes } from '../format.ts'
import { isPlainObject, readJsonBody } from './body.ts'

const LOGIN_BODY_LIMIT = 64 * 1024
const COUCH_USER = 'org.couchdb.user:'

async function couchLogin (ctx: Context, fc: FormatContext): Promise<void> {
  const rest = ctx.path.slice(`/${fc.repo.name}/-/user/`.length)
  let docId: string
  try { docId = decodeURIComponent(rest) } catch { throw badRequest('malformed percent-encoding in the user document id') }
  if (!docId.startsWith(COUCH_USER) || docId.includes('/')) throw notFound(`no such resource: ${ctx.path}`)
  const name = docId.slice(COUCH_USER.length)
  const body = await readJsonBody(ctx, LOGIN_BODY_LIMIT)
  if (!isPlainObject(body) || typeof body.name !== 'string' || typeof body.password !== 'string') {
    throw badRequest('expected a user document with "name" and "password"')
  }
  if (body.name !== name) throw badRequest(`user name in the body (${body.name}) does not match the URL (${name})`)
  // Unknown user and wrong password look the same, so the endpoint does not reveal who exists.
  const user = await fc.accounts.checkPassword(name, body.password)
  if (user == null) {
    throw unauthorized(`wrong user name or password for ${name} (users are created on the node with \`akmesh user add\`)`)
  }
  const { token } = fc.accounts.createToken({ owner: name, description: `npm login on ${fc.repo.name}`, scopes: user.scopes, repos: user.repos })
  fc.log.info({ user: name }, 'npm login')
  ctx.status = 201
  ctx.body = { ok: true, id: docId, rev: '1-0', token }
}

export function userRoutes (router: RepoRoutes, fc: FormatContext): void {
  router.get('/-/ping', 'public', (ctx) => { ctx.body = {} })

  // 'read' answers bad credentials with 401 first; an anonymous reader is then "not logged in".
  router.get('/-/whoami', 'read', (ctx) => {
    const p = principalOf(ctx)
    if (p == null) throw unauthorized('not logged in: npm login, or an _authToken for this registry in .npmrc')
    ctx.body = { username: p.name }
  })

  // npm tries browser login first and falls back to the CouchDB flow on any 4xx
  // (npm-profile webAuth → WebLoginNotSupported).
  router.post('/-/v1/login', 'public', () => { throw notFound('web login is not supported by this registry; npm falls back to username and password') })

  // npm login: public, since it is how a client gets credentials; couchLogin checks the password.
  router.put('/-/user/*rest', 'public', async (ctx) => { await couchLogin(ctx, fc) })

  // npm logout: DELETE /-/user/token/<token>. Only the caller's own token can be revoked.
  router.delete('/-/user/token/:token', 'read', (ctx) => {
    const caller = principalOf(ctx)
    const target = fc.accounts.resolveToken(ctx.params.token)
    if (caller == null || target?.tokenId == null || target.tokenId !== caller.tokenId) throw notFound('token not found')
    fc.accounts.revokeToken(target.tokenId)
    ctx.body = { ok: true }
  })
}
