// OCI error codes and bodies: `{ "errors": [{ "code", "message", "detail" }] }`.
// https://github.com/opencontainers/distribution-spec/blob/main/spec.md#error-codes
import { RegistryError, type ErrorCode } from '../../store/errors.ts'

export type OciCode =
  | 'BLOB_UNKNOWN' | 'BLOB_UPLOAD_INVALID' | 'BLOB_UPLOAD_UNKNOWN' | 'DIGEST_INVALID'
  | 'MANIFEST_BLOB_UNKNOWN' | 'MANIFEST_INVALID' | 'MANIFEST_UNKNOWN' | 'NAME_INVALID' | 'NAME_UNKNOWN'
  | 'SIZE_INVALID' | 'UNAUTHORIZED' | 'DENIED' | 'UNSUPPORTED' | 'TOOMANYREQUESTS' | 'UNAVAILABLE'

/** The status each code usually carries (as in the reference registry); a throw may override it. */
const STATUS_OF: Record<OciCode, ErrorCode> = {
  BLOB_UNKNOWN: 'NotFound',
  BLOB_UPLOAD_INVALID: 'BadRequest',
  BLOB_UPLOAD_UNKNOWN: 'NotFound',
  DIGEST_INVALID: 'BadRequest',
  MANIFEST_BLOB_UNKNOWN: 'BadRequest',
  MANIFEST_INVALID: 'BadRequest',
  MANIFEST_UNKNOWN: 'NotFound',
  NAME_INVALID: 'BadRequest',
  NAME_UNKNOWN: 'NotFound',
  SIZE_INVALID: 'BadRequest',
  UNAUTHORIZED: 'Unauthorized',
  DENIED: 'Forbidden',
  UNSUPPORTED: 'MethodNotAllowed',
  TOOMANYREQUESTS: 'TooManyRequests',
  UNAVAILABLE: 'Unavailable'
}

/** How errors thrown by shared code (auth, the store, the HTTP front) read to an OCI client. */
const FROM_GENERIC: Record<ErrorCode, OciCode> = {
  BadRequest: 'UNSUPPORTED',
  Unauthorized: 'UNAUTHORIZED',
  Forbidden: 'DENIED',
  NotFound: 'NAME_UNKNOWN',
  Conflict: 'BLOB_UPLOAD_INVALID',
  TooLarge: 'SIZE_INVALID',
  IntegrityError: 'DIGEST_INVALID',
  RangeNotSatisfiable: 'BLOB_UPLOAD_INVALID',
  Unavailable: 'UNAVAILABLE',
  MethodNotAllowed: 'UNSUPPORTED',
  TooManyRequests: 'TOOMANYREQUESTS',
  InsufficientStorage: 'UNAVAILABLE',
  UpstreamError: 'UNAVAILABLE',
  UpstreamTimeout: 'UNAVAILABLE'
}

export interface OciErrorEntry { code: OciCode, message: string, detail?: unknown }

export class OciError extends RegistryError {
  readonly entries: OciErrorEntry[]

  constructor (oci: OciCode, message: string, opts: { detail?: unknown, headers?: Record<string, string>, status?: ErrorCode, more?: OciErrorEntry[] } = {}) {
    super(opts.status ?? STATUS_OF[oci], message, opts.headers)
    this.entries = [{ code: oci, message, detail: opts.detail }, ...(opts.more ?? [])]
  }
}

export const ociError = (oci: OciCode, message: string, detail?: unknown) => new OciError(oci, message, { detail })

export function ociErrorBody (err: RegistryError): { contentType: string, body: string } {
  const entries = err instanceof OciError ? err.entries : [{ code: FROM_GENERIC[err.code], message: err.message }]
  return {
    contentType: 'application/json',
    body: JSON.stringify({ errors: entries.map(e => ({ code: e.code, message: e.message, detail: e.detail ?? null })) })
  }
}
