// A start that fails late (the HTTP port taken, after the store and the mesh are up) stops what
// it started and says why (issue 17, item 19).
import test from 'ava'
import { existsSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:net'
import { join } from 'node:path'
import { spawn } from 'node:child_process'
import pino from 'pino'
import { parseConfig } from '../config/load.ts'
import { FORMATS } from '../protocols/registry.ts'
import { Lifecycle } from '../node/lifecycle.ts'
import { startNode } from '../node/server.ts'
import { CLI, makeTempDir, startTestNode, waitFor } from './helpers/node.ts'

async function occupiedPort (t: { teardown: (f: () => void) => void }): Promise<number> {
  const server: Server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.close() })
  return (server.address() as { port: number }).port
}

async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  await new Promise<void>(resolve => server.close(() => resolve()))
  return port
}

/** Handles that would keep a process alive or a port bound (timers, sockets, listeners). */
const openHandles = () => process.getActiveResourcesInfo().filter(r => r !== 'TTYWrap' && r !== 'PipeWrap').sort()

test.serial('in process: a taken HTTP port rejects with a clear message and leaves nothing open', async t => {
  const dataDir = await makeTempDir(t)
  await writeFile(join(dataDir, 'peering.json'), JSON.stringify({ listen: ['/ip4/127.0.0.1/tcp/0'] }))
  const port = await occupiedPort(t)
  const meshPort = await freePort()
  const config = parseConfig({ dataDir, http: { host: '127.0.0.1', port }, repositories: [{ name: 'files', format: 'generic' }] }, 'test', { formats: FORMATS.map(f => f.name) })
  const log = pino({ level: 'silent' })
  const before = openHandles()

  const err = await t.throwsAsync(startNode(config, log, { listenPort: meshPort }))
  t.regex(err?.message ?? '', new RegExp(`HTTP port 127\\.0\\.0\\.1:${port} is already in use`))
  t.false(existsSync(join(dataDir, 'akmesh.db-wal')), 'SQLite was closed (its last connection removes the WAL file)')
  // The mesh's listener is gone: its port can be bound again.
  const rebind = createServer()
  await new Promise<void>((resolve, reject) => { rebind.once('error', reject); rebind.listen(meshPort, '127.0.0.1', resolve) })
  await new Promise<void>(resolve => rebind.close(() => resolve()))
  // Timers and sockets of the parts that had started are released (some close asynchronously).
  await waitFor(() => openHandles().length <= before.length, `handles released: before ${before.join(',')}; now ${openHandles().join(',')}`, 10_000)
  t.pass()

  // The same data directory starts at once on a free port.
  const config2 = { ...config, http: { ...config.http, port: 0 } }
  const node = await startNode(config2, log, { listenPort: 0 })
  t.is((await fetch(`${node.url}/healthz`)).status, 200)
  await node.close()
})

test('the CLI exits non-zero with the reason, without hanging; the next start on a free port works', async t => {
  const dataDir = await makeTempDir(t)
  const port = await occupiedPort(t)
  const proc = spawn(process.execPath, [CLI, 'start', '--data', dataDir, '--port', String(port), '--host', '127.0.0.1', '--mesh-port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  proc.stderr.on('data', (b: Buffer) => { stderr += b.toString() })
  proc.stdout.resume()
  const code = await new Promise<number | null>((resolve) => {
    const timer = setTimeout(() => { proc.kill('SIGKILL'); resolve(null) }, 60_000)
    proc.once('exit', (c) => { clearTimeout(timer); resolve(c) })
  })
  t.not(code, null, 'exited by itself')
  t.not(code, 0)
  t.regex(stderr, new RegExp(`akmesh: startup failed at http listener: HTTP port 127\\.0\\.0\\.1:${port} is already in use`))

  const node = await startTestNode(t, { dataDir })
  t.is((await fetch(`${node.url}/readyz`)).status, 200)
})

test('Lifecycle: a failing step stops the started parts in reverse and names the step', async t => {
  const events: string[] = []
  const parts = new Lifecycle()
  await parts.start('a', () => { events.push('start a') }, () => { events.push('stop a') })
  await parts.start('b', async () => { events.push('start b'); return 'B' }, (b) => { events.push(`stop ${b}`) })
  await parts.start('no undo', () => { events.push('start c') })
  const err = await t.throwsAsync(parts.start('d', () => { throw new Error('port taken') }, () => { events.push('stop d') }))
  t.is(err?.message, 'startup failed at d: port taken')
  t.deepEqual(events, ['start a', 'start b', 'start c', 'stop B', 'stop a'])
  await parts.stop()
  t.is(events.length, 5, 'stopping again stops nothing twice')
  await t.throwsAsync(parts.start('e', () => {}), { message: /stopping/ })
})

test('Lifecycle: a part that fails to stop does not keep the others from stopping', async t => {
  const events: string[] = []
  const parts = new Lifecycle()
  await parts.start('a', () => {}, () => { events.push('stop a') })
  await parts.start('b', () => {}, () => { throw new Error('stuck') })
  await parts.start('c', () => {}, async () => { events.push('stop c') })
  await parts.stop()
  t.deepEqual(events, ['stop c', 'stop a'])
})
