// What a lockfile names, per format, and what can go wrong resolving it. Each lockfile kind has
// its parser here (npm.ts, requirements.ts, oci-images.ts); each format its resolver
// (npm-resolve.ts, pypi-resolve.ts, oci-resolve.ts), which makes through the running node the requests the real client would.

/** One npm package version a lockfile pins. */
export interface NpmEntry {
  kind: 'npm'
  /** How the lockfile names it (its path in package-lock v2/v3, name@version in v1): for messages. */
  where: string
  name: string
  version: string
  /** SRI string (`sha512-...`, possibly several hashes), if the lockfile has one. */
  integrity?: string
}

/** One Python release a lockfile pins, and the sha256 of the files it allows. */
export interface PypiEntry {
  kind: 'pypi'
  where: string
  /** PEP 503 normalised. */
  project: string
  version: string
  sha256: string[]
}

/** One OCI image an image list names: by tag, or pinned by digest (`name:tag@sha256:...` too). */
export interface OciEntry {
  kind: 'oci'
  where: string
  /** The image name below the repository (a registry host in the reference is dropped). */
  name: string
  tag?: string
  digest?: string
}

export type LockfileEntry = NpmEntry | PypiEntry | OciEntry

/** Why an entry cannot go into the bundle. `missing`: the upstream (through the node) does not
 *  have it; `integrity`: it has other bytes than the lockfile pins; `unsupported`: the entry is not
 *  a registry package (git URL, file:, link). */
export interface LockfileProblem { where: string, problem: 'missing' | 'integrity' | 'unsupported', message: string }

/** The artifact row (repository-relative) an entry resolved to. */
export interface ResolvedArtifact { name: string, version: string }

export class LockfileError extends Error {
  readonly problems: LockfileProblem[]
  constructor (message: string, problems: LockfileProblem[] = []) {
    super(message)
    this.name = 'LockfileError'
    this.problems = problems
  }
}

/** A parsed lockfile: its registry entries, and the entries that cannot be bundled. */
export interface ParsedLockfile { file: string, format: 'npm' | 'pypi' | 'oci', entries: LockfileEntry[], problems: LockfileProblem[] }
