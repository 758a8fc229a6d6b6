// The akmesh command line, run as a real process: help, init, config errors, tokens, users,
// repositories and verify, alone and beside a running node.
import test from 'ava'
import { existsSync } from 'node:fs'
import { readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import { run } from './helpers/clients.ts'
import { CLI, akmesh, makeTempDir, startTestNode, waitFor, type TestNode } from './helpers/node.ts'
import { MiB, deterministicBytes, rawRequest, sha256Hex } from './helpers/streams.ts'

const COMMANDS = [
  [], ['start'], ['init'], ['token'], ['token', 'create'], ['token', 'list'], ['token', 'revoke'],
  ['user'], ['user', 'add'], ['user', 'list'], ['repo'], ['repo', 'list'], ['verify'], ['gc']
]

/** `akmesh start` with a deadline, for configs that must be refused (a wrongly accepted one
 *  would otherwise run until the test times out). */
const start = async (args: string[]) => await run(process.execPath, [CLI, 'start', '--host', '127.0.0.1', '--port', '0', ...args], { timeoutMs: 20_000 })

async function put (node: TestNode, path: string, body: Buffer | string, headers: Record<string, string>): Promise<number> {
  return (await rawRequest('PUT', `${node.url}/files/${path}`, { body, headers })).status
}

for (const cmd of COMMANDS) {
  test(`akmesh ${[...cmd, '--help'].join(' ')} prints usage`, async t => {
    const r = await akmesh([...cmd, '--help'])
    t.is(r.code, 0, r.stderr)
    t.true(r.stdout.startsWith(`Usage: akmesh ${cmd.join(' ')}`.trimEnd() + ' '), r.stdout)
    t.regex(r.stdout, /-h, --help/)
    if (['start', 'create', 'list', 'revoke', 'add', 'verify', 'gc'].includes(cmd.at(-1) ?? '') && cmd[0] !== undefined) {
      t.regex(r.stdout, /--config <file>/)
      t.regex(r.stdout, /--data <dir>/)
    }
  })
}

test('akmesh init writes a commented config that loads and starts a node', async t => {
  const dir = await makeTempDir(t)
  const file = join(dir, 'akmesh.yaml')
  const r = await akmesh(['init', file])
  t.is(r.code, 0, r.stderr)
  t.regex(r.stdout, /wrote .*akmesh\.yaml/)
  const text = await readFile(file, 'utf8')
  t.true(text.split('\n').filter(l => l.trimStart().startsWith('#')).length >= 10, 'explains its keys in comments')
  for (const key of ['dataDir:', 'http:', 'port:', 'limits:', 'uploadBytes:', 'log:', 'repositories:']) t.true(text.includes(key), key)

  const again = await akmesh(['init', file])
  t.not(again.code, 0)
  t.regex(again.stderr, /already exists/)
  t.is((await akmesh(['init', file, '--force'])).code, 0)

  // It loads: repositories come from it, and its relative dataDir is relative to the file.
  const repos = await akmesh(['repo', 'list', '--config', file, '--json'])
  t.is(repos.code, 0, repos.stderr)
  const names = JSON.parse(repos.stdout).map((r: { name: string }) => r.name)
  t.true(names.includes('npm') && names.includes('files'), names.join(','))
  t.is((await akmesh(['token', 'list', '--config', file])).code, 0)
  t.true(existsSync(join(dir, 'data', 'akmesh.db')), 'data lives beside the config file')

  // And a node starts with it.
  const node = await startTestNode(t, { config: text })
  t.is((await fetch(`${node.url}/readyz`)).status, 200)
  t.is((await fetch(`${node.url}/files/`)).status, 200)
})

const BAD_CONFIGS: Array<{ what: string, yaml: string, key: string, expected: RegExp }> = [
  { what: 'wrong type', yaml: 'http:\n  port: "seventy"\n', key: 'http.port', expected: /expected number/ },
  { what: 'port out of range', yaml: 'http:\n  port: 70000\n', key: 'http.port', expected: /65535/ },
  { what: 'unknown top-level key', yaml: 'dataDri: ./data\n', key: 'dataDri', expected: /unknown key; expected one of .*dataDir/ },
  { what: 'unknown nested key', yaml: 'limits:\n  uploadByte: 1GB\n', key: 'limits.uploadByte', expected: /unknown key; expected one of .*uploadBytes/ },
  { what: 'bad size', yaml: 'limits:\n  uploadBytes: lots\n', key: 'limits.uploadBytes', expected: /expected a size such as 64MB/ },
  { what: 'bad repository name', yaml: 'repositories:\n  - name: My_Repo\n    format: generic\n', key: 'repositories[0].name', expected: /expected lowercase letters/ },
  { what: 'reserved repository name', yaml: 'repositories:\n  - name: v2\n    format: generic\n', key: 'repositories[0].name', expected: /reserved/ },
  { what: 'duplicate repository', yaml: 'repositories:\n  - { name: a, format: generic }\n  - { name: a, format: npm }\n', key: 'repositories[1].name', expected: /duplicate/ },
  { what: 'unknown format', yaml: 'repositories:\n  - name: jars\n    format: maven2\n', key: 'repositories[0].format', expected: /expected one of .*generic.*got "maven2"/ },
  { what: 'unknown repository key', yaml: 'repositories:\n  - { name: a, format: generic, anonymous: true }\n', key: 'repositories[0].anonymous', expected: /expected one of .*anonymousRead/ },
  { what: 'invalid YAML', yaml: 'http: [\n  port: 1\n', key: 'invalid YAML', expected: /line \d+/ }
]

for (const bad of BAD_CONFIGS) {
  test(`a config with a ${bad.what} is refused naming the file, the key and what was expected`, async t => {
    const dir = await makeTempDir(t)
    const file = join(dir, 'bad.yaml')
    await writeFile(file, bad.yaml)
    for (const r of [await akmesh(['repo', 'list', '--config', file]), await start(['--config', file, '--data', join(dir, 'data')])]) {
      t.not(r.code, 0, r.stdout)
      t.true(r.stderr.includes(`${file}: ${bad.key}`), r.stderr)
      t.regex(r.stderr, bad.expected)
      t.false(r.stderr.includes('    at '), 'a message, not a stack trace')
    }
  })
}

test('token create, list and revoke against a running node; list never shows secrets', async t => {
  const node = await startTestNode(t)
  const created = await akmesh(['token', 'create', '--name', 'ci-bot', '--scope', 'read,write', '--repo', 'files', '--description', 'for CI', '--json', '--data', node.dataDir])
  t.is(created.code, 0, created.stderr)
  const { id, token } = JSON.parse(created.stdout)
  t.regex(token, /^akm_[A-Za-z0-9_-]{43}$/)
  const plain = await akmesh(['token', 'create', '--name', 'other', '--data', node.dataDir])
  t.is(plain.code, 0)
  const otherSecret = /akm_[A-Za-z0-9_-]{43}/.exec(plain.stdout)?.[0] as string
  t.truthy(otherSecret, 'the plain form prints the secret once too')

  t.is(await put(node, 'by-token.txt', 'hello', { Authorization: `Bearer ${token}` }), 201)

  for (const args of [['token', 'list'], ['token', 'list', '--json']]) {
    const list = await akmesh([...args, '--data', node.dataDir])
    t.is(list.code, 0, list.stderr)
    t.true(list.stdout.includes(id))
    t.true(list.stdout.includes('ci-bot'))
    for (const secret of [token, otherSecret, node.adminToken]) {
      t.false(list.stdout.includes(secret), 'a secret was printed')
      t.false(list.stdout.includes(secret.slice(4, 20)), 'part of a secret was printed')
    }
  }
  const listed = JSON.parse((await akmesh(['token', 'list', '--json', '--data', node.dataDir])).stdout)
  t.like(listed.find((x: any) => x.id === id), { name: 'ci-bot', scopes: ['read', 'write'], repos: ['files'], description: 'for CI' })
  t.is(listed.length, 3, 'the admin token and the two new ones')
  t.false(Object.keys(listed[0]).some(k => /hash|secret|token/i.test(k)))

  const revoke = await akmesh(['token', 'revoke', id, '--data', node.dataDir])
  t.is(revoke.code, 0, revoke.stderr)
  t.is(await put(node, 'after-revoke.txt', 'x', { Authorization: `Bearer ${token}` }), 401)
  t.is((await rawRequest('GET', `${node.url}/files/by-token.txt`, { headers: { Authorization: `Bearer ${token}` } })).status, 401)
  t.false((await akmesh(['token', 'list', '--data', node.dataDir])).stdout.includes(id))

  const unknown = await akmesh(['token', 'revoke', 'nosuchid', '--data', node.dataDir])
  t.not(unknown.code, 0)
  t.regex(unknown.stderr, /no token with id nosuchid/)
  const badScope = await akmesh(['token', 'create', '--name', 'x', '--scope', 'superuser', '--data', node.dataDir])
  t.not(badScope.code, 0)
  t.regex(badScope.stderr, /read, write, admin/)
})

test('user add creates a user that can authenticate with basic auth', async t => {
  const node = await startTestNode(t)
  const added = await akmesh(['user', 'add', 'alice', '--password', 'correct horse battery', '--scope', 'read,write', '--repo', 'files', '--data', node.dataDir])
  t.is(added.code, 0, added.stderr)
  const viaEnv = await akmesh(['user', 'add', 'bob', '--scope', 'read', '--data', node.dataDir], { env: { AKMESH_PASSWORD: 'bobs password' } })
  t.is(viaEnv.code, 0, viaEnv.stderr)
  const basic = (user: string, pw: string) => ({ Authorization: `Basic ${Buffer.from(`${user}:${pw}`).toString('base64')}` })

  t.is(await put(node, 'alice.txt', 'from alice', basic('alice', 'correct horse battery')), 201)
  t.is(await put(node, 'alice2.txt', 'x', basic('alice', 'wrong password')), 401)
  t.is(await put(node, 'bob.txt', 'x', basic('bob', 'bobs password')), 403, 'bob may only read')
  t.is((await rawRequest('GET', `${node.url}/files/alice.txt`, { headers: basic('bob', 'bobs password') })).status, 200)

  const list = await akmesh(['user', 'list', '--data', node.dataDir])
  t.is(list.code, 0)
  t.regex(list.stdout, /^alice\s+read,write\s+repos=files$/m)
  t.regex(list.stdout, /^bob\s+read\s+repos=\*$/m)
  t.false(list.stdout.includes('horse'))

  const duplicate = await akmesh(['user', 'add', 'alice', '--password', 'another password', '--data', node.dataDir])
  t.not(duplicate.code, 0)
  t.regex(duplicate.stderr, /already exists/)
  const short = await akmesh(['user', 'add', 'carol', '--password', 'short', '--data', node.dataDir])
  t.not(short.code, 0)
  t.regex(short.stderr, /at least 8 characters/)
})

test('repo list shows the configured repositories', async t => {
  const dir = await makeTempDir(t)
  const file = join(dir, 'repos.yaml')
  await writeFile(file, 'repositories:\n  - { name: internal, format: generic, anonymousRead: false }\n  - { name: js, format: npm }\n')
  const r = await akmesh(['repo', 'list', '--config', file])
  t.is(r.code, 0, r.stderr)
  t.regex(r.stdout, /^internal\s+generic\s+token required\s+\/internal\/$/m)
  t.regex(r.stdout, /^js\s+npm\s+anonymous read\s+\/js\/$/m)
  t.is(r.stdout.trim().split('\n').length, 2)
  const json = JSON.parse((await akmesh(['repo', 'list', '--config', file, '--json'])).stdout)
  t.deepEqual(json, [{ name: 'internal', format: 'generic', anonymousRead: false }, { name: 'js', format: 'npm', anonymousRead: true }])
})

test('verify exits 0 on a clean store, 1 naming the CID of a corrupted or missing blob', async t => {
  const node = await startTestNode(t)
  const auth = { Authorization: `Bearer ${node.adminToken}` }
  const cids: string[] = []
  for (const [i, size] of [2 * MiB + 3, 1000, 50].entries()) {
    const r = await rawRequest('PUT', `${node.url}/files/v/${i}.bin`, { body: deterministicBytes(size, `verify-${i}`), headers: auth })
    t.is(r.status, 201)
    cids.push(JSON.parse(r.body.toString()).cid)
  }
  await node.stop()

  const clean = await akmesh(['verify', '--data', node.dataDir])
  t.is(clean.code, 0, clean.stderr)
  t.regex(clean.stdout, /checked 3 blobs \(\d+ bytes\): all intact/)

  const path = (cid: string) => join(node.dataDir, 'blobs', cid.slice(-2), cid)
  const bytes = await readFile(path(cids[0]))
  bytes[MiB + 1] ^= 0x80
  await writeFile(path(cids[0]), bytes)
  await rm(path(cids[2]))

  const bad = await akmesh(['verify', '--data', node.dataDir])
  t.is(bad.code, 1, bad.stderr)
  t.regex(bad.stdout, new RegExp(`^DAMAGED ${cids[0]}: `, 'm'))
  t.regex(bad.stdout, new RegExp(`^MISSING ${cids[2]}: `, 'm'))
  t.false(bad.stdout.includes(cids[1]), 'the intact blob is not named')
  t.regex(bad.stdout, /2 problem\(s\)/)

  const json = await akmesh(['verify', '--json', '--data', node.dataDir])
  t.is(json.code, 1)
  t.deepEqual(JSON.parse(json.stdout).problems.map((p: any) => [p.cid, p.problem]).sort(), [[cids[0], 'damaged'], [cids[2], 'missing']].sort())
})

test('CLI commands beside a running node leave its in-flight uploads alone', async t => {
  const node = await startTestNode(t)
  const data = deterministicBytes(6 * MiB, 'in-flight')
  const body = new PassThrough()
  const upload = rawRequest('PUT', `${node.url}/files/in-flight.bin`, { body, headers: { Authorization: `Bearer ${node.adminToken}` } })
  body.write(data.subarray(0, 3 * MiB))
  const tmp = join(node.dataDir, 'tmp')
  await waitFor(async () => (await readdir(tmp)).length === 1, 'the upload to reach data/tmp')

  for (const args of [['token', 'list'], ['user', 'list'], ['verify']]) {
    const r = await akmesh([...args, '--data', node.dataDir])
    t.is(r.code, 0, `${args.join(' ')}: ${r.stderr}`)
  }
  t.is((await readdir(tmp)).length, 1, 'the temp file of the upload is still there')

  body.end(data.subarray(3 * MiB))
  const done = await upload
  t.is(done.status, 201, done.body.toString())
  const got = await rawRequest('GET', `${node.url}/files/in-flight.bin`)
  t.is(sha256Hex(got.body), sha256Hex(data))
})
