// Air-gap bundle helpers: run `akmesh export|import|inventory` against test nodes, read a bundle's
// index and block offsets (with @ipld/car, in this process: no SQLite here), and wait until a
// node has signed every local change (export reads the manifest log).
import { CarIndexer } from '@ipld/car/indexer'
import { CarReader } from '@ipld/car/reader'
import { CarWriter } from '@ipld/car/writer'
import * as dagCbor from '@ipld/dag-cbor'
import type { CID } from 'multiformats/cid'
import { readFile, writeFile } from 'node:fs/promises'
import { blake3Cid } from '../../node/bundle/format.ts'
import { queryIndex } from './mesh.ts'
import { akmesh, waitFor, type TestNode } from './node.ts'

export interface Run { code: number, stdout: string, stderr: string }

export async function exportBundle (dataDir: string, file: string, args: string[] = []): Promise<Run> {
  return await akmesh(['export', file, '--data', dataDir, ...args])
}

/** Imports into a data dir; with `node`, through that running node (--url, admin token). */
export async function importBundle (dataDir: string, file: string, opts: { node?: TestNode, args?: string[] } = {}): Promise<Run> {
  const via = opts.node != null ? ['--url', opts.node.url, '--token', opts.node.adminToken] : []
  return await akmesh(['import', file, '--data', dataDir, ...via, ...(opts.args ?? [])])
}

export interface InventoryFile { mesh: string, peerId: string, manifests: Record<string, number[]>, blobs: string[] }

export async function inventory (dataDir: string): Promise<InventoryFile> {
  const r = await akmesh(['inventory', '--data', dataDir])
  if (r.code !== 0) throw new Error(`akmesh inventory: ${r.stderr}`)
  return JSON.parse(r.stdout) as InventoryFile
}

/** What two inventories hold, without who wrote them or when. */
export const holdings = (i: InventoryFile) => ({ manifests: i.manifests, blobs: i.blobs })

export interface IndexView {
  mesh: string
  exporter: string
  exporterName?: string
  createdAt: number
  watermarks: Record<string, number>
  selection: { mode: string, destination?: string }
  base: Record<string, number>
  manifests: Array<{ origin: string, seq: number }>
  blobs: Array<{ cid: string, size: number }>
  absent: string[]
}

/** The index block of a (small, single-file) bundle. */
export async function bundleIndex (file: string): Promise<IndexView> {
  const car = await CarReader.fromBytes(await readFile(file))
  const [root] = await car.getRoots()
  const block = await car.get(root)
  if (block == null) throw new Error(`${file}: root block missing`)
  // The root block is the index signed by its exporter: { payload: index, signature }.
  const { payload } = dagCbor.decode<{ payload: Uint8Array }>(block.bytes)
  const x = dagCbor.decode<IndexView & { manifests: Array<{ origin: string, seq: number, cid: unknown }> }>(payload)
  return { ...x, manifests: x.manifests.map(m => ({ origin: m.origin, seq: m.seq })) }
}

/** Offsets of every block section in a bundle (where its length prefix starts). */
export async function blockOffsets (file: string): Promise<Array<{ cid: string, offset: number, blockOffset: number, blockLength: number }>> {
  const indexer = await CarIndexer.fromBytes(await readFile(file))
  const out = []
  for await (const b of indexer) out.push({ cid: b.cid.toString(), offset: b.offset, blockOffset: b.blockOffset, blockLength: b.blockLength })
  return out
}

/** Waits until the node has signed every local change into its manifest log. */
export async function allSigned (node: TestNode): Promise<void> {
  await waitFor(async () => {
    const [r] = await queryIndex(node.dataDir, `SELECT (SELECT COUNT(*) FROM changes WHERE origin IS NULL) AS local,
      (SELECT COUNT(*) FROM manifests WHERE origin = '${node.peerId}') AS signed`) as Array<{ local: number, signed: number }>
    return r.local > 0 && r.signed >= r.local
  }, `${node.peerId} to sign its changes`)
}

/** Live artifacts (repo name@version) and present blobs of a node's index. */
export async function visible (dataDir: string): Promise<{ artifacts: string[], present: number }> {
  const artifacts = (await queryIndex(dataDir, "SELECT repo || ' ' || name || '@' || version AS a FROM artifacts ORDER BY a") as Array<{ a: string }>).map(r => r.a)
  const [{ n }] = await queryIndex(dataDir, 'SELECT COUNT(*) AS n FROM blobs WHERE present = 1') as Array<{ n: number }>
  return { artifacts, present: n }
}

export interface BundleBlocks {
  /** The signed index's payload, decoded (CIDs as CID objects), and its signature. */
  index: any
  signature: Uint8Array
  /** Every block after the root, in order, with what it is. */
  blocks: Array<{ cid: CID, bytes: Uint8Array, manifest?: { origin: string, seq: number }, blob?: string }>
}

/** Reads a (small, single-file) bundle's blocks, labelled by what the index says they are. */
export async function readBundle (file: string): Promise<BundleBlocks> {
  const car = await CarReader.fromBytes(await readFile(file))
  const [root] = await car.getRoots()
  const all = []
  for await (const b of car.blocks()) all.push(b)
  if (!all[0].cid.equals(root)) throw new Error(`${file}: the first block is not the root`)
  const { payload, signature } = dagCbor.decode<{ payload: Uint8Array, signature: Uint8Array }>(all[0].bytes)
  const index = dagCbor.decode<any>(payload)
  const labels: Array<{ manifest?: { origin: string, seq: number }, blob?: string }> = [
    ...index.manifests.map((m: { origin: string, seq: number }) => ({ manifest: { origin: m.origin, seq: m.seq } })),
    ...index.blobs.flatMap((b: { cid: string, size: number }) => Array.from({ length: Math.max(1, Math.ceil(b.size / (1024 * 1024))) }, () => ({ blob: b.cid })))
  ]
  return { index, signature, blocks: all.slice(1).map((b, i) => ({ cid: b.cid, bytes: b.bytes, ...labels[i] })) }
}

/** Writes a bundle whose root block is `root` (its CID computed as export does) and then `blocks`. */
export async function writeBundle (file: string, root: Uint8Array, blocks: Array<{ cid: CID, bytes: Uint8Array }>): Promise<void> {
  const rootCid = await blake3Cid(dagCbor.code, root)
  const { writer, out } = CarWriter.create([rootCid])
  const pieces: Uint8Array[] = []
  const drained = (async () => { for await (const p of out) pieces.push(p) })()
  await writer.put({ cid: rootCid, bytes: root })
  for (const b of blocks) await writer.put(b)
  await writer.close()
  await drained
  await writeFile(file, Buffer.concat(pieces))
}
