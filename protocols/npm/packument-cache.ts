// Rendered packuments, reused until the package changes. Rendering parses every version's
// metadata row and serialises the document: for a 50-version package that is most of a GET's
// cost. The index's per-package generation tells when an entry is stale.
import { createHash } from 'node:crypto'

export interface RenderedDocument { body: string, etag: string, lastModified?: number }

export function renderDocument (doc: unknown, lastModified?: number): RenderedDocument {
  const body = JSON.stringify(doc)
  return { body, lastModified, etag: `W/"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` }
}

const MAX_BYTES = 64 * 1024 * 1024

export class PackumentCache {
  readonly #entries = new Map<string, RenderedDocument & { generation: number }>()
  #bytes = 0

  /** Returns the cached document for `key` at `generation`, or renders, caches and returns it. */
  get (key: string, generation: number, render: () => RenderedDocument): RenderedDocument {
    const hit = this.#entries.get(key)
    if (hit != null && hit.generation === generation) {
      this.#entries.delete(key) // re-insert: Map order is our LRU order
      this.#entries.set(key, hit)
      return hit
    }
    if (hit != null) this.#drop(key, hit)
    const entry = { ...render(), generation }
    this.#entries.set(key, entry)
    this.#bytes += entry.body.length
    for (const [k, e] of this.#entries) {
      if (this.#bytes <= MAX_BYTES) break
      this.#drop(k, e)
    }
    return entry
  }

  #drop (key: string, e: RenderedDocument): void {
    this.#entries.delete(key)
    this.#bytes -= e.body.length
  }
}
