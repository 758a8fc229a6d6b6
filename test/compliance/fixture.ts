// What a format tells the compliance suite: how its clients publish, what can be downloaded, which
// routes write, where names and paths arrive, and what its error bodies look like. Everything
// else (the checks) lives once in suite.ts.
import type { App, Probe, Reply } from './harness.ts'

/** What a publish produced, as the format's change-log row and downloads should show it. */
export interface Published {
  /** Artifact name and version as the index stores them. */
  name: string
  version: string
  /** Filenames the publish's change-log row must list. */
  files: string[]
  /** Stored files served as blobs (HEAD, Range, ETag), with the bytes they must return. */
  downloads: Array<{ path: string, bytes: Buffer }>
  /** Derived documents (indexes, listings): HEAD must match GET; ETag if the format serves one. */
  documents: string[]
  /** Format-specific facts later probes need (an npm revision, an OCI upload id...). */
  extra: Record<string, string>
}

/** Checks an error reply; returns what is wrong with its shape, or undefined. */
export type ErrorShape = (r: Reply) => string | undefined

export interface FormatFixture {
  /** The repository `format:` value. */
  format: string
  /** The Authorization header a client of this format sends for a token (default Bearer). */
  credentials? (token: string): string
  /** Publishes a sample artifact as the format's client shapes the request (admin token).
   *  `id` is unique per call: names derived from it never collide. */
  publish (app: App, repo: string, id: string): Promise<Published>
  /** Every write route, aimed at the published artifact where one is needed. */
  writeRoutes (app: App, repo: string, p: Published, id: string): Promise<Probe[]>
  /** Paths with a `{}` where a name, version, file name or reference arrives in the URL. */
  traversalTargets (repo: string, p: Published): Array<{ method: string, path: string, body?: string, headers?: Record<string, string> }>
  /** A download that does not exist (its 404 shows the error body). */
  missing (repo: string): string
  errorShape: ErrorShape
  /** A valid write whose body exceeds the configured limit (`limits`), framing left to the suite. */
  oversized (repo: string, limits: { metadataBytes: number, uploadBytes: number }): Promise<Probe>
  /** Valid writes in every state an upload can be refused or accepted in; the suite sends each
   *  with its full Content-Length but only part of the body, then closes the socket. */
  truncated (app: App, repo: string, p: Published, id: string): Promise<Probe[]>
}

const json = (r: Reply): any => { try { return JSON.parse(r.text) } catch { return undefined } }
const isJsonType = (r: Reply) => /^application\/json\b/.test(String(r.headers['content-type']))

/** npm-registry-fetch shows `error`: exactly `{ "error": string }`. */
export const npmError: ErrorShape = (r) => {
  const b = json(r)
  if (!isJsonType(r)) return `content-type ${r.headers['content-type']}`
  if (typeof b?.error !== 'string' || b.error === '') return `body ${r.text}`
  return undefined
}

/** The node's own JSON: `{ "error": string, "code": string }`. */
export const jsonError: ErrorShape = (r) => {
  const b = json(r)
  if (!isJsonType(r)) return `content-type ${r.headers['content-type']}`
  if (typeof b?.error !== 'string' || b.error === '' || typeof b?.code !== 'string') return `body ${r.text}`
  return undefined
}

const OCI_CODES = new Set(['BLOB_UNKNOWN', 'BLOB_UPLOAD_INVALID', 'BLOB_UPLOAD_UNKNOWN', 'DIGEST_INVALID', 'MANIFEST_BLOB_UNKNOWN',
  'MANIFEST_INVALID', 'MANIFEST_UNKNOWN', 'NAME_INVALID', 'NAME_UNKNOWN', 'SIZE_INVALID', 'UNAUTHORIZED', 'DENIED', 'UNSUPPORTED',
  'TOOMANYREQUESTS'])

/** distribution-spec "Error Codes": `{ "errors": [{ "code", "message", "detail"? }] }`. HEAD
 *  replies carry no body, so only GET and writes are checked by the suite. */
export const ociError: ErrorShape = (r) => {
  const b = json(r)
  if (!isJsonType(r)) return `content-type ${r.headers['content-type']}`
  if (!Array.isArray(b?.errors) || b.errors.length === 0) return `body ${r.text}`
  for (const e of b.errors) {
    if (!OCI_CODES.has(e?.code) || typeof e?.message !== 'string') return `error entry ${JSON.stringify(e)}`
  }
  return undefined
}

/** PyPI puts the message in the reason phrase (twine shows only that); the body repeats it. */
export const pypiError: ErrorShape = (r) => {
  if (!/^text\/plain\b/.test(String(r.headers['content-type']))) return `content-type ${r.headers['content-type']}`
  const message = r.text.trim()
  if (message === '') return 'empty body'
  const expected = message.replace(/[^\t\x20-\x7e]/g, '?').slice(0, 300)
  if (r.statusMessage !== expected) return `reason phrase "${r.statusMessage}", body "${message}"`
  return undefined
}
