// Catch-up pages (mesh/sync.ts syncPage): every manifest above the asker's watermarks, for every
// origin including unknown ones, in pages bounded in count and bytes, none lost between pages.
import test from 'ava'
import { PAGE_BYTES, PAGE_MANIFESTS, syncPage } from '../mesh/sync.ts'
import type { ManifestLog } from '../store/manifests.ts'
import { openMeshStore } from './helpers/mesh-store.ts'

/** Inserts manifests of `origin` with these seqs, each naming the one before it in `chain` (default:
 *  `seqs` itself) as prev. */
function fill (log: ManifestLog, origin: string, seqs: number[], bytes = 16, chain = seqs): void {
  for (const seq of seqs) {
    const prev = chain[chain.indexOf(seq) - 1] ?? 0
    const envelope = new Uint8Array(bytes)
    new DataView(envelope.buffer).setUint32(0, seq)
    envelope[4] = origin.charCodeAt(0)
    log.insert({ origin, seq, prev, kind: 'publish', repo: 'npm', name: `p${seq}`, version: '1.0.0', timestamp: seq, envelope })
  }
}

/** Pages until `more` is false, moving the watermarks as an asker applying each page would. */
function pageAll (log: ManifestLog, have: Record<string, number>): { pages: Uint8Array[][], got: string[] } {
  const pages: Uint8Array[][] = []
  const got: string[] = []
  for (;;) {
    const { envelopes, more } = syncPage(log, have)
    pages.push(envelopes)
    for (const e of envelopes) {
      const seq = new DataView(e.buffer, e.byteOffset).getUint32(0)
      const origin = String.fromCharCode(e[4])
      got.push(`${origin}${seq}`)
      have[origin] = Math.max(have[origin] ?? 0, seq)
    }
    if (!more) return { pages, got }
    if (pages.length > 100) throw new Error('no end')
  }
}

test('pages hold at most PAGE_MANIFESTS, include origins the asker never heard of, and lose nothing', async t => {
  const s = await openMeshStore(t)
  const seqs = (from: number, to: number, step = 1) => Array.from({ length: Math.floor((to - from) / step) + 1 }, (_, i) => from + i * step)
  fill(s.manifests, 'A', seqs(1, 700))
  fill(s.manifests, 'B', seqs(2, 600, 2)) // gaps in seqs are normal
  const { pages, got } = pageAll(s.manifests, { A: 100 })
  t.true(pages.every(p => p.length <= PAGE_MANIFESTS))
  t.true(pages.length >= 2)
  const want = [...seqs(101, 700).map(n => `A${n}`), ...seqs(2, 600, 2).map(n => `B${n}`)]
  t.deepEqual(got.sort(), want.sort())
  t.deepEqual(syncPage(s.manifests, { A: 700, B: 600 }), { envelopes: [], more: false })
})

test('pages stay under PAGE_BYTES (a single larger envelope still travels alone)', async t => {
  const s = await openMeshStore(t)
  fill(s.manifests, 'A', [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 1024 * 1024)
  const { pages, got } = pageAll(s.manifests, {})
  t.true(pages.every(p => p.reduce((n, e) => n + e.byteLength, 0) <= PAGE_BYTES))
  t.is(got.length, 10)
})

test('a manifest held ahead of a missing one leaves a hole: the watermark stops below it, and catch-up from there fills it', async t => {
  const s = await openMeshStore(t)
  const chain = [3, 5, 9, 12, 20] // the origin's seqs (gaps: rows it applied from others)
  fill(s.manifests, 'A', [3, 5], 16, chain)
  t.is(s.manifests.watermark('A'), 5)
  fill(s.manifests, 'A', [12, 20], 16, chain) // gossip delivered these; 9 was lost
  t.is(s.manifests.watermark('A'), 5, 'the hole at 9 holds the watermark')
  t.is(s.manifests.latest('A'), 20)
  t.deepEqual(s.manifests.watermarks(), new Map([['A', 5]]))
  t.deepEqual(s.manifests.heads(), new Map([['A', 20]]))

  // A peer holding the whole chain answers from the contiguous watermark: 9 comes first.
  const peer = await openMeshStore(t)
  fill(peer.manifests, 'A', chain)
  const page = syncPage(peer.manifests, Object.fromEntries(s.manifests.watermarks()))
  t.deepEqual(page.envelopes.map(e => new DataView(e.buffer, e.byteOffset).getUint32(0)), [9, 12, 20])

  fill(s.manifests, 'A', [9], 16, chain)
  t.is(s.manifests.watermark('A'), 20, 'filling the hole joins the chain up to the head')
  t.false(s.manifests.insert({ origin: 'A', seq: 9, prev: 5, kind: 'publish', repo: 'npm', name: 'p9', version: '1.0.0', timestamp: 9, envelope: new Uint8Array(16) }))
  t.is(s.manifests.watermark('A'), 20)
})
