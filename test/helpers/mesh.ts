// Mesh test helpers: identities created before start (so peers can allowlist each other), admin
// GETs on /-/mesh/*, raw npm publishes and packument reads.
import type { ExecutionContext } from 'ava'
import { akmesh, makeTempDir, ROOT, type TestNode } from './node.ts'
import { makeTarball, publishBody } from './npm-client.ts'

export interface Identity { dataDir: string, peerId: string }

/** A data dir with its identity created (`akmesh id`). */
export async function identity (t: ExecutionContext): Promise<Identity> {
  const dataDir = await makeTempDir(t, 'akmesh-mesh-')
  const r = await akmesh(['id', '--data', dataDir, '--json'])
  if (r.code !== 0) throw new Error(r.stderr)
  return { dataDir, peerId: JSON.parse(r.stdout).peerId }
}

export async function adminGet<T = any> (node: TestNode, path: string): Promise<T> {
  const res = await fetch(`${node.url}${path}`, { headers: { authorization: `Bearer ${node.adminToken}` } })
  if (res.status !== 200) throw new Error(`GET ${path}: ${res.status} ${await res.text()}`)
  return await res.json() as T
}

export const connectedTo = async (node: TestNode, peerId: string): Promise<boolean> =>
  (await adminGet<{ peers: Array<{ peerId: string }> }>(node, '/-/mesh/peers')).peers.some(p => p.peerId === peerId)

/** Publishes name@version through the npm PUT (what `npm publish` sends); returns the tarball. */
export async function rawPublish (node: TestNode, root: string, name: string, version: string, extra: Record<string, unknown> = {}): Promise<Buffer> {
  const tgz = await makeTarball(root, { name, version, ...extra })
  const res = await fetch(`${node.url}/npm/${encodeURIComponent(name).replace(/^%40/, '@')}`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${node.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify(publishBody(name, version, tgz))
  })
  if (res.status !== 201) throw new Error(`publish ${name}@${version}: ${res.status} ${await res.text()}`)
  return tgz
}

/** The packument, or undefined when the package is unknown. */
export async function packument (node: TestNode, name: string): Promise<any> {
  const res = await fetch(`${node.url}/npm/${encodeURIComponent(name).replace(/^%40/, '@')}`, { headers: { authorization: `Bearer ${node.adminToken}` } })
  if (res.status === 404) return undefined
  if (res.status !== 200) throw new Error(`GET packument ${name}: ${res.status} ${await res.text()}`)
  return await res.json()
}

export const hasVersion = async (node: TestNode, name: string, version: string): Promise<boolean> =>
  (await packument(node, name))?.versions?.[version] != null

/** Runs a read-only query on a node's index in a child process. In-process better-sqlite3
 *  handles in a test worker that also drives libp2p nodes have aborted the worker at exit
 *  (Database::~Database during environment teardown), which ava counts as a failure. */
export async function queryIndex (dataDir: string, sql: string): Promise<any[]> {
  const { execFile } = await import('node:child_process')
  const { join } = await import('node:path')
  const script = `const { default: Database } = await import(${JSON.stringify(join(ROOT, 'node_modules/better-sqlite3/lib/index.js'))})
    const db = new Database(${JSON.stringify(join(dataDir, 'akmesh.db'))}, { readonly: true, fileMustExist: true })
    db.pragma('busy_timeout = 5000')
    process.stdout.write(JSON.stringify(db.prepare(${JSON.stringify(sql)}).all()))
    db.close()`
  const { writeFile, rm } = await import('node:fs/promises')
  const { tmpdir } = await import('node:os')
  const file = join(tmpdir(), `akmesh-query-${process.pid}-${Math.random().toString(36).slice(2)}.mjs`)
  await writeFile(file, script)
  return await new Promise((resolve, reject) => {
    execFile(process.execPath, [file], (err, stdout, stderr) => {
      void rm(file, { force: true })
      try { resolve(JSON.parse(stdout)) } catch { reject(err ?? new Error(`query failed: ${stderr}`)) }
    })
  })
}
