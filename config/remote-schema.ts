// The keys of a remote (caching proxy) repository: where its upstream is, how to authenticate to
// it, how long fetched metadata and "not found" answers are trusted, and whether to go upstream.
import { z } from 'zod'
import { millis } from './duration.ts'

/** `${NAME}` in a credential is read from the environment when the config loads, so secrets can
 *  stay out of config files. */
const secret = z.string().min(1).transform((v, ctx) => v.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => {
  const value = process.env[name]
  if (value == null || value === '') ctx.addIssue({ code: 'custom', message: `environment variable ${name} is not set` })
  return value ?? ''
}))

const upstreamUrl = z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' })
  .refine(u => { const p = new URL(u); return p.username === '' && p.password === '' },
    { message: 'must not carry credentials; put them under auth (token, or username and password)' })

const UNIT_BYTES: Record<string, number> = {
  b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40
}

/** A size such as 500MiB, 10GiB (powers of 1024) or 10GB (powers of 1000), or a number of bytes. */
const quotaSize = z.union([z.number(), z.string()], { error: 'expected a size such as 500MiB, 10GiB or 10GB' }).transform((v, ctx) => {
  const m = typeof v === 'number' ? null : /^(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)$/i.exec(v.trim())
  const n = typeof v === 'number' ? v : m == null ? NaN : Math.floor(Number(m[1]) * UNIT_BYTES[m[2].toLowerCase()])
  if (!Number.isSafeInteger(n) || n < 0) {
    ctx.addIssue({ code: 'custom', message: `expected a size such as 500MiB, 10GiB or 10GB, got ${JSON.stringify(v)}` })
    return z.NEVER
  }
  return n
})

export const DEFAULT_REMOTE = {
  metadataTtl: 5 * 60_000,
  negativeTtl: 60_000,
  timeouts: { response: 30_000, idle: 30_000 }
}

export const remoteFields = {
  /** Base URL every request of the repository is fetched below. */
  upstream: upstreamUrl.optional(),
  // One object, not a union: a union's error would hide which key was wrong.
  auth: z.object({ token: secret.optional(), username: secret.optional(), password: secret.optional() }).strict()
    .refine(a => (a.token != null) !== (a.username != null && a.password != null) && (a.username != null) === (a.password != null),
      { message: 'expected { token } or { username, password }' })
    .transform(a => a.token != null ? { token: a.token } : { username: a.username as string, password: a.password as string })
    .optional(),
  timeouts: z.object({
    /** Until the upstream's response headers arrive, connecting included. */
    response: millis({ min: 1 }).optional(),
    /** Between two pieces of a response body. */
    idle: millis({ min: 1 }).optional()
  }).strict().optional(),
  /** How long fetched metadata (indexes, listings) is served before it is asked for again (5m). */
  metadataTtl: millis().optional(),
  /** How long an upstream "not found" is remembered (1m). */
  negativeTtl: millis().optional(),
  /** Serve only what is cached; never contact the upstream. */
  offline: z.boolean().optional(),
  /** The most bytes of cached blobs this repository keeps here: past it, after a fetch, the least
   *  recently used are evicted (their rows stay; a later request fetches them again). */
  quota: quotaSize.optional(),
  /** OCI: a one-component image name ("alpine") is asked upstream as "library/alpine", the way
   *  Docker Hub names its official images. Off by default (other registries have no such rule). */
  dockerHubLibrary: z.boolean().optional()
}

/** A remote repository's settings with the defaults filled in. */
export interface RemoteSettings {
  upstream: URL
  auth?: { token: string } | { username: string, password: string }
  timeouts: { response: number, idle: number }
  metadataTtl: number
  negativeTtl: number
  offline: boolean
}

type RemoteShape = { upstream?: string, auth?: RemoteSettings['auth'], timeouts?: Partial<RemoteSettings['timeouts']>,
  metadataTtl?: number, negativeTtl?: number, offline?: boolean }

export function remoteSettings (r: RemoteShape & { name: string }): RemoteSettings {
  if (r.upstream == null) throw new Error(`repository ${r.name} has no upstream`)
  // A base URL ending in "/" so paths resolve below it, not beside it.
  const upstream = new URL(r.upstream.endsWith('/') ? r.upstream : r.upstream + '/')
  return {
    upstream,
    auth: r.auth,
    timeouts: { ...DEFAULT_REMOTE.timeouts, ...r.timeouts },
    metadataTtl: r.metadataTtl ?? DEFAULT_REMOTE.metadataTtl,
    negativeTtl: r.negativeTtl ?? DEFAULT_REMOTE.negativeTtl,
    offline: r.offline ?? false
  }
}

type RepoShape = { type?: string, format?: string, upstream?: string, auth?: unknown, quota?: number, dockerHubLibrary?: boolean }

/** Cross-field rules: a remote needs an upstream, local and virtual ones take none. */
export function checkRepositoryType (r: RepoShape, ctx: z.RefinementCtx): void {
  if (r.type === 'remote' && r.upstream == null) {
    ctx.addIssue({ code: 'custom', path: ['upstream'], message: 'a remote repository needs upstream: <http(s) URL>' })
  } else if (r.type !== 'remote') {
    for (const key of ['upstream', 'auth', 'quota'] as const) {
      if (r[key] != null) ctx.addIssue({ code: 'custom', path: [key], message: key === 'quota' ? 'only remote repositories (type: remote) have a cache quota' : 'only remote repositories (type: remote) have an upstream' })
    }
  }
  if (r.dockerHubLibrary != null && (r.type !== 'remote' || r.format !== 'oci')) {
    ctx.addIssue({ code: 'custom', path: ['dockerHubLibrary'], message: 'only remote OCI repositories (type: remote, format: oci) have dockerHubLibrary' })
  }
}

/** A repository's config with its credentials replaced, for logs and printed config. */
export function redactRepository<T extends { auth?: unknown }> (r: T): T {
  return r.auth == null ? r : { ...r, auth: '[redacted]' }
}
