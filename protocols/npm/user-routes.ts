// Accounts as npm sees them: login (CouchDB user documents), whoami, logout, ping.
// Users are created on the node (`akmesh user add`); `npm login` exchanges a password for a token.
import type Router from '@koa/router'
import type { Context } from 'koa'
import type { Principal } from '../../store/accounts.ts'
import { badRequest, notFound, unauthorized } from '../../store/errors.ts'
import type { FormatContext } from '../format.ts'
import { isPlainObject, readJsonBody } from './body.ts'

const LOGIN_BODY_LIMIT = 64 * 1024
const COUCH_USER = 'org.couchdb.user:'

/** The principal the auth middleware resolved, if any (it throws first on bad credentials). */
function principalOf (ctx: Context, fc: FormatContext): Principal | undefined {
  fc.authorize(ctx, 'read')
  return (ctx.state as { principal?: Principal }).principal
}

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

export function userRoutes (router: Router, fc: FormatContext): void {
  router.get('/-/ping', (ctx) => { ctx.body = {} })

  router.get('/-/whoami', (ctx) => {
    const p = principalOf(ctx, fc)
    if (p == null) throw unauthorized('not logged in: npm login, or an _authToken for this registry in .npmrc')
    ctx.body = { username: p.name }
  })

  // npm tries browser login first and falls back to the CouchDB flow on any 4xx
  // (npm-profile webAuth → WebLoginNotSupported).
  router.post('/-/v1/login', () => { throw notFound('web login is not supported by this registry; npm falls back to username and password') })

  router.put('/-/user/*rest', async (ctx) => { await couchLogin(ctx, fc) })

  // npm logout: DELETE /-/user/token/<token>. Only the caller's own token can be revoked.
  router.delete('/-/user/token/:token', (ctx) => {
    const caller = principalOf(ctx, fc)
    const target = fc.accounts.resolveToken(ctx.params.token)
    if (caller == null || target?.tokenId == null || target.tokenId !== caller.tokenId) throw notFound('token not found')
    fc.accounts.revokeToken(target.tokenId)
    ctx.body = { ok: true }
  })
}
