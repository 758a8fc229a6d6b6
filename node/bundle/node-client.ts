// `akmesh import --url`: the running node's side of an import, over POST /-/mesh/import
// (import-route.ts). First a check (`check=1`, with the bundle's member certificates): which
// manifests does the node refuse? Those are set aside before any blob is committed. Then the
// manifests to apply.
import type { ManifestOutcome } from './import.ts'
import type { Manifest } from '../../mesh/manifest.ts'
import { encodeFrames } from './frames.ts'
import type { NodeRefusal } from './import-route.ts'
import type { StagedBundle } from './stage.ts'

interface NodeAt { url: string, token: string }

async function post (node: NodeAt, query: Record<string, string>, frames: Uint8Array[], signal?: AbortSignal): Promise<{ outcomes?: string[], refused?: NodeRefusal[] }> {
  const url = new URL('/-/mesh/import', node.url)
  for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v)
  const res = await fetch(url, {
    method: 'POST',
    headers: { authorization: `Bearer ${node.token}`, 'content-type': 'application/octet-stream' },
    body: encodeFrames(frames),
    signal
  })
  const body = await res.json().catch(() => ({})) as { outcomes?: string[], refused?: NodeRefusal[], error?: string }
  if (res.status !== 200) throw new Error(`the node at ${node.url} refused the manifests: ${res.status} ${body.error ?? ''}`)
  return body
}

/** Moves the manifests the node refuses from `staged.items` to `staged.refused`. */
export async function refusedByNode (node: NodeAt, staged: StagedBundle, signal?: AbortSignal): Promise<void> {
  if (staged.items.length === 0) return
  const certificates = staged.index.certificates ?? []
  const body = await post(node, { check: '1', certificates: String(certificates.length) }, [...certificates, ...staged.items.map(i => i.envelope)], signal)
  const refused = new Map((body.refused ?? []).map(r => [r.index, r]))
  if (refused.size === 0) return
  const kept: StagedBundle['items'] = []
  staged.items.forEach((item, i) => {
    const r = refused.get(i)
    if (r == null) { kept.push(item); return }
    const { origin, seq, prev, kind, repo, name, version } = item.change
    staged.refused.push({ origin, seq, prev, kind, repo, name, version, reason: r.reason, message: `${r.message} (the node at ${node.url})`, cid: item.cid })
  })
  staged.items = kept
}

/** Sends the bundle's revocations to the running node (it verifies, keeps and gossips them); one it
 *  refuses as not of this mesh (400) is left for its log. */
export async function postRevocations (node: NodeAt, revocations: Uint8Array[], signal?: AbortSignal): Promise<void> {
  for (const r of revocations) {
    const res = await fetch(new URL('/-/mesh/revocations', node.url), {
      method: 'POST', headers: { authorization: `Bearer ${node.token}`, 'content-type': 'application/octet-stream' }, body: r, signal
    })
    if (res.status !== 200 && res.status !== 400) throw new Error(`the node at ${node.url} did not take a revocation of the bundle: ${res.status} ${await res.text()}`)
  }
}

export async function applyThroughNode (node: NodeAt, items: Array<{ change: Manifest, envelope: Uint8Array }>, signal?: AbortSignal): Promise<Array<{ outcome: ManifestOutcome, reason?: string }>> {
  const body = await post(node, {}, items.map(i => i.envelope), signal)
  if (!Array.isArray(body.outcomes)) throw new Error(`the node at ${node.url} answered no outcomes`)
  const refused = new Map((body.refused ?? []).map(r => [r.index, r]))
  return body.outcomes.map((o, i) => o === 'new'
    ? { outcome: 'added' as const }
    : o === 'held'
      ? { outcome: 'skipped' as const }
      : { outcome: 'not-applied' as const, reason: refused.has(i) ? `refused by the node (${refused.get(i)?.reason}): ${refused.get(i)?.message}` : 'rejected by the node (see its log)' })
}
