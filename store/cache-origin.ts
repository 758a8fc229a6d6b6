// Whether an artifact row is a cached copy of an upstream's artifact (a remote repository fetched
// it), and from where: the one reading of the markers every format's remote writes. npm, OCI and
// generic mark the row (`cached: true, upstream, fetchedAt`); PyPI marks each file of a release
// (`files[<name>].cached: { upstream, fetchedAt }`), since a release gathers files one at a time.

export interface CacheOrigin {
  /** The upstream it was fetched from (a URL without credentials). */
  upstream: string
  /** When it was fetched (ms since the epoch), if recorded. */
  fetchedAt: number | null
}

export function cacheOrigin (metadata: Record<string, unknown>): CacheOrigin | undefined {
  if (metadata.cached === true) {
    return { upstream: typeof metadata.upstream === 'string' ? metadata.upstream : '', fetchedAt: numberOrNull(metadata.fetchedAt) }
  }
  const files = metadata.files
  if (files == null || typeof files !== 'object' || Array.isArray(files)) return undefined
  for (const f of Object.values(files as Record<string, unknown>)) {
    const c = (f as { cached?: unknown } | null)?.cached as { upstream?: unknown, fetchedAt?: unknown } | undefined
    if (c != null && typeof c === 'object') return { upstream: typeof c.upstream === 'string' ? c.upstream : '', fetchedAt: numberOrNull(c.fetchedAt) }
  }
  return undefined
}

/** The fields listings add to an artifact: `cached` and, when cached, `upstream` and `fetchedAt`. */
export function cacheFields (metadata: Record<string, unknown>): { cached: boolean, upstream?: string, fetchedAt?: number | null } {
  const o = cacheOrigin(metadata)
  return o == null ? { cached: false } : { cached: true, upstream: o.upstream, fetchedAt: o.fetchedAt }
}

const numberOrNull = (v: unknown): number | null => typeof v === 'number' && Number.isFinite(v) ? v : null
