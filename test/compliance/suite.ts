// The compliance suite: every check, once, for every format fixture (one ava test per format per
// check, so a failure names both). Requests are spec-shaped by the fixtures, not sent by real
// clients; test/<format>*.test.ts keep the real-client tests. Each check gathers every problem it
// finds and fails once with the whole list (ava stops a test at its first failed assertion).
import type { ExecutionContext, TestFn } from 'ava'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { createHash } from 'node:crypto'
import { buildManifest, openEnvelope, signManifest } from '../../mesh/manifest.ts'
import type { FormatFixture, Published } from './fixture.ts'
import { chunked, LIMITS, pieces, portOf, rawExchange, requestHead, startApp, type App, type Reply } from './harness.ts'
import { TRAVERSAL_PROBES, UNICODE_PROBES } from './probes.ts'

interface Context { app: App }
type T = ExecutionContext<Context>

export const publicRepo = (f: FormatFixture) => `c-${f.format}`
export const privateRepo = (f: FormatFixture) => `c-${f.format}-private`

const IGNORED_HEADERS = new Set(['date', 'connection', 'keep-alive', 'transfer-encoding'])
const comparable = (r: Reply) => Object.fromEntries(Object.entries(r.headers).filter(([k]) => !IGNORED_HEADERS.has(k)))
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')
const brief = (r: Reply) => `${r.status} ${r.text.slice(0, 200)}`
const shortPath = (path: string) => path.length > 120 ? `${path.slice(0, 120)}…(${path.length} chars)` : path
let ids = 0
const nextId = () => `x${(++ids).toString(36)}${Date.now().toString(36).slice(-4)}`

