// Re-hashes every blob the index knows and reports the damaged or missing ones, and lists orphan
// files (blob files without a present row: crash leftovers the node sweeps, store/orphans.ts).
// Orphans are reported apart from problems: nothing the index promises is affected by them.
import { createReadStream } from 'node:fs'
import type { FileBlobStore } from './blobs.ts'
import { MultiHasher } from './hash.ts'
import { findOrphans } from './orphans.ts'

export interface VerifyProblem { cid: string, problem: 'missing' | 'damaged', detail: string }
export interface VerifyOrphan { cid: string, size: number, changedAt: number }
export interface VerifyReport {
  checked: number
  bytes: number
  problems: VerifyProblem[]
  /** Blob files no present row describes (listed after the hash pass, so a commit in flight
   *  beside a running node has had time to record its row). */
  orphans: VerifyOrphan[]
  orphanBytes: number
}

export async function verifyStore (store: FileBlobStore, opts: { signal?: AbortSignal, onBlob?: (done: number, total: number) => void } = {}): Promise<VerifyReport> {
  const blobs = store.allBlobs()
  const report: VerifyReport = { checked: 0, bytes: 0, problems: [], orphans: [], orphanBytes: 0 }
  for (const blob of blobs) {
    opts.signal?.throwIfAborted()
    const hasher = await MultiHasher.create()
    try {
      for await (const piece of createReadStream(store.pathOf(blob.cid), { highWaterMark: 1024 * 1024, signal: opts.signal })) {
        hasher.update(piece as Buffer)
        await hasher.settle()
      }
    } catch (e: any) {
      hasher.abandon()
      if (e.code === 'ENOENT') { report.problems.push({ cid: blob.cid, problem: 'missing', detail: 'file is missing' }); report.checked++; continue }
      throw e
    }
    const d = await hasher.digest()
    const want = store.chunkHashes(blob.cid)
    let detail = ''
    if (d.cid !== blob.cid) detail = `content hashes to ${d.cid}`
    else if (d.size !== blob.size) detail = `size ${d.size}, index says ${blob.size}`
    else if (want.length !== d.chunks.length || want.some((h, i) => Buffer.compare(h, d.chunks[i]) !== 0)) detail = 'chunk table does not match content'
    if (detail !== '') report.problems.push({ cid: blob.cid, problem: 'damaged', detail })
    report.checked++
    report.bytes += d.size
    opts.onBlob?.(report.checked, blobs.length)
  }
  for (const o of await findOrphans(store, { signal: opts.signal })) {
    report.orphans.push({ cid: o.cid, size: o.size, changedAt: o.changedAt })
    report.orphanBytes += o.size
  }
  return report
}
