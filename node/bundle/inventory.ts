// An inventory: what a node holds (manifests by origin and seq, blobs whose bytes are here), written
// by `akmesh inventory` and carried to another site, whose `akmesh export --lacks` then bundles
// exactly what this node lacks. JSON, so an operator can read it.
import { readFile } from 'node:fs/promises'
import type { DB } from '../../store/db.ts'
import { badRequest } from '../../store/errors.ts'
import { heldManifests, presentBlobs } from './held.ts'

export const INVENTORY_FORMAT = 'akmesh-inventory'

export interface Inventory {
  format: typeof INVENTORY_FORMAT
  v: 1
  mesh: string
  peerId: string
  createdAt: number
  /** Per origin, every seq held, ascending. */
  manifests: Record<string, number[]>
  /** Blobs whose bytes are here, sorted. */
  blobs: string[]
}

export function buildInventory (db: DB, who: { mesh: string, peerId: string }): Inventory {
  return db.transaction((): Inventory => {
    const manifests: Record<string, number[]> = {}
    for (const m of heldManifests(db)) (manifests[m.origin] ??= []).push(m.seq)
    return { format: INVENTORY_FORMAT, v: 1, mesh: who.mesh, peerId: who.peerId, createdAt: Date.now(), manifests, blobs: presentBlobs(db) }
  })()
}

export async function readInventory (file: string): Promise<Inventory> {
  let x: any
  try { x = JSON.parse(await readFile(file, 'utf8')) } catch (err) {
    throw badRequest(`${file}: not an inventory file (${(err as Error).message})`)
  }
  if (x?.format !== INVENTORY_FORMAT || x.v !== 1 || typeof x.mesh !== 'string' || x.manifests == null || typeof x.manifests !== 'object' || !Array.isArray(x.blobs)) {
    throw badRequest(`${file}: not an ${INVENTORY_FORMAT} v1 file (write one with akmesh inventory)`)
  }
  for (const [origin, seqs] of Object.entries(x.manifests)) {
    if (!Array.isArray(seqs) || !seqs.every(Number.isSafeInteger)) throw badRequest(`${file}: manifests.${origin}: expected a list of seqs`)
  }
  return x as Inventory
}
