// Node >= 24.19 made node::ObjectWrap's destructor call RemoveEnvironmentCleanupHook, which
// aborts the process (SIGABRT, "Assertion failed: (env) != nullptr") when the object is
// finalised by a GC that runs with no context entered. better-sqlite3 <= 12 derives Statement
// from that ObjectWrap, so every Statement that becomes garbage can kill the node: GET /readyz
// prepared one per request (anonymous), and a few thousand probes followed by ordinary uploads
// killed it every time (3/3 runs). Statements prepared once and kept (or better-sqlite3 13, on
// node-addon-api) remove the garbage. In-process (the compliance harness), so an abort fails
// this file rather than a child process quietly.
import test from 'ava'
import { sampleBytes } from './compliance/generic.ts'
import { startApp } from './compliance/harness.ts'

test('thousands of /readyz probes, then uploads: the process survives the garbage collection of what requests prepared', async (t) => {
  const app = await startApp([{ name: 'files', format: 'generic' }])
  t.teardown(async () => { await app.close() })
  for (let i = 0; i < 3000; i++) {
    const r = await app.send('GET', '/readyz')
    if (r.status !== 200) t.fail(`readyz ${i}: ${r.status} ${r.text}`)
  }
  // Uploads allocate enough to collect the garbage while request streams are being read.
  for (let i = 0; i < 20; i++) {
    const r = await app.send('PUT', `/files/gc/${i}.bin`, { body: sampleBytes(`gc ${i}`, 1_000_000), auth: `Bearer ${app.tokens.admin}` })
    t.is(r.status, 201, r.text)
  }
  t.is((await app.send('GET', '/healthz')).status, 200)
})
