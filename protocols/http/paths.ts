// Validation of names and paths that arrive in URLs, shared by formats.
import { badRequest } from '../../store/errors.ts'

const MAX_PATH = 1024

/** Splits a raw (still percent-encoded) URL path into decoded, safe segments. Rejects traversal
 *  ("." or ".."), empty segments, encoded slashes, NUL/control characters and overlong paths. */
export function safePathSegments (rawPath: string): string[] {
  if (rawPath.length > MAX_PATH * 3) throw badRequest(`path longer than ${MAX_PATH} characters`)
  const parts = rawPath.split('/')
  return parts.map(part => {
    let seg: string
    try { seg = decodeURIComponent(part) } catch { throw badRequest(`malformed percent-encoding in path segment "${part}"`) }
    return checkPathSegment(seg)
  })
}

/** Checks one decoded path segment (the rules of safePathSegments); returns it. */
export function checkPathSegment (seg: string): string {
  if (seg === '') throw badRequest('empty path segment (double or trailing slash)')
  if (seg === '.' || seg === '..') throw badRequest('path traversal ("." or "..") is not allowed')
  if (/[/\\]/.test(seg)) throw badRequest(`path segment "${seg}" contains a slash or backslash`)
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(seg)) throw badRequest('control characters are not allowed in paths')
  return seg
}

/** Checks a stored (decoded) path such as `dir/a.txt`: every segment safe, at most MAX_PATH. */
export function checkStoredPath (path: string): void {
  if (path.length > MAX_PATH) throw badRequest(`path longer than ${MAX_PATH} characters`)
  path.split('/').forEach(checkPathSegment)
}
