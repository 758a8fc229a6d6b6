// better-sqlite3 12 on Node 24 aborts the whole process (SIGABRT, "RemoveEnvironmentCleanupHook:
// Assertion failed: (env) != nullptr") when a garbage-collected Statement is finalised during a
// GC that a stream read triggers. A statement prepared per request becomes such garbage: before
// the fix, anonymous GET /readyz prepared one each time, and a few thousand probes followed by
// ordinary uploads killed the node. Statements must be prepared once and kept.
// In-process (the compliance harness), so an abort fails this file rather than a child quietly.
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