/** Collects problems; `done` fails the test once, listing all of them. */
class Problems {
  readonly list: string[] = []
  expect (ok: boolean, problem: string): void { if (!ok) this.list.push(problem) }
  done (t: T): void { t.deepEqual(this.list, [], `${this.list.length} problem(s)`) }
}

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

  // Registered check by check (every format's auth check, then every format's private-read
  // check, ...), abuse last: a request that kills the process loses only the checks after it.
  const queue: Array<{ check: string, f: FormatFixture, run: (t: T) => Promise<void> }> = []
  const check = (f: FormatFixture, name: string, run: (t: T) => Promise<void>) => { queue.push({ check: name, f, run }) }

  for (const f of fixtures) {
    const repo = publicRepo(f)
    const auth = (token: string) => (f.credentials ?? ((tk: string) => `Bearer ${tk}`))(token)
    let sample: Promise<Published> | undefined
    const published = async (app: App) => await (sample ??= f.publish(app, repo, 'sample'))

    /** After abuse: the app answers a normal download, and nothing was published in `repo`. */
    const stillServes = async (app: App, problems: Problems, before: number, what: string) => {
      try {
        await app.idle()
      } catch (err) {
        problems.list.push(`after ${what}: ${(err as Error).message}`)
      }
      const p = await published(app)
      const r = await app.send('GET', p.downloads[0].path)
      problems.expect(r.status === 200 && r.body.equals(p.downloads[0].bytes), `after ${what}: GET ${p.downloads[0].path} gave ${brief(r)}`)
      const logged = app.changesAfter(before).filter(c => c.repo === repo)
      problems.expect(logged.length === 0, `after ${what}: published ${logged.map(c => `${c.kind} ${c.name}@${c.version}`).join(', ')}`)
    }

    check(f, 'writes are refused without credentials, with bad ones, a read-only token or another repository\'s token', async (t) => {
      const { app } = t.context
      const problems = new Problems()
      const p = await published(app)
      const routes = await f.writeRoutes(app, repo, p, nextId())
      t.true(routes.length > 0)
      const before = app.lastSeq()
      const cases: Array<[string, string | undefined, number]> = [
        ['anonymous', undefined, 401],
        ['an unknown token', auth(app.tokens.bogus), 401],
        ['a read-only token', auth(app.tokens.reader), 403],
        ['a token for another repository', auth(app.tokens.otherRepo), 403]
      ]
      for (const route of routes) {
        for (const [who, header, status] of cases) {
          const r = await app.send(route.method, route.path, { headers: route.headers, body: route.body, auth: header })
          const what = `${route.method} ${route.path} as ${who}`
          problems.expect(r.status === status, `${what}: expected ${status}, got ${brief(r)}`)
          const shape = f.errorShape(r)
          problems.expect(r.status < 400 || shape === undefined, `${what}: error body: ${shape ?? ''}`)
        }
      }
      await stillServes(app, problems, before, 'refused writes')
      for (const d of p.downloads) {
        const r = await app.send('GET', d.path)
        problems.expect(r.status === 200, `${d.path} after refused writes: ${brief(r)}`)
      }
      problems.done(t)
    })

    check(f, 'a private repository refuses anonymous reads and serves a read token', async (t) => {
      const { app } = t.context
      const problems = new Problems()
      const p = await f.publish(app, privateRepo(f), nextId())
      const cases: Array<[string, string | undefined, number]> = [
        ['anonymous', undefined, 401],
        ['an unknown token', auth(app.tokens.bogus), 401],
        ['a token for another repository', auth(app.tokens.otherRepo), 403],
        ['a read token', auth(app.tokens.reader), 200]
      ]
      for (const path of [...p.downloads.map(d => d.path), ...p.documents]) {
        for (const method of ['GET', 'HEAD']) {
          for (const [who, header, status] of cases) {
            const r = await app.send(method, path, { auth: header })
            const what = `${method} ${path} as ${who}`
            problems.expect(r.status === status, `${what}: expected ${status}, got ${brief(r)}`)
            if (status === 200) continue
            problems.expect(!p.downloads.some(d => d.bytes.length > 16 && r.body.includes(d.bytes)), `${what}: the content was sent`)
            const shape = method === 'GET' ? f.errorShape(r) : undefined
            problems.expect(shape === undefined, `${what}: error body: ${shape ?? ''}`)
          }
        }
      }
      problems.done(t)
    })

    check(f, 'traversal and encoding probes get 4xx, never 500, never a file outside the repository', async (t) => {
      const { app } = t.context
      const problems = new Problems()
      const p = await published(app)
      const before = app.lastSeq()
      for (const target of f.traversalTargets(repo, p)) {
        for (const probe of TRAVERSAL_PROBES) {
          const path = target.path.replace('{}', probe)
          const r = await app.send(target.method, path, { headers: target.headers, body: target.body, auth: auth(app.tokens.admin) })
          const what = `${target.method} ${shortPath(path)}`
          problems.expect(r.status >= 400 && r.status < 500, `${what}: expected 4xx, got ${brief(r)}`)
          for (const s of app.sentinels) problems.expect(!r.text.includes(s), `${what}: served a file outside the repository`)
          problems.expect(!r.text.includes('SQLite format 3'), `${what}: served the index database`)
          const shape = r.status >= 400 && target.method !== 'HEAD' ? f.errorShape(r) : undefined
          problems.expect(shape === undefined, `${what}: error body: ${shape ?? ''}`)
        }
      }
      await stillServes(app, problems, before, 'traversal probes')
      problems.done(t)
    })

    check(f, 'names beyond ASCII (Chinese, Cyrillic, emoji, RTL override) are accepted or refused, never a 500', async (t) => {
      const { app } = t.context
      const problems = new Problems()
      const p = await published(app)
      for (const target of f.traversalTargets(repo, p)) {
        for (const probe of UNICODE_PROBES) {
          const path = target.path.replace('{}', probe)
          const r = await app.send(target.method, path, { headers: target.headers, body: target.body, auth: auth(app.tokens.admin) })
          const what = `${target.method} ${path}`
          problems.expect(r.status < 500, `${what}: ${brief(r)}`)
          const shape = r.status >= 400 && target.method !== 'HEAD' ? f.errorShape(r) : undefined
          problems.expect(shape === undefined, `${what}: error body: ${shape ?? ''}`)
          if (r.status >= 300 || target.method === 'GET') continue
          // Accepted: it must be served where it was written.
          const back = await app.send('GET', path)
          problems.expect(back.status === 200, `${what} was accepted (${r.status}); GET gave ${brief(back)}`)
        }
      }
      const r = await app.send('GET', p.downloads[0].path)
      problems.expect(r.status === 200, `after names beyond ASCII: ${brief(r)}`)
      problems.done(t)
    })

    check(f, 'HEAD matches GET: status, headers, no body', async (t) => {
      const { app } = t.context
      const problems = new Problems()
      const p = await published(app)
      for (const path of [...p.downloads.map(d => d.path), ...p.documents]) {
        for (const headers of [{}, { 'Accept-Encoding': 'gzip' }] as Array<Record<string, string>>) {
          const get = await app.send('GET', path, { headers })
          const head = await app.send('HEAD', path, { headers })
          const what = `${path} ${JSON.stringify(headers)}`
          problems.expect(get.status === 200, `GET ${what}: ${brief(get)}`)
          problems.expect(head.status === get.status, `HEAD ${what}: ${head.status}, GET ${get.status}`)
          problems.expect(JSON.stringify(comparable(head)) === JSON.stringify(comparable(get)),
            `HEAD ${what}: headers ${JSON.stringify(comparable(head))}, GET ${JSON.stringify(comparable(get))}`)
          problems.expect(head.body.length === 0, `HEAD ${what}: sent ${head.body.length} body bytes`)
        }
      }
      problems.done(t)
    })

    check(f, 'Range: a single range gives 206 + Content-Range, an unsatisfiable one 416', async (t) => {
      const { app } = t.context
      const problems = new Problems()
      const p = await published(app)
      for (const d of p.downloads) {
        const size = d.bytes.length
        t.true(size > 8, `${d.path}: a sample long enough to take a range from`)
        for (const method of ['GET', 'HEAD']) {
          const r = await app.send(method, d.path, { headers: { Range: 'bytes=1-4' } })
          const what = `${method} ${d.path} Range: bytes=1-4`
          problems.expect(r.status === 206, `${what}: ${brief(r)}`)
          problems.expect(r.headers['content-range'] === `bytes 1-4/${size}`, `${what}: Content-Range ${r.headers['content-range']}`)
          problems.expect(r.headers['content-length'] === '4', `${what}: Content-Length ${r.headers['content-length']}`)
          problems.expect(method === 'HEAD' || r.body.equals(d.bytes.subarray(1, 5)), `${what}: wrong bytes`)
        }
        const suffix = await app.send('GET', d.path, { headers: { Range: 'bytes=-3' } })
        problems.expect(suffix.status === 206 && suffix.body.equals(d.bytes.subarray(size - 3)), `${d.path} Range: bytes=-3: ${brief(suffix)}`)
        const out = await app.send('GET', d.path, { headers: { Range: `bytes=${size + 10}-${size + 20}` } })
        const what = `${d.path} Range beyond ${size} bytes`
        problems.expect(out.status === 416, `${what}: ${brief(out)}`)
        problems.expect(out.headers['content-range'] === `bytes */${size}`, `${what}: Content-Range ${out.headers['content-range']}`)
        const shape = f.errorShape(out)
        problems.expect(shape === undefined, `${what}: error body: ${shape ?? ''}`)
      }
      problems.done(t)
    })

    check(f, 'ETag + If-None-Match gives 304 without a body', async (t) => {
      const { app } = t.context
      const problems = new Problems()
      const p = await published(app)
      for (const path of [...p.downloads.map(d => d.path), ...p.documents]) {
        const isDownload = p.downloads.some(d => d.path === path)
        const etag = (await app.send('GET', path)).headers.etag
        if (etag == null) {
          problems.expect(!isDownload, `${path}: a download without an ETag`)
          if (!isDownload) t.log(`${path}: a document without an ETag`)
          continue
        }
        for (const method of ['GET', 'HEAD']) {
          const r = await app.send(method, path, { headers: { 'If-None-Match': etag } })
          const what = `${method} ${path} If-None-Match: ${etag}`
          problems.expect(r.status === 304, `${what}: ${brief(r)}`)
          problems.expect(r.body.length === 0, `${what}: 304 with a body`)
          problems.expect(r.headers.etag === etag, `${what}: 304 with ETag ${r.headers.etag}`)
          const other = await app.send(method, path, { headers: { 'If-None-Match': '"something-else"' } })
          problems.expect(other.status === 200, `${method} ${path} If-None-Match another ETag: ${brief(other)}`)
        }
      }
      problems.done(t)
    })

    check(f, 'error bodies have the format\'s shape', async (t) => {
      const { app } = t.context
      const problems = new Problems()
      const p = await published(app)
      const missing = await app.send('GET', f.missing(repo))
      problems.expect(missing.status === 404, `GET ${f.missing(repo)}: expected 404, got ${brief(missing)}`)
      problems.expect(f.errorShape(missing) === undefined, `404 of ${f.missing(repo)}: ${f.errorShape(missing) ?? ''}`)
      const [write] = await f.writeRoutes(app, repo, p, nextId())
      for (const [who, header, status] of [['anonymous', undefined, 401], ['a read-only token', auth(app.tokens.reader), 403]] as const) {
        const r = await app.send(write.method, write.path, { headers: write.headers, body: write.body, auth: header })
        problems.expect(r.status === status, `${write.method} ${write.path} as ${who}: expected ${status}, got ${brief(r)}`)
        problems.expect(f.errorShape(r) === undefined, `${status} of ${write.method} ${write.path}: ${f.errorShape(r) ?? ''}`)
      }
      problems.done(t)
    })

    check(f, 'a publish appends a change-log row that signs into a valid mesh manifest', async (t) => {
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
        t.like(opened, { repo, format: f.format, name: p.name, version: p.version, kind: change.kind })
        if (change !== row) continue
        for (const d of p.downloads) {
          t.true(opened.files.some(file => file.sha256 === sha256(d.bytes) && file.size === d.bytes.length), `the manifest pins ${d.path}`)
        }
      }
    })

    check(f, 'oversized bodies (Content-Length or chunked) get 413, and the app still answers', async (t) => {
      const { app } = t.context
      const problems = new Problems()
      await published(app)
      const probe = await f.oversized(repo, LIMITS)
      const body = Buffer.from(probe.body ?? '')
      t.true(body.length > Math.min(LIMITS.metadataBytes, LIMITS.uploadBytes), 'the probe is over a limit')
      for (const framing of ['Content-Length', 'chunked', 'Expect: 100-continue'] as const) {
        const before = app.lastSeq()
        const expect = framing === 'Expect: 100-continue'
        const withExpect = expect ? { ...probe, headers: { ...probe.headers, Expect: '100-continue' } } : probe
        const head = requestHead(withExpect, framing === 'chunked' ? 'chunked' : { contentLength: body.length }, auth(app.tokens.admin))
        const r = await rawExchange(portOf(app), head, framing === 'chunked' ? chunked(body) : pieces(body), { awaitContinue: expect })
        const what = `${probe.method} ${probe.path} (${framing}, ${body.length} bytes)`
        problems.expect(r.status === 413, `${what}: expected 413, got ${r.status == null ? 'no response (connection closed)' : r.text.slice(0, 200)}`)
        // A declared length over the limit is refused before the client sends the body.
        problems.expect(!expect || !r.interim.includes(100), `${what}: 100 Continue before refusing a declared length over the limit`)
        await stillServes(app, problems, before, what)
      }
      problems.done(t)
    })

    check(f, 'truncated bodies (the socket closes before Content-Length bytes) are refused without a crash', async (t) => {
      const { app } = t.context
      const problems = new Problems()
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
            problems.expect(r.status == null || (r.status >= 400 && r.status < 500), `${what}: ${r.text.slice(0, 200)}`)
            await stillServes(app, problems, before, what)
          }
        }
      }
      problems.done(t)
    })
  }

  for (const name of new Set(queue.map(q => q.check))) {
    for (const q of queue.filter(q => q.check === name)) {
      test.serial(`${q.f.format}: ${name} (spec-shaped requests)`, q.run)
    }
  }
}
