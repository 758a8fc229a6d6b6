// Catch-up pages (mesh/sync.ts syncPage): every manifest above the asker's watermarks, for every
// origin including unknown ones, in pages bounded in count and bytes, none lost between pages.
import test from 'ava'
import { PAGE_BYTES, PAGE_MANIFESTS, syncPage } from '../mesh/sync.ts'
import type { ManifestLog } from '../store/manifests.ts'
import { openMeshStore } from './helpers/mesh-store.ts'

function fill (log: ManifestLog, origin: string, seqs: number[], bytes = 16): void {
  for (const seq of seqs) {
    const envelope = new Uint8Array(bytes)
    new DataView(envelope.buffer).setUint32(0, seq)
    envelope[4] = origin.charCodeAt(0)
    log.insert({ origin, seq, kind: 'publish', repo: 'npm', name: `p${seq}`, version: '1.0.0', timestamp: seq, envelope })
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
