// Routes declare their access where they are mounted; anything undeclared fails closed
// (issue 17, item 17). In-process: a real Koa app and router on a loopback port.
import test from 'ava'
import Koa from 'koa'
import Router from '@koa/router'
import type { AddressInfo } from 'node:net'
import { RegistryError } from '../store/errors.ts'
import { STATUS } from '../node/http-errors.ts'
import { declaredRoutes } from '../node/route-access.ts'
import type { FormatHandler, RepoRoutes, SharedRoutes } from '../protocols/format.ts'
import type { RepositoryConfig } from '../config/schema.ts'

const format: FormatHandler = { name: 'probe', routes () {} }
const repo = { name: 'probe', format: 'probe', anonymousRead: false } as unknown as RepositoryConfig
const ok = (ctx: Koa.Context) => { ctx.body = { actor: ctx.state.actor ?? null } }

test('a route mounted without an access declaration refuses to mount', t => {
  const routes: RepoRoutes = declaredRoutes(new Router(), { format, repo })
  const loose = routes as unknown as Record<string, (...args: unknown[]) => void>
  t.throws(() => { loose.get('/x', ok) }, { message: /GET \/x is mounted without an access declaration/ })
  t.throws(() => { loose.put('/x', 'writ', ok) }, { message: /without an access declaration/ })
  t.throws(() => { loose.post('/x', undefined, ok) }, { message: /without an access declaration/ })
  t.notThrows(() => { routes.get('/x', 'read', ok) })
  const shared = declaredRoutes<'public'>(new Router(), { format }) as unknown as Record<string, (...args: unknown[]) => void>
  t.throws(() => { shared.get('/y', 'read', ok) }, { message: /shared routes belong to no repository/ })
  t.notThrows(() => { (shared as unknown as SharedRoutes).get('/y', 'public', ok) })
})

test('a declared route authorizes before its handler; a rule that answers nonsense is 403', async t => {
  const router = new Router()
  const routes: RepoRoutes = declaredRoutes(router, { format, repo })
  let reached = 0
  const counted = (ctx: Koa.Context) => { reached++; ok(ctx) }
  routes.get('/read', 'read', counted)
  routes.get('/open', 'public', counted)
  routes.get('/odd', () => 'everything' as never, counted)
  routes.get('/dyn', (ctx) => ctx.query.w === '1' ? 'write' : 'public', counted)

  const app = new Koa()
  app.use(async (ctx, next) => {
    try { await next() } catch (err) {
      if (!(err instanceof RegistryError)) throw err
      ctx.status = STATUS[err.code]
      ctx.body = { error: err.message }
    }
  })
  app.use(router.routes())
  const server = app.listen(0, '127.0.0.1')
  await new Promise(resolve => server.once('listening', resolve))
  t.teardown(() => { server.close() })
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

  t.is((await fetch(`${url}/read`)).status, 401)
  t.is((await fetch(`${url}/odd`)).status, 403)
  t.is((await fetch(`${url}/dyn?w=1`)).status, 401)
  t.is(reached, 0, 'no handler ran for a refused request')
  const open = await fetch(`${url}/open`)
  t.is(open.status, 200)
  t.deepEqual(await open.json(), { actor: null })
  t.is((await fetch(`${url}/dyn`)).status, 200)
  t.is(reached, 2)
})
