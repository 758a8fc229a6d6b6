// The contract every package format implements. Core code (store, node, later mesh) knows nothing
// format-specific: a format is one folder under protocols/ plus one line in protocols/registry.ts.
import type Router from '@koa/router'
import type { Context } from 'koa'
import type { Logger } from 'pino'
import type { RepositoryConfig } from '../config/schema.ts'
import type { Accounts, Scope } from '../store/accounts.ts'
import type { ArtifactIndex } from '../store/artifacts.ts'
import type { BlobLinks } from '../store/blob-links.ts'
import type { FileBlobStore } from '../store/blobs.ts'
import type { RegistryError } from '../store/errors.ts'
import type { UploadSessions } from '../store/uploads.ts'

export interface FormatHandler {
  /** The value of `format:` in a repository's config. */
  readonly name: string
  /** URL prefix of one repository; default `/<repository>`. (OCI clients only speak to /v2/, so
   *  OCI repositories live at `/v2/<repository>`.) */
  prefix? (repo: RepositoryConfig): string
  /** Mounts the format's wire protocol. The router is already prefixed with `prefix(repo)`. */
  routes (router: Router, ctx: FormatContext): void
  /** Routes shared by every repository of this format (OCI's `/v2/` ping, `_catalog`, token
   *  endpoint). Mounted once at the root, given the contexts of all its repositories. */
  sharedRoutes? (router: Router, repos: FormatContext[]): void
  /** The error body this format's clients understand; default `{ "error": message }`.
   *  `statusMessage` replaces the HTTP reason phrase (twine shows only that, as PyPI sends it). */
  errorBody? (err: RegistryError): { contentType: string, body: string, statusMessage?: string }
  /** Throws BadRequest unless a change made elsewhere (a replicated or imported manifest) names
   *  what a local publish of this format could have produced: the same checks as its routes. */
  validateArtifact? (draft: ArtifactCheck): void
}

/** What a replicated change says about an artifact, as the format's own rules see it. */
export interface ArtifactCheck {
  repo: string
  kind: 'publish' | 'add-files' | 'metadata' | 'delete' | 'tag' | 'untag'
  name: string
  version: string
  tag?: string
  files: Array<{ filename: string }>
  metadata: Record<string, unknown>
}

export interface Limits {
  metadataBytes: number
  uploadBytes: number
}

/** What a format handler gets to work with, for one repository. */
export interface FormatContext {
  repo: RepositoryConfig
  store: FileBlobStore
  /** Uploads that span several requests (OCI's chunked blob uploads). */
  uploads: UploadSessions
  /** Which (repository, name) may serve which blob (OCI scopes blobs to image names). */
  blobLinks: BlobLinks
  artifacts: ArtifactIndex
  accounts: Accounts
  limits: Limits
  log: Logger
  /** Throws Unauthorized (no or bad credentials) or Forbidden (no grant) unless the request may
   *  act with `scope` on this repository. Returns the principal's name ('anonymous' for reads). */
  authorize (koa: Context, scope: Scope): string
  /** Absolute base URL of this repository, e.g. http://host:7070/npm (no trailing slash). */
  baseUrl (koa: Context): string
}
