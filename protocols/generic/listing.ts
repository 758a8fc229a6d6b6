// A folder listing's entries: each file with whether it is a cached copy of an upstream's file (and
// which upstream), and for a cached one whether its bytes are here (evicted ones are fetched again
// on request). `files` (the bare names) stays beside them for existing clients.
import { cacheFields } from '../../store/cache-origin.ts'
import type { FormatContext } from '../format.ts'

export interface FolderEntry { path: string, cached: boolean, upstream?: string, fetchedAt?: number | null, held?: boolean, member?: string }

export function folderEntries (fc: FormatContext, repo: string, prefix: string, member?: string): FolderEntry[] {
  return fc.artifacts.listNames(repo, prefix).flatMap((path): FolderEntry[] => {
    const a = fc.artifacts.get(repo, path, '')
    if (a == null) return []
    const fields = cacheFields(a.metadata)
    const cid = a.files[0]?.cid
    return [{ path, ...fields, ...(fields.cached && cid != null ? { held: fc.store.has(cid) } : {}), ...(member != null ? { member } : {}) }]
  })
}
