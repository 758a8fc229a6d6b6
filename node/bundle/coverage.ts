// What an import may assume this node holds, per origin: the base an incremental bundle continues
// (checkBase, before applying) and what the exporter held that the bundle did not bring
// (coverageWarnings, after). Manifests this node refused (refusals.ts) are not in its manifest
// log, so its watermark stops at the first of them; both checks follow the origin's chain through
// them as long as they are still refused. One this node would now accept (the operator trusted
// the origin since) is a real hole again: the bundle that carried it must be imported again.
import type { DB } from '../../store/db.ts'
import { conflict } from '../../store/errors.ts'
import type { ManifestLog } from '../../store/manifests.ts'
import type { BundleIndex } from './format.ts'
import { linksAbove } from './held.ts'
import type { RefusalRecord } from './refusals.ts'

export interface CoverageContext {
  db: DB
  manifests: ManifestLog
  refusals: RefusalRecord
  /** Does this node still refuse this origin's manifests of this repository? */
  refuses: (origin: string, repo: string) => boolean
}

/** The end of `origin`'s chain from 0 through manifests held and manifests still refused;
 *  `readmit`: the bundles of refused manifests on the way that this node would now accept. */
export function reach (ctx: CoverageContext, origin: string): { seq: number, readmit: string[] } {
  let seq = ctx.manifests.watermark(origin)
  const entry = ctx.refusals[origin]
  if (entry == null) return { seq, readmit: [] }
  const held = new Map(linksAbove(ctx.db, origin, seq).map(m => [m.prev, m.seq]))
  const refused = new Map(entry.links.map(([s, prev, repo]) => [prev, { seq: s, repo }]))
  for (;;) {
    const next = held.get(seq)
    if (next != null) { seq = next; continue }
    const r = refused.get(seq)
    if (r == null) return { seq, readmit: [] }
    if (!ctx.refuses(origin, r.repo)) return { seq, readmit: entry.bundles }
    seq = r.seq
  }
}

/** An incremental bundle continues from what the previous export held: refuse it where that is
 *  missing (import the earlier bundle first), rather than leave a hole to be found later. */
export function checkBase (index: BundleIndex, ctx: CoverageContext): void {
  const missing = Object.entries(index.base)
    .filter(([origin, seq]) => seq > 0 && ctx.manifests.watermark(origin) < seq)
    .map(([origin, need]) => ({ origin, need, ...reach(ctx, origin) }))
    .filter(m => m.seq < m.need)
  if (missing.length === 0) return
  const { origin, need, seq, readmit } = missing[0]
  const again = readmit.length > 0
    ? ` This node refused manifests of ${origin} in bundle ${readmit.join(', ')} and would now accept them: import ${readmit.length > 1 ? 'those bundles' : 'that bundle'} again first.`
    : ''
  throw conflict(`this bundle continues an earlier export to "${index.selection.destination ?? '?'}": it needs every manifest of ${origin} up to seq ${need}, ` +
    `but this node holds them only up to ${seq}${missing.length > 1 ? ` (and ${missing.length - 1} more origin(s))` : ''}.${again} ` +
    'Import the earlier bundle first, or pass --allow-gaps')
}

/** The exporter signs, per origin, the watermark it held. Where this node, with the bundle applied,
 *  still holds an origin only up to a lower seq, some of the exporter's manifests did not come
 *  (a --repo or --origin selection leaves others out; or someone held a newer bundle back). */
export function coverageWarnings (index: BundleIndex, ctx: CoverageContext): string[] {
  const carried = new Map<string, number>()
  for (const m of index.manifests) carried.set(m.origin, Math.max(carried.get(m.origin) ?? 0, m.seq))
  const out: string[] = []
  for (const [origin, held] of Object.entries(index.watermarks)) {
    const here = reach(ctx, origin).seq
    if (here >= held) continue
    const selected = index.selection.repos != null ? ` (the export selected only repositories ${index.selection.repos.join(', ')})` : ''
    out.push(`the bundle covers ${origin} only up to seq ${Math.max(carried.get(origin) ?? 0, index.base[origin] ?? 0)}, but its exporter held it up to seq ${held}: ` +
      `this node holds it up to seq ${here}${selected}`)
  }
  return out
}
