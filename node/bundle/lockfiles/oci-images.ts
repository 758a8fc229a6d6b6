// A list of OCI image references, one a line (`#` comments): `name:tag`, `name@sha256:<hex>` or
// `name:tag@sha256:<hex>` (the digest pins it: the tag must still name those bytes). A registry
// host in front (`host[:port]/name`, recognised as Docker does: a first component with a dot or
// a port, or `localhost`) is dropped: the --repo repository decides where images come from.
import type { LockfileProblem, OciEntry, ParsedLockfile } from './types.ts'

const NAME = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/
const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/
const DIGEST = /^sha256:[a-f0-9]{64}$/

export function parseImageList (text: string, file: string): ParsedLockfile {
  const entries = new Map<string, OciEntry>()
  const problems: LockfileProblem[] = []
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.replace(/#.*$/, '').trim()
    if (line === '') return
    const where = `${file} line ${i + 1} (${line})`
    let rest = line
    let digest: string | undefined
    const at = rest.indexOf('@')
    if (at >= 0) { digest = rest.slice(at + 1); rest = rest.slice(0, at) }
    const parts = rest.split('/')
    if (parts.length > 1 && (/[.:]/.test(parts[0]) || parts[0] === 'localhost')) parts.shift()
    let path = parts.join('/')
    let tag: string | undefined
    const colon = path.lastIndexOf(':')
    if (colon >= 0) { tag = path.slice(colon + 1); path = path.slice(0, colon) }
    if (!NAME.test(path) || (tag != null && !TAG.test(tag)) || (digest != null && !DIGEST.test(digest))) {
      problems.push({ where, problem: 'unsupported', message: `${where}: not an image reference (name:tag, name@sha256:<64 hex> or name:tag@sha256:<64 hex>)` })
      return
    }
    if (tag == null && digest == null) tag = 'latest'
    const key = `${path}:${tag ?? ''}@${digest ?? ''}`
    if (!entries.has(key)) entries.set(key, { kind: 'oci', where, name: path, ...(tag != null ? { tag } : {}), ...(digest != null ? { digest } : {}) })
  })
  return { file, format: 'oci', entries: [...entries.values()], problems }
}
