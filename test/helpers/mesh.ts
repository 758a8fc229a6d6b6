// Mesh test helpers: identities created before start (so peers can allowlist each other), admin
// GETs on /-/mesh/*, raw npm publishes and packument reads.
import type { ExecutionContext } from 'ava'
import { akmesh, makeTempDir, type TestNode } from './node.ts'
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
