// Blob files without a present index row: what a crash between a commit's rename and its row
// leaves behind (store/blobs.ts commitTemp), or a delete that ended before unlinking. Nothing
// serves them. `verify` reports them; the node sweeps them a grace period after they appeared.
//
// Another process may be committing beside us (`akmesh import --url` commits blobs next to the
// running node), so a file is removed only after three checks: its inode changed no later than
// the grace period ago (a rename sets ctime, so a fresh commit looks young whatever its mtime),
// no present row names it inside a write transaction (a committer's row insert waits for it), and
// the file moved aside is still the inode that was checked (else it is put back).
import { lstat, readdir, rm } from 'node:fs/promises'
import { lstatSync, renameSync } from 'node:fs'
import { randomUUID } from 'node:crypto'
import { join } from 'node:path'
import type { FileBlobStore } from './blobs.ts'
import type { DB } from './db.ts'
import { parseBlobCid } from './hash.ts'

export interface OrphanFile { cid: string, path: string, size: number, ino: number, changedAt: number }

/** Blob files in `<data>/blobs` that no present row describes, oldest change first. Files whose
 *  name is not a blob CID in its right folder are not the store's and are left alone. */
export async function findOrphans (store: FileBlobStore, opts: { signal?: AbortSignal } = {}): Promise<OrphanFile[]> {
  const recorded = (cid: string): boolean => store.describe(cid)?.present === true
  const out: OrphanFile[] = []
  let dirs: string[]
  try { dirs = await readdir(store.blobDir) } catch { return [] }
  for (const sub of dirs.sort()) {
    opts.signal?.throwIfAborted()
    let names: string[]
    try { names = await readdir(join(store.blobDir, sub)) } catch { continue }
    for (const name of names) {
      if (parseBlobCid(name) == null || name.slice(-2) !== sub || recorded(name)) continue
      const path = join(store.blobDir, sub, name)
      const s = await lstat(path).catch(() => undefined)
      if (s == null || !s.isFile()) continue
      out.push({ cid: name, path, size: s.size, ino: s.ino, changedAt: Math.max(s.mtimeMs, s.ctimeMs) })
    }
    // A commit may have recorded its row while we listed: only what still has none counts.
  }
  return out.filter(o => !recorded(o.cid)).sort((a, b) => a.changedAt - b.changedAt)
}

/** Moves `path` into the store's temp folder if it is still inode `ino`, changed no later than
 *  `olderThan`, and `stillGarbage()` (called inside an IMMEDIATE transaction, which `apply` may
 *  use to delete rows) holds. Returns the moved file's path (unlink it after the transaction),
 *  or undefined if anything changed. Synchronous inside the transaction: nothing else of this
 *  process runs between the checks and the move. */
export function moveAsideIfGarbage (db: DB, store: FileBlobStore, f: { path: string, ino: number }, olderThan: number,
  stillGarbage: () => boolean, apply: () => void = () => {}): string | undefined {
  const aside = join(store.tempDir, `gc-${randomUUID()}`)
  return db.transaction((): string | undefined => {
    let s
    try { s = lstatSync(f.path) } catch { return undefined }
    if (s.ino !== f.ino || Math.max(s.mtimeMs, s.ctimeMs) > olderThan || !stillGarbage()) return undefined
    renameSync(f.path, aside)
    // A commit that renamed its file over the path between lstat and our rename: put it back.
    if (lstatSync(aside).ino !== f.ino) { renameSync(aside, f.path); return undefined }
    try { apply() } catch (err) { renameSync(aside, f.path); throw err }
    return aside
  }).immediate()
}

export interface SweepResult { count: number, bytes: number, files: Array<{ cid: string, size: number }> }

/** Deletes orphan files that changed no later than `graceMs` ago (all of them with `dryRun`
 *  false; with it, only lists them). */
export async function sweepOrphans (store: FileBlobStore, db: DB, opts: { graceMs: number, dryRun?: boolean, signal?: AbortSignal, now?: number }): Promise<SweepResult> {
  const olderThan = (opts.now ?? Date.now()) - opts.graceMs
  const result: SweepResult = { count: 0, bytes: 0, files: [] }
  for (const f of await findOrphans(store, { signal: opts.signal })) {
    opts.signal?.throwIfAborted()
    if (f.changedAt > olderThan) continue
    if (opts.dryRun !== true) {
      const aside = await store.withBlobLock(f.cid, async () => moveAsideIfGarbage(db, store, f, olderThan, () => store.describe(f.cid)?.present !== true))
      if (aside == null) continue
      await rm(aside, { force: true })
    }
    result.count++
    result.bytes += f.size
    result.files.push({ cid: f.cid, size: f.size })
  }
  return result
}
