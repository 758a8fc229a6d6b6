// The remote core's metadata cache (what npm packuments, PyPI simple pages and OCI tag lists will
// use), in process against a real nginx: a TTL, conditional refresh, stale-if-error with the
// Warning value, refusal of a body that is not the metadata expected, negative caching, offline.
import test from 'ava'
import { join } from 'node:path'
import { pino } from 'pino'
import { remoteSettings } from '../config/remote-schema.ts'
import { RemoteRepository } from '../protocols/shared/remote/remote-repository.ts'
import { FileBlobStore } from '../store/blobs.ts'
import { openDatabase } from '../store/db.ts'
import { makeTempDir } from './helpers/node.ts'
import { startNginx, type Nginx } from './helpers/nginx.ts'

async function remote (t: Parameters<typeof makeTempDir>[0], nginx: Nginx, extra: Record<string, unknown> = {}): Promise<{ repo: RemoteRepository, logged: string[] }> {
  const dir = await makeTempDir(t)
  const db = openDatabase(join(dir, 'index.db'))
  t.teardown(() => { db.close() })
  const store = await FileBlobStore.open(dir, db)
  const logged: string[] = []
  const log = pino({ level: 'debug' }, { write: (line: string) => { logged.push(line) } })
  const settings = remoteSettings({ name: 'meta', upstream: nginx.url, ...extra })
  return { repo: new RemoteRepository({ name: 'meta', settings, store, limits: { uploadBytes: 1 << 20, metadataBytes: 1 << 16 }, log }), logged }
}

const refuseNonJson = (contentType: string) => contentType.startsWith('application/json') ? undefined : `expected JSON, got ${contentType}`

test('metadata is cached for its TTL, refreshed conditionally, and served stale when the upstream is down', async t => {
  const nginx = await startNginx(t)
  await nginx.put('pkg.json', '{"versions":["1.0.0"]}')
  const { repo, logged } = await remote(t, nginx, { metadataTtl: 0 })
  const url = repo.client.urlOf('pkg.json')
  const first = await repo.metadata('pkg', url, { refuse: refuseNonJson })
  t.is(first.doc.body.toString(), '{"versions":["1.0.0"]}')
  t.false(first.stale)
  const again = await repo.metadata('pkg', url, { refuse: refuseNonJson })
  t.false(again.stale)
  t.true((await nginx.log()).some(l => l === 'GET /pkg.json 304 no'), 'past its TTL it was asked for again, conditionally')

  await nginx.stop()
  const stale = await repo.metadata('pkg', url, { refuse: refuseNonJson })
  t.true(stale.stale)
  t.is(stale.doc.body.toString(), '{"versions":["1.0.0"]}')
  t.true(logged.some(l => l.includes('upstream failed; serving stale metadata')))
})

test('within its TTL metadata is served without asking the upstream', async t => {
  const nginx = await startNginx(t)
  await nginx.put('fresh.json', '{}')
  const { repo } = await remote(t, nginx)
  const url = repo.client.urlOf('fresh.json')
  await repo.metadata('fresh', url, { refuse: refuseNonJson })
  await repo.metadata('fresh', url, { refuse: refuseNonJson })
  t.is(await nginx.count('GET', '/fresh.json'), 1)
})

test('an HTML page where JSON belongs is refused and not cached', async t => {
  const nginx = await startNginx(t)
  await nginx.put('error.html', '<html>maintenance</html>')
  const { repo } = await remote(t, nginx)
  const url = repo.client.urlOf('error.html')
  const err = await t.throwsAsync(repo.metadata('page', url, { refuse: refuseNonJson }))
  t.regex(err?.message ?? '', /upstream http:\/\/127\.0\.0\.1:\d+\/error\.html: expected JSON, got text\/html; refused, nothing cached/)
  await t.throwsAsync(repo.metadata('page', url, { refuse: refuseNonJson }))
  t.is(await nginx.count('GET', '/error.html'), 2, 'the refused body was not cached')
})

test('no stale copy and the upstream down: the error is the upstream\'s (502); a 404 is remembered; offline serves only the cache', async t => {
  const nginx = await startNginx(t)
  const { repo } = await remote(t, nginx)
  await t.throwsAsync(repo.metadata('missing', repo.client.urlOf('missing.json')), { message: /not found upstream/ })
  await t.throwsAsync(repo.metadata('missing', repo.client.urlOf('missing.json')), { message: /remembered for 60s/ })
  t.is(await nginx.count('GET', '/missing.json'), 1)
  await nginx.stop()
  const down = await t.throwsAsync(repo.metadata('other', repo.client.urlOf('other.json')))
  t.is((down as unknown as { code: string }).code, 'UpstreamError')

  const { repo: offline } = await remote(t, nginx, { offline: true })
  await t.throwsAsync(offline.metadata('any', offline.client.urlOf('any.json')), { message: /is not cached in meta, and the repository is offline/ })
})
