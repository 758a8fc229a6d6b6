// The blob of a cached artifact, for a cache hit. Its bytes may be absent here: evicted (quota or
// `cache prune`, store/cache-evict.ts) or never fetched (the row replicated from another site).
// Then a peer holding them serves them; if none does, the caller fetches from the upstream again,
// which stores the same CID (the row names it) and makes the blob present again.
import { isRegistryError } from '../../../store/errors.ts'
import type { BlobInfo, BlobStore } from '../../../store/types.ts'

/** The blob, present or streaming from a peer; undefined if it is not known here or no peer
 *  serves it (fetch it from the upstream). */
export async function cachedBlob (store: BlobStore, cid: string): Promise<BlobInfo | undefined> {
  // Alone (no peer connected): straight to the upstream, rather than blobWaitMs for no one.
  if (!store.has(cid) && store.remote?.reachable?.() === false) return undefined
  try {
    return await store.locate(cid)
  } catch (err) {
    if (isRegistryError(err) && err.code === 'Unavailable') return undefined
    throw err
  }
}
