// Partial trust: a bundle (or an import request) may carry manifests of origins this node does not
// accept. Those are refused one by one and reported; anything else wrong with a manifest (bad
// signature, undecodable, another mesh, dated ahead) is damage and fails the whole import.
import { ManifestError, openEnvelope, type Manifest } from '../../mesh/manifest.ts'
import type { MembershipCheck } from '../../mesh/membership.ts'

export interface Opened { change: Manifest, refusal?: { reason: string, message: string } }

/** Verifies an envelope; when only membership refuses it, returns it verified with the refusal.
 *  Throws ManifestError for any other failure. */
export async function openOrRefuse (envelope: Uint8Array, opts: { mesh: string, membership: Pick<MembershipCheck, 'admit'> }): Promise<Opened> {
  try {
    return { change: await openEnvelope(envelope, { mesh: opts.mesh, admit: (o, repo, signedAt) => opts.membership.admit(o, repo, { signedAt }) }) }
  } catch (err) {
    if (!(err instanceof ManifestError)) throw err
    // Membership is checked before the signature: open it again admitting every origin, so a
    // refused manifest is still verified (a forged one fails the import, not just itself).
    const change = await openEnvelope(envelope, { mesh: opts.mesh, admit: () => undefined })
    return { change, refusal: { reason: err.reason, message: err.message } }
  }
}

/** One line per origin: "<origin> 2 (not-allowed)". */
export function refusalSummary (refused: Array<{ origin: string, reason: string }>): string {
  const byOrigin = new Map<string, { n: number, reasons: Set<string> }>()
  for (const r of refused) {
    const o = byOrigin.get(r.origin) ?? { n: 0, reasons: new Set() }
    o.n++
    o.reasons.add(r.reason)
    byOrigin.set(r.origin, o)
  }
  return [...byOrigin].map(([origin, o]) => `${origin} ${o.n} (${[...o.reasons].join(', ')})`).join('; ')
}

export const originCount = (refused: Array<{ origin: string }>): number => new Set(refused.map(r => r.origin)).size
