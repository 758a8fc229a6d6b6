// The peering file in-process: defaults on first load, live reload, invalid edits ignored.
import test from 'ava'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pino } from 'pino'
import { LivePeering, editPeeringFile, loadPeeringFile } from '../config/peering.ts'
import { isAllowed, replicationFor, type Peering } from '../config/peering-schema.ts'
import { makeTempDir, waitFor } from './helpers/node.ts'

const PEER = '12D3KooWJgFQVJChMqJtPbw4G7YiZL8jY3yBDX8RisMJ9fp1p5kR'

test('first load writes the defaults; replication and allow helpers read them', async t => {
  const file = join(await makeTempDir(t), 'sub', 'peering.json')
  const p = await loadPeeringFile(file)
  t.is(p.mesh, 'default')
  t.deepEqual(p.listen, ['/ip4/0.0.0.0/tcp/7071'])
  t.deepEqual(p.allow, [])
  t.is(p.uploadBandwidth, null)
  t.is(replicationFor(p, 'npm'), 'on-demand')
  t.false(isAllowed(p, PEER))
  t.deepEqual(JSON.parse(await readFile(file, 'utf8')).replication, { '*': 'on-demand' })

  const edited = await editPeeringFile(file, c => { c.allow = ['*']; c.uploadBandwidth = '50MB'; c.replication = { npm: 'mirror' } })
  t.true(isAllowed(edited, PEER))
  t.is(edited.uploadBandwidth, 50 * 1024 * 1024)
  t.is(replicationFor(edited, 'npm'), 'mirror')
})

test('a live peering file follows valid edits and keeps the last good config on invalid ones', async t => {
  const file = join(await makeTempDir(t), 'peering.json')
  const lines: string[] = []
  const log = pino({ level: 'info' }, { write: (s: string) => { lines.push(s) } })
  const live = await LivePeering.open(file, { log, debounceMs: 20 })
  t.teardown(() => live.close())
  const seen: Peering[] = []
  live.subscribe(next => seen.push(next))

  await writeFile(file, JSON.stringify({ allow: [PEER] }))
  await waitFor(() => seen.length === 1, 'the valid edit')
  t.true(isAllowed(live.current, PEER))

  await writeFile(file, JSON.stringify({ allow: [PEER], bootstrap: ['/ip4/10.0.0.1/tcp/1'] }))
  await waitFor(() => lines.some(l => l.includes('invalid peering file')), 'the invalid edit to be logged')
  t.regex(lines.join(''), /peering\.json: bootstrap\[0\]: expected a multiaddr ending in \/p2p\/<peerId>/)
  t.is(seen.length, 1)
  t.true(isAllowed(live.current, PEER), 'the previous config stays in force')
})
