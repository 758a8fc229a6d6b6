// The node's configuration: what every key means, its default, and how it is validated.
import bytes from 'bytes'
import { z } from 'zod'
import { duration, MAX_TIMER_MS } from './duration.ts'
import { remoteFields, checkRepositoryType } from './remote-schema.ts'
import { checkVirtualKeys, checkVirtualMembers, virtualFields } from './virtual-schema.ts'

/** Names that the HTTP front uses itself and repositories cannot take. */
export const RESERVED_REPOSITORY_NAMES = ['-', 'v2', 'healthz', 'readyz', 'admin', 'api']

// One transform rather than a union of number and string: a union's error is only "Invalid
// input", which would not tell the operator what a size looks like.
const byteSize = z.union([z.number(), z.string()], { error: 'expected a size in bytes or a string such as 64MB or 10GB' })
  .transform((v, ctx) => {
    const n = typeof v === 'number' ? v : bytes.parse(v)
    if (n == null || !Number.isSafeInteger(n) || n < 0) {
      ctx.addIssue({ code: 'custom', message: `expected a size such as 64MB or 10GB, got ${JSON.stringify(v)}` })
      return z.NEVER
    }
    return n
  })

/** limits.archive defaults (see protocols/shared/archive-budget.ts for what each bounds). */
export const DEFAULT_ARCHIVE_LIMITS = {
  entries: 100_000,
  unpackedBytes: 2 * 1024 ** 3,
  entryBytes: 1024 ** 3,
  ratio: 200,
  extractBytes: 16 * 1024 * 1024
}
const A = DEFAULT_ARCHIVE_LIMITS
const archiveLimitsSchema = z.object({
  entries: z.number().int().min(1).default(A.entries),
  unpackedBytes: byteSize.default(A.unpackedBytes),
  entryBytes: byteSize.default(A.entryBytes),
  ratio: z.number().min(1).default(A.ratio),
  extractBytes: byteSize.default(A.extractBytes)
}).strict()

const repositorySchema = z.object({
  name: z.string()
    .regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'expected lowercase letters, digits, ".", "_" or "-", starting with a letter or digit, at most 64 characters')
    .refine(n => !RESERVED_REPOSITORY_NAMES.includes(n), { message: `is reserved (${RESERVED_REPOSITORY_NAMES.join(', ')})` }),
  format: z.string(),
  anonymousRead: z.boolean().default(true),
  /** local (the default): publishes land here; remote: a caching proxy of `upstream` (config/remote-schema.ts);
   *  virtual: one URL over its members (config/virtual-schema.ts, protocols/shared/virtual/). */
  type: z.enum(['local', 'remote', 'virtual']).optional(),
  ...remoteFields,
  ...virtualFields
}).strict().superRefine((r, ctx) => { checkRepositoryType(r, ctx); checkVirtualKeys(r, ctx) })

export const configSchema = z.object({
  dataDir: z.string().default('./data'),
  http: z.object({
    host: z.string().default('0.0.0.0'),
    port: z.number().int().min(0).max(65535).default(7070),
    /** Absolute URL clients reach this node at, if it differs from the request's Host. */
    publicUrl: z.url().optional()
  }).strict().default({ host: '0.0.0.0', port: 7070 }),
  limits: z.object({
    /** JSON metadata bodies (an npm publish carries its tarball base64 inside one). */
    metadataBytes: byteSize.default(128 * 1024 * 1024),
    /** Streamed file uploads. */
    uploadBytes: byteSize.default(20 * 1024 ** 3),
    /** What opening an uploaded archive (npm tarball, wheel, sdist, ...) may cost. */
    archive: archiveLimitsSchema.default(DEFAULT_ARCHIVE_LIMITS),
    /** An upload spanning several requests (OCI) untouched this long is abandoned, its temp file removed. */
    uploadIdleSeconds: z.number().int().positive().default(3600)
  }).strict().default({ metadataBytes: 128 * 1024 * 1024, uploadBytes: 20 * 1024 ** 3, archive: DEFAULT_ARCHIVE_LIMITS, uploadIdleSeconds: 3600 }),
  /** Blob garbage collection (store/gc.ts): deletes blobs no artifact, held manifest, blob link or
   *  pending change names, and blob files a crash left without a row. */
  gc: z.object({
    /** How often the node collects; `off`: never (the start-up sweep of orphan files still runs). */
    interval: duration({ off: true, min: 1000, max: MAX_TIMER_MS }).default(6 * 3_600_000),
    /** Nothing younger than this, or read within it, is deleted: a publish between storing its
     *  bytes and recording its artifact, or a peer still being served. */
    grace: duration().transform(v => v as number).default(3_600_000)
  }).strict().default({ interval: 6 * 3_600_000, grace: 3_600_000 }),
  log: z.object({
    level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info')
  }).strict().default({ level: 'info' }),
  repositories: z.array(repositorySchema).default([
    { name: 'npm', format: 'npm', anonymousRead: true },
    { name: 'files', format: 'generic', anonymousRead: true },
    { name: 'docker', format: 'oci', anonymousRead: true },
    { name: 'pypi', format: 'pypi', anonymousRead: true }
  ]).superRefine((repos, ctx) => {
    const seen = new Set<string>()
    repos.forEach((r, i) => {
      if (seen.has(r.name)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `duplicate repository name "${r.name}"` })
      seen.add(r.name)
    })
    checkVirtualMembers(repos, ctx)
  })
}).strict()

export type Config = z.infer<typeof configSchema>
export type RepositoryConfig = Config['repositories'][number]
