// Manifests a bundle import refused because this node does not accept their origin (not a member,
// revoked, outside its grants, expired): `<data>/bundle-refusals.json`. They are not stored in
// the manifest log (so trusting the origin later and importing the same bundle again applies
// them), which leaves a hole in the origin's watermark. This record lets the base and coverage
// checks (coverage.ts) tell a hole of manifests this node refused from one of manifests it never
// saw. A JSON file, as bundle-exports.json is: an operator's record, not the index.
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { writeFileAtomic } from '../../config/atomic-file.ts'
import type { ManifestRecord } from '../../store/manifests.ts'

export const REFUSALS_FILE = 'bundle-refusals.json'

/** A manifest of the bundle this node did not accept, and why (the report's entry). */
export interface RefusedManifest extends Pick<ManifestRecord, 'origin' | 'seq' | 'prev' | 'kind' | 'repo' | 'name' | 'version'> {
  /** The membership refusal (mesh/membership.ts): not-allowed, outside-grants, ... */
  reason: string
  message: string
  /** The manifest's block in the bundle. */
  cid: string
}

/** Per origin: the refused manifests' chain links [seq, prev, repo] and the bundles they came in. */
export type RefusalRecord = Record<string, { links: Array<[number, number, string]>, bundles: string[] }>

export async function readRefusals (dataDir: string): Promise<RefusalRecord> {
  try {
    return JSON.parse(await readFile(join(dataDir, REFUSALS_FILE), 'utf8')) as RefusalRecord
  } catch (err: any) {
    if (err?.code === 'ENOENT') return {}
    throw new Error(`${join(dataDir, REFUSALS_FILE)}: unreadable (${err?.message}); move it away (it only explains holes left by refused manifests)`)
  }
}

/** Adds a bundle's refusals and drops every link this node now holds (applied since). */
export async function recordRefusals (dataDir: string, bundle: string, refused: RefusedManifest[], held: (origin: string, seq: number) => boolean): Promise<RefusalRecord> {
  const record = await readRefusals(dataDir)
  const before = JSON.stringify(record)
  for (const r of refused) {
    const entry = record[r.origin] ??= { links: [], bundles: [] }
    if (!entry.links.some(([seq]) => seq === r.seq)) entry.links.push([r.seq, r.prev, r.repo])
    if (!entry.bundles.includes(bundle)) entry.bundles.push(bundle)
  }
  for (const [origin, entry] of Object.entries(record)) {
    entry.links = entry.links.filter(([seq]) => !held(origin, seq)).sort((x, y) => x[0] - y[0])
    if (entry.links.length === 0) delete record[origin]
  }
  if (JSON.stringify(record) !== before) await writeFileAtomic(join(dataDir, REFUSALS_FILE), JSON.stringify(record, null, 2) + '\n')
  return record
}
