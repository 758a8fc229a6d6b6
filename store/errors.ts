// Typed errors with stable codes. node/http-errors.ts maps them to HTTP statuses in one place;
// each format renders the body its clients expect.

export type ErrorCode =
  | 'BadRequest' | 'Unauthorized' | 'Forbidden' | 'NotFound' | 'Conflict'
  | 'TooLarge' | 'IntegrityError' | 'RangeNotSatisfiable' | 'Unavailable'
  | 'MethodNotAllowed' | 'TooManyRequests' | 'InsufficientStorage'
  /** A remote repository's upstream failed or misbehaved (502), or did not answer in time (504). */
  | 'UpstreamError' | 'UpstreamTimeout'

export class RegistryError extends Error {
  readonly code: ErrorCode
  /** Extra response headers the client needs (e.g. WWW-Authenticate). */
  readonly headers: Record<string, string>
  constructor (code: ErrorCode, message: string, headers: Record<string, string> = {}) {
    super(message)
    this.name = code
    this.code = code
    this.headers = headers
  }
}

export const badRequest = (m: string) => new RegistryError('BadRequest', m)
export const unauthorized = (m: string, headers: Record<string, string> = {}) => new RegistryError('Unauthorized', m, headers)
export const forbidden = (m: string) => new RegistryError('Forbidden', m)
export const notFound = (m: string) => new RegistryError('NotFound', m)
export const conflict = (m: string) => new RegistryError('Conflict', m)
export const tooLarge = (m: string) => new RegistryError('TooLarge', m)
export const integrityError = (m: string) => new RegistryError('IntegrityError', m)

export const upstreamError = (m: string) => new RegistryError('UpstreamError', m)
export const upstreamTimeout = (m: string) => new RegistryError('UpstreamTimeout', m)
export const methodNotAllowed = (m: string) => new RegistryError('MethodNotAllowed', m)

export const insufficientStorage = (m: string) => new RegistryError('InsufficientStorage', m)

/** Error codes that mean the disk (or the user's quota, or SQLite's file) has no room left. */
const OUT_OF_SPACE = new Set(['ENOSPC', 'EDQUOT', 'SQLITE_FULL'])

export function isOutOfSpace (e: unknown): boolean {
  return OUT_OF_SPACE.has((e as { code?: unknown } | null)?.code as string)
}

/** An out-of-space failure as a typed InsufficientStorage error; anything else unchanged. Where
 *  the store writes, it maps its failures through this (after removing what it half-wrote). */
export function storageError (e: unknown): unknown {
  if (!isOutOfSpace(e)) return e
  return insufficientStorage(`the node is out of storage space (${(e as { code: string }).code}); nothing was stored: retry once space is freed on its data volume`)
}

export function isRegistryError (e: unknown): e is RegistryError {
  return e instanceof RegistryError
}
