// The contract every package format implements. Core code (store, node, later mesh) knows nothing
// format-specific: a format is one folder under protocols/ plus one line in protocols/registry.ts.
import type { Context, Middleware } from 'koa'
import type { Logger } from 'pino'
import type { RepositoryConfig } from '../config/schema.ts'
import type { Accounts, Principal, Scope } from '../store/accounts.ts'
import type { ArtifactIndex } from '../store/artifacts.ts'
import type { BlobLinks } from '../store/blob-links.ts'
import type { FileBlobStore } from '../store/blobs.ts'
import type { RegistryError } from '../store/errors.ts'
import type { OptionalDigest } from '../store/types.ts'
import type { UploadSessions } from '../store/uploads.ts'
import type { ArchiveLimits } from './shared/archive-budget.ts'
import type { RemoteFormat } from './shared/remote/hooks.ts'
import type { RemoteRepository } from './shared/remote/remote-repository.ts'
import type { VirtualRepository } from './shared/virtual/virtual-repository.ts'

export interface FormatHandler {
  /** The value of `format:` in a repository's config. */
  readonly name: string
  /** The digests its uploads compute besides sha256 (BLAKE3 and the chunk table are always
   *  computed): what its clients are told. Default sha512 + sha1. A digest left out is computed
   *  once, on demand, if something needs it later (FileBlobStore.completeDigests). */
  readonly digests?: readonly OptionalDigest[]
  /** URL prefix of one repository; default `/<repository>`. (OCI clients only speak to /v2/, so
   *  OCI repositories live at `/v2/<repository>`.) */
  prefix? (repo: RepositoryConfig): string
  /** Mounts the format's wire protocol. Paths are relative to `prefix(repo)`; every route
   *  declares the access it needs, checked before its handler runs. */
  routes (routes: RepoRoutes, ctx: FormatContext): void
  /** Routes shared by every repository of this format (OCI's `/v2/` ping, `_catalog`, token
   *  endpoint). Mounted once at the root, given the contexts of all its repositories. They belong
   *  to no repository, so they are declared 'public' and check per repository with `fc.allows`. */
  sharedRoutes? (routes: SharedRoutes, repos: FormatContext[]): void
  /** Credentials only this format's clients present (OCI's tokens from its own token endpoint,
   *  which no other format accepts). Runs on this format's repository routes after the node's
   *  authentication and before authorization, and may set or clear `ctx.state.principal` for this
   *  request. (Shared routes are public and do their own checks.) */
  authenticate? (koa: Context, fc: FormatContext): void
  /** Response headers for a 401 from route authorization: the challenge this format's clients
   *  follow (OCI's names its token realm and the scope to ask for). */
  challenge? (koa: Context, fc: FormatContext, scope: Scope): Record<string, string>
  /** The error body this format's clients understand; default `{ "error": message }`.
   *  `statusMessage` replaces the HTTP reason phrase (twine shows only that, as PyPI sends it). */
  errorBody? (err: RegistryError): { contentType: string, body: string, statusMessage?: string }
  /** Throws BadRequest unless a change made elsewhere (a replicated or imported manifest) names
   *  what a local publish of this format could have produced: the same checks as its routes. */
  validateArtifact? (draft: ArtifactCheck): void
  /** The hooks that give this format remote (caching proxy) repositories; a format without them
   *  refuses `type: remote` at start. */
  remote?: RemoteFormat
  /** Whether this format serves virtual repositories (its routes branch on `fc.virtual`); a
   *  format without them refuses `type: virtual` at start. */
  virtual?: boolean
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

/** What a route needs: a scope on the repository, or 'public' for a route that needs no grant
 *  (a ping, a login that checks a password itself). */
export type Access = Scope | 'public'
/** A fixed access, or one that depends on the request (npm's `GET ?write=true` is a write). */
export type AccessRule = Access | ((koa: Context) => Access)
export type RoutePath = string | string[]

/** The only way a format mounts routes: each one states its access where it is declared. The
 *  node refuses to start on a route without a valid declaration, and answers 403 if a rule
 *  returns anything but an Access. After authorization, `actorOf(ctx)` names the principal. */
export interface Routes<A> {
  get (path: RoutePath, access: A, handler: Middleware): void
  put (path: RoutePath, access: A, handler: Middleware): void
  post (path: RoutePath, access: A, handler: Middleware): void
  patch (path: RoutePath, access: A, handler: Middleware): void
  delete (path: RoutePath, access: A, handler: Middleware): void
  all (path: RoutePath, access: A, handler: Middleware): void
}
export type RepoRoutes = Routes<AccessRule>
export type SharedRoutes = Routes<'public'>

/** The principal a route's authorization admitted ('anonymous' for an anonymous read). Throws on
 *  a 'public' route, which admits no one in particular. */
export function actorOf (koa: Context): string {
  const actor = (koa.state as { actor?: unknown }).actor
  if (typeof actor !== 'string') throw new Error(`${koa.method} ${koa.path}: no authorized principal (the route is public)`)
  return actor
}

/** The principal the request's credentials resolved to, if any (after `authenticate`). */
export function principalOf (koa: Context): Principal | undefined {
  return (koa.state as { principal?: Principal }).principal
}

export interface Limits {
  metadataBytes: number
  uploadBytes: number
  /** Every archive a format opens goes through protocols/shared/archive.ts with these. */
  archive: ArchiveLimits
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
  /** Whether the request may act with `scope` on this repository. Routes declare their own
   *  access; this is for checks beyond it (OCI: the source repository of a cross-repository
   *  mount, which repositories the catalog lists). */
  allows (koa: Context, scope: Scope): boolean
  /** Absolute base URL of this repository, e.g. http://host:7070/npm (no trailing slash). */
  baseUrl (koa: Context): string
  /** Set for a remote repository (type: remote): the shared caching-proxy core. */
  remote?: RemoteRepository
  /** Set for a virtual repository (type: virtual): its members, in order, with their contexts. */
  virtual?: VirtualRepository
}
