// The compliance suite: every check, once, for every format fixture (one ava test per format per
// check, so a failure names both). Requests are spec-shaped by the fixtures, not sent by real
// clients; test/<format>*.test.ts keep the real-client tests.
import type { TestFn } from 'ava'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { createHash } from 'node:crypto'
import { buildManifest, openEnvelope, signManifest } from '../../mesh/manifest.ts'
import type { FormatFixture, Published } from './fixture.ts'
import { chunked, LIMITS, pieces, portOf, rawExchange, requestHead, startApp, type App, type Reply } from './harness.ts'
import { TRAVERSAL_PROBES } from './probes.ts'

interface Context { app: App }

export const publicRepo = (f: FormatFixture) => `c-${f.format}`
export const privateRepo = (f: FormatFixture) => `c-${f.format}-private`

const IGNORED_HEADERS = new Set(['date', 'connection', 'keep-alive', 'transfer-encoding'])
const comparable = (r: Reply) => Object.fromEntries(Object.entries(r.headers).filter(([k]) => !IGNORED_HEADERS.has(k)))
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')
let ids = 0
const nextId = () => `x${(++ids).toString(36)}${Date.now().toString(36).slice(-4)}`

export function complianceSuite (test: TestFn<Context>, fixtures: FormatFixture[]): void {
  test.before(async (t) => {
    t.context.app = await startApp(fixtures.flatMap(f => [
      { name: publicRepo(f), format: f.format, anonymousRead: true },
      { name: privateRepo(f), format: f.format, anonymousRead: false }
    ]))
  })
  test.after.always(async (t) => { await t.context.app?.close() })
  test.afterEach.always((t) => {
    const errors = t.context.app?.drainAppErrors() ?? []
    if (errors.length > 0) t.log(`Koa 'error' events (streams cut by the probes): ${[...new Set(errors)].join('; ')} (${errors.length})`)
  })

  for (const f of fixtures) {
    const repo = publicRepo(f)
    const auth = (token: string) => (f.credentials ?? ((tk: string) => `Bearer ${tk}`))(token)
    let sample: Promise<Published> | undefined
    const published = async (app: App) => await (sample ??= f.publish(app, repo, 'sample'))
    const title = (check: string) => `${f.format}: ${check} (spec-shaped requests)`

    /** After abuse: the app answers a normal download, and nothing was published in `repo`. */
    const stillServes = async (t: import('ava').ExecutionContext<Context>, app: App, before: number, what: string) => {
      await app.idle()
      const p = await published(app)
      const r = await app.send('GET', p.downloads[0].path)
      t.is(r.status, 200, `after ${what}: ${r.text}`)
      t.true(r.body.equals(p.downloads[0].bytes), `after ${what}: download bytes`)
      const logged = app.changesAfter(before).filter(c => c.repo === repo)
      t.deepEqual(logged.map(c => `${c.kind} ${c.name}@${c.version}`), [], `after ${what}: nothing published`)
    }

    test.serial(title('writes are refused without credentials, with bad ones, a read-only token or another repository\'s token'), async (t) => {
      const { app } = t.context
      const p = await published(app)
      const routes = await f.writeRoutes(app, repo, p, nextId())
      t.true(routes.length > 0)
      const before = app.lastSeq()
      const cases: Array<[string, string | undefined, number]> = [
        ['anonymous', undefined, 401],
        ['unknown token', auth(app.tokens.bogus), 401],
        ['read-only token', auth(app.tokens.reader), 403],
        ['token for another repository', auth(app.tokens.otherRepo), 403]
      ]
      for (const route of routes) {
        for (const [who, header, status] of cases) {
          const r = await app.send(route.method, route.path, { headers: route.headers, body: route.body, auth: header })
          t.is(r.status, status, `${route.method} ${route.path} as ${who}: ${r.status} ${r.text.slice(0, 300)}`)
          if (route.method !== 'HEAD') t.is(f.errorShape(r), undefined, `${route.method} ${route.path} as ${who}: error body`)
        }
      }
      await stillServes(t, app, before, 'refused writes')
      for (const d of p.downloads) t.is((await app.send('GET', d.path)).status, 200, `${d.path} survives refused writes`)
    })

    test.serial(title('a private repository refuses anonymous reads and serves a read token'), async (t) => {
      const { app } = t.context
      const p = await f.publish(app, privateRepo(f), nextId())
      const cases: Array<[string, string | undefined, number]> = [
        ['anonymous', undefined, 401],
        ['unknown token', auth(app.tokens.bogus), 401],
        ['token for another repository', auth(app.tokens.otherRepo), 403],
        ['read token', auth(app.tokens.reader), 200]
      ]
      for (const path of [...p.downloads.map(d => d.path), ...p.documents]) {
        for (const method of ['GET', 'HEAD']) {
          for (const [who, header, status] of cases) {
            const r = await app.send(method, path, { auth: header })
            t.is(r.status, status, `${method} ${path} as ${who}: ${r.text.slice(0, 300)}`)
            if (status !== 200) {
              t.false(p.downloads.some(d => d.bytes.length > 16 && r.body.includes(d.bytes)), `${method} ${path} as ${who}: no content`)
              if (method === 'GET') t.is(f.errorShape(r), undefined, `${method} ${path} as ${who}: error body`)
            }
          }
        }
      }
    })

    test.serial(title('traversal and encoding probes get 4xx, never 500, never a file outside the repository'), async (t) => {
      const { app } = t.context
      const p = await published(app)
      const before = app.lastSeq()
      const targets = f.traversalTargets(repo, p)
      for (const target of targets) {
        for (const probe of TRAVERSAL_PROBES) {
          const path = target.path.replace('{}', probe)
          const r = await app.send(target.method, path, { headers: target.headers, body: target.body, auth: auth(app.tokens.admin) })
          const what = `${target.method} ${path.length > 200 ? path.slice(0, 200) + '…' : path}`
          t.true(r.status >= 400 && r.status < 500, `${what}: ${r.status} ${r.text.slice(0, 300)}`)
          for (const s of app.sentinels) t.false(r.text.includes(s), `${what} served a file outside the repository`)
          t.false(r.text.includes('SQLite format 3'), `${what} served the index database`)
          if (r.status >= 400 && r.status < 500 && target.method !== 'HEAD') t.is(f.errorShape(r), undefined, `${what}: error body`)
        }
      }
      await stillServes(t, app, before, 'traversal probes')
    })

    test.serial(title('HEAD matches GET: status, headers, no body'), async (t) => {
      const { app } = t.context
      const p = await published(app)
      for (const path of [...p.downloads.map(d => d.path), ...p.documents]) {
        for (const headers of [{}, { 'Accept-Encoding': 'gzip' }] as Array<Record<string, string>>) {
          const get = await app.send('GET', path, { headers })
          const head = await app.send('HEAD', path, { headers })
          const what = `${path} ${JSON.stringify(headers)}`
          t.is(get.status, 200, `GET ${what}: ${get.text.slice(0, 300)}`)
          t.is(head.status, get.status, `HEAD ${what}`)
          t.deepEqual(comparable(head), comparable(get), `HEAD ${what}: headers`)
          t.is(head.body.length, 0, `HEAD ${what}: no body`)
        }
      }
    })

    test.serial(title('Range: a single range gives 206 + Content-Range, an unsatisfiable one 416'), async (t) => {
      const { app } = t.context
      const p = await published(app)
      for (const d of p.downloads) {
        const size = d.bytes.length
        t.true(size > 8, `${d.path}: a sample long enough to take a range from`)
        const r = await app.send('GET', d.path, { headers: { Range: 'bytes=1-4' } })
        t.is(r.status, 206, `${d.path} bytes=1-4: ${r.text.slice(0, 300)}`)
        t.is(r.headers['content-range'], `bytes 1-4/${size}`, d.path)
        t.is(r.headers['content-length'], '4', d.path)
        t.true(r.body.equals(d.bytes.subarray(1, 5)), `${d.path}: range bytes`)
        const suffix = await app.send('GET', d.path, { headers: { Range: 'bytes=-3' } })
        t.is(suffix.status, 206, `${d.path} bytes=-3`)
        t.true(suffix.body.equals(d.bytes.subarray(size - 3)), `${d.path}: suffix range bytes`)
        const head = await app.send('HEAD', d.path, { headers: { Range: 'bytes=1-4' } })
        t.is(head.status, 206, `HEAD ${d.path} bytes=1-4`)
        t.is(head.headers['content-range'], `bytes 1-4/${size}`, `HEAD ${d.path}`)
        const out = await app.send('GET', d.path, { headers: { Range: `bytes=${size + 10}-${size + 20}` } })
        t.is(out.status, 416, `${d.path} unsatisfiable range: ${out.text.slice(0, 300)}`)
        t.is(out.headers['content-range'], `bytes */${size}`, d.path)
        t.is(f.errorShape(out), undefined, `${d.path} 416: error body`)
      }
    })

    test.serial(title('ETag + If-None-Match gives 304 without a body'), async (t) => {
      const { app } = t.context
      const p = await published(app)
      for (const path of [...p.downloads.map(d => d.path), ...p.documents]) {
        const isDownload = p.downloads.some(d => d.path === path)
        const get = await app.send('GET', path)
        const etag = get.headers.etag
        if (etag == null) {
          t.false(isDownload, `${path}: a download carries an ETag`)
          t.log(`${path}: a document without an ETag`)
          continue
        }
        for (const method of ['GET', 'HEAD']) {
          const r = await app.send(method, path, { headers: { 'If-None-Match': etag } })
          t.is(r.status, 304, `${method} ${path} If-None-Match ${etag}`)
          t.is(r.body.length, 0, `${method} ${path}: 304 has no body`)
          t.is(r.headers.etag, etag, `${method} ${path}: 304 repeats the ETag`)
          const other = await app.send(method, path, { headers: { 'If-None-Match': '"something-else"' } })
          t.is(other.status, 200, `${method} ${path} with another ETag`)
        }
      }
    })

    test.serial(title('error bodies have the format\'s shape'), async (t) => {
      const { app } = t.context
      const p = await published(app)
      const missing = await app.send('GET', f.missing(repo))
      t.is(missing.status, 404, `${f.missing(repo)}: ${missing.text}`)
      t.is(f.errorShape(missing), undefined, `404 of ${f.missing(repo)}`)
      const [write] = await f.writeRoutes(app, repo, p, nextId())
      for (const [who, header, status] of [['anonymous', undefined, 401], ['read-only token', auth(app.tokens.reader), 403]] as const) {
        const r = await app.send(write.method, write.path, { headers: write.headers, body: write.body, auth: header })
        t.is(r.status, status, `${write.method} ${write.path} as ${who}`)
        t.is(f.errorShape(r), undefined, `${status} of ${write.method} ${write.path}`)
      }
    })

    test.serial(title('oversized bodies (Content-Length or chunked) get 413, and the app still answers'), async (t) => {
      const { app } = t.context
      await published(app)
      const probe = await f.oversized(repo, LIMITS)
      const body = Buffer.from(probe.body ?? '')
      t.true(body.length > Math.min(LIMITS.metadataBytes, LIMITS.uploadBytes), 'the probe is over a limit')
      for (const framing of ['Content-Length', 'chunked'] as const) {
        const before = app.lastSeq()
        const head = requestHead(probe, framing === 'chunked' ? 'chunked' : { contentLength: body.length }, auth(app.tokens.admin))
        const r = await rawExchange(portOf(app), head, framing === 'chunked' ? chunked(body) : pieces(body))
        t.is(r.status, 413, `${probe.method} ${probe.path} (${framing}, ${body.length} bytes): ${r.text.slice(0, 300)}`)
        await stillServes(t, app, before, `an oversized ${framing} body`)
      }
    })

    test.serial(title('truncated bodies (the socket closes before Content-Length bytes) are refused without a crash'), async (t) => {
      const { app } = t.context
      const p = await published(app)
      const probes = await f.truncated(app, repo, p, nextId())
      t.true(probes.length > 0)
      for (const probe of probes) {
        const body = Buffer.from(probe.body ?? '')
        for (const close of ['end', 'destroy'] as const) {
          for (const fraction of [0.5, 0.95]) {
            const before = app.lastSeq()
            const sent = body.subarray(0, Math.floor(body.length * fraction))
            const head = requestHead(probe, { contentLength: body.length }, auth(app.tokens.admin))
            const r = await rawExchange(portOf(app), head, pieces(sent), { closeAfterWrite: close })
            const what = `${probe.method} ${probe.path} with ${sent.length} of ${body.length} bytes, then ${close}`
            t.true(r.status == null || (r.status >= 400 && r.status < 500), `${what}: ${r.text.slice(0, 300)}`)
            await stillServes(t, app, before, what)
          }
        }
      }
    })

    test.serial(title('a publish appends a change-log row that signs into a valid mesh manifest'), async (t) => {
      const { app } = t.context
      const before = app.lastSeq()
      const p = await f.publish(app, repo, nextId())
      const rows = app.changesAfter(before).filter(c => c.repo === repo && c.name === p.name)
      const row = rows.find(c => c.kind === 'publish' || c.kind === 'add-files')
      if (row == null) { t.fail(`no publish row for ${p.name}; rows: ${JSON.stringify(rows)}`); return }
      t.is(row.version, p.version)
      t.deepEqual((row.detail.files ?? []).map(x => x.filename).sort(), [...p.files].sort())
      const key = await generateKeyPair('Ed25519')
      const origin = peerIdFromPrivateKey(key).toString()
      for (const change of rows) {
        const manifest = await buildManifest(change, { mesh: 'compliance', origin, prev: 0, format: f.format, blobs: app.storage.store })
        const opened = await openEnvelope(await signManifest(manifest, key), { mesh: 'compliance', isAllowed: () => true })
        t.is(opened.repo, repo)
        t.is(opened.format, f.format)
        t.is(opened.name, p.name)
        t.is(opened.version, p.version)
        if (change === row) {
          for (const d of p.downloads) {
            t.true(opened.files.some(file => file.sha256 === sha256(d.bytes) && file.size === d.bytes.length), `manifest pins ${d.path}`)
          }
        }
      }
    })
  }
}
