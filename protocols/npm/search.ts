// GET /-/v1/search?text=&size=&from= in the shape libnpmsearch and `npm search` read.
// https://github.com/npm/registry/blob/main/docs/REGISTRY-API.md#get-v1search
// Matching is by name (the first word, in SQL), then every word must appear in the name,
// description or keywords. There is no popularity data: scores are constant.
import { badRequest } from '../../store/errors.ts'
import type { FormatContext, RepoRoutes } from '../format.ts'
import { cacheOrigin } from '../../store/cache-origin.ts'
import { loadPackage, packageMaintainers } from './packument.ts'

const MAX_SIZE = 250
/** Candidates fetched by the SQL name match before the word filter; bounds the work per query. */
const MAX_CANDIDATES = 2000

function intParam (value: unknown, name: string, fallback: number, max: number): number {
  if (value === undefined || value === '') return fallback
  const n = Number(value)
  if (!Number.isInteger(n) || n < 0 || n > max) throw badRequest(`${name} must be an integer from 0 to ${max}`)
  return n
}

function searchResult (fc: FormatContext, name: string) {
  const p = loadPackage(fc, name)
  const latest = p.versions.find(a => a.version === p.tags.latest) ?? p.versions[p.versions.length - 1]
  const m = latest.metadata
  const user = m._npmUser as { name: string, email?: string } | undefined
  const links: Record<string, string> = {}
  if (typeof m.homepage === 'string') links.homepage = m.homepage
  const repository = typeof m.repository === 'string' ? m.repository : (m.repository as { url?: string } | undefined)?.url
  if (typeof repository === 'string') links.repository = repository
  const bugs = typeof m.bugs === 'string' ? m.bugs : (m.bugs as { url?: string } | undefined)?.url
  if (typeof bugs === 'string') links.bugs = bugs
  return {
    package: {
      name,
      version: latest.version,
      description: typeof m.description === 'string' ? m.description : undefined,
      keywords: Array.isArray(m.keywords) ? m.keywords : [],
      date: new Date(latest.createdAt).toISOString(),
      links,
      publisher: user == null ? undefined : { username: user.name, email: user.email },
      maintainers: packageMaintainers(p).map(u => ({ username: u.name, email: u.email })),
      // akmesh's own: a remote repository's cached package, and the upstream it came from.
      ...cachedFrom(m)
    },
    score: { final: 1, detail: { quality: 1, popularity: 1, maintenance: 1 } },
    searchScore: 1
  }
}

/** `cached` and `upstream` for a package cached from an upstream; nothing for a local one. */
function cachedFrom (metadata: Record<string, unknown>): { cached?: true, upstream?: string } {
  const o = cacheOrigin(metadata)
  return o == null ? {} : { cached: true, upstream: o.upstream }
}

function matchesAll (r: ReturnType<typeof searchResult>, words: string[]): boolean {
  const haystack = [r.package.name, r.package.description ?? '', ...r.package.keywords.map(String)].join(' ').toLowerCase()
  return words.every(w => haystack.includes(w))
}

export function searchRoutes (router: RepoRoutes, fc: FormatContext): void {
  router.get('/-/v1/search', 'read', (ctx) => {
    const text = typeof ctx.query.text === 'string' ? ctx.query.text : ''
    const size = intParam(ctx.query.size, 'size', 20, MAX_SIZE)
    const from = intParam(ctx.query.from, 'from', 0, Number.MAX_SAFE_INTEGER)
    const words = text.toLowerCase().split(/\s+/).filter(w => w !== '')
    const { names } = fc.artifacts.searchNames(fc.repo.name, words[0] ?? '', MAX_CANDIDATES, 0)
    const matches = names.map(n => searchResult(fc, n)).filter(r => matchesAll(r, words))
    ctx.body = { objects: matches.slice(from, from + size), total: matches.length, time: new Date().toUTCString() }
  })
}
