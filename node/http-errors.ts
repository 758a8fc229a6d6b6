// The one place errors become HTTP statuses.
import type { ErrorCode } from '../store/errors.ts'
import { isOutOfSpace, RegistryError, storageError } from '../store/errors.ts'

export const STATUS: Record<ErrorCode, number> = {
  BadRequest: 400,
  Unauthorized: 401,
  Forbidden: 403,
  NotFound: 404,
  Conflict: 409,
  TooLarge: 413,
  RangeNotSatisfiable: 416,
  IntegrityError: 400,
  Unavailable: 503,
  MethodNotAllowed: 405,
  TooManyRequests: 429,
  InsufficientStorage: 507,
  UpstreamError: 502,
  UpstreamTimeout: 504
}

/** Turns anything thrown into a RegistryError; unknown errors become undefined (a 500). */
export function toRegistryError (err: any): RegistryError | undefined {
  if (err instanceof RegistryError) return err
  // A write outside the store's own mapping (an index transaction, a metadata file) ran out of space.
  if (isOutOfSpace(err)) return storageError(err) as RegistryError
  // raw-body and koa's http-errors carry a status; JSON.parse throws SyntaxError.
  if (err?.type === 'entity.too.large' || err?.status === 413) return new RegistryError('TooLarge', `body too large: ${err.message}`)
  if (err instanceof SyntaxError) return new RegistryError('BadRequest', `malformed JSON body: ${err.message}`)
  if (err?.type === 'request.aborted' || err?.code === 'ECONNRESET') return new RegistryError('BadRequest', 'request aborted by the client')
  if (typeof err?.status === 'number' && err.status >= 400 && err.status < 500 && err.expose === true) {
    const code = (Object.entries(STATUS).find(([, s]) => s === err.status)?.[0] ?? 'BadRequest') as ErrorCode
    return new RegistryError(code, err.message)
  }
  return undefined
}
