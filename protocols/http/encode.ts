// Encoding user-supplied names for response headers and links. A header value may carry only
// visible ASCII (Node refuses anything above U+00FF, and sends U+0080-U+00FF as Latin-1 bytes
// nobody decodes correctly), so every name that reaches a header goes through one of these.

/** A decoded path ("dir/中文.txt") as an RFC 3986 path: each segment percent-encoded as UTF-8,
 *  the slashes between them kept. */
export function encodePath (path: string): string {
  return path.split('/').map(encodeSegment).join('/')
}

/** One path segment, percent-encoded (RFC 3986 §3.3: unreserved characters stay as they are;
 *  encodeURIComponent leaves !'()* too, which are sub-delims and legal in a segment). */
export function encodeSegment (segment: string): string {
  return encodeURIComponent(segment)
}

/** A Content-Disposition value naming `filename` (RFC 6266): an ASCII `filename=` fallback for
 *  old clients, and the exact name as RFC 8187 `filename*=UTF-8''...`. */
export function contentDisposition (filename: string, disposition: 'attachment' | 'inline' = 'attachment'): string {
  // eslint-disable-next-line no-control-regex
  const fallback = filename.replace(/[^\x20-\x7e]|["\\%]/g, '_')
  return `${disposition}; filename="${fallback}"; filename*=UTF-8''${rfc8187(filename)}`
}

/** RFC 8187 §3.2.1 value-chars: attr-char stays, everything else is %XX of its UTF-8 bytes. */
function rfc8187 (value: string): string {
  return encodeURIComponent(value).replace(/['()*]/g, c => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
}
