// An inventory: what a node holds (manifests by origin and seq, blobs whose bytes are here), written
// by `akmesh inventory` and carried to another site, whose `akmesh export --lacks` then bundles
// exactly what this node lacks. JSON, so an operator can read it.
import { readFile } from 'node:fs/promises'
import type { DB } from '../../store/db.ts'
import { badRequest } from '../../store/errors.ts'
import { cacheOrigin } from '../../store/cache-origin.ts'
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
  /** Per repository holding cached copies of upstream artifacts (remote repositories): how many,
   *  from which upstreams, and how many of them have their bytes here (evicted ones do not, so an
   *  export --lacks sends them). Informational: export reads only manifests and blobs. */
  cached?: Array<{ repo: string, upstreams: string[], artifacts: number, held: number }>
}

export function buildInventory (db: DB, who: { mesh: string, peerId: string }): Inventory {
  return db.transaction((): Inventory => {
    const manifests: Record<string, number[]> = {}
    for (const m of heldManifests(db)) (manifests[m.origin] ??= []).push(m.seq)
    return { format: INVENTORY_FORMAT, v: 1, mesh: who.mesh, peerId: who.peerId, createdAt: Date.now(), manifests, blobs: presentBlobs(db), cached: cachedSummary(db) }
  })()
}

function cachedSummary (db: DB): NonNullable<Inventory['cached']> {
  const byRepo = new Map<string, { upstreams: Set<string>, artifacts: number, held: number }>()
  const rows = db.prepare<[], { repo: string, metadata: string, absent: number }>(`SELECT a.repo, a.metadata,
    (SELECT COUNT(*) FROM files f JOIN blobs b ON b.cid = f.cid WHERE f.artifact_id = a.id AND b.present = 0) AS absent FROM artifacts a ORDER BY a.repo`)
  for (const r of rows.iterate()) {
    const origin = cacheOrigin(JSON.parse(r.metadata) as Record<string, unknown>)
    if (origin == null) continue
    const e = byRepo.get(r.repo) ?? { upstreams: new Set<string>(), artifacts: 0, held: 0 }
    e.upstreams.add(origin.upstream)
    e.artifacts++
    if (r.absent === 0) e.held++
    byRepo.set(r.repo, e)
  }
  return [...byRepo].map(([repo, e]) => ({ repo, upstreams: [...e.upstreams].sort(), artifacts: e.artifacts, held: e.held }))
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
