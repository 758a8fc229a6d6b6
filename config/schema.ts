// The node's configuration: what every key means, its default, and how it is validated.
import bytes from 'bytes'
import { z } from 'zod'

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

const repositorySchema = z.object({
  name: z.string()
    .regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'expected lowercase letters, digits, ".", "_" or "-", starting with a letter or digit, at most 64 characters')
    .refine(n => !RESERVED_REPOSITORY_NAMES.includes(n), { message: `is reserved (${RESERVED_REPOSITORY_NAMES.join(', ')})` }),
  format: z.string(),
  anonymousRead: z.boolean().default(true)
}).strict()

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
    /** An upload spanning several requests (OCI) untouched this long is abandoned, its temp file removed. */
    uploadIdleSeconds: z.number().int().positive().default(3600)
  }).strict().default({ metadataBytes: 128 * 1024 * 1024, uploadBytes: 20 * 1024 ** 3, uploadIdleSeconds: 3600 }),
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
  })
}).strict()

export type Config = z.infer<typeof configSchema>
export type RepositoryConfig = Config['repositories'][number]
