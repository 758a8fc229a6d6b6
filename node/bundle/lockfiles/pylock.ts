// pylock.toml (PEP 751), the simple part: every `[[packages]]` entry with a `version` and its
// `wheels` / `sdist` files' sha256 hashes is a pinned release, resolved like a requirements.txt
// line (the files are asked of the --repo index by filename hash, not at the URLs the lock
// names). A `vcs`, `directory` or `archive` package is not an index package: a problem.
// https://packaging.python.org/en/latest/specifications/pylock-toml/
import { parse } from 'smol-toml'
import { canonicalName } from '../../../protocols/pypi/names.ts'
import type { LockfileProblem, ParsedLockfile, PypiEntry } from './types.ts'

interface LockedFile { name?: string, hashes?: Record<string, unknown> }
interface LockedPackage { name?: unknown, version?: unknown, wheels?: LockedFile[], sdist?: LockedFile, vcs?: unknown, directory?: unknown, archive?: unknown }

export function parsePylock (text: string, file: string): ParsedLockfile {
  let doc: { 'lock-version'?: unknown, packages?: unknown }
  try { doc = parse(text) as typeof doc } catch (err) { throw new Error(`${file}: not TOML (${(err as Error).message.split('\n')[0]})`) }
  if (typeof doc['lock-version'] !== 'string' || !Array.isArray(doc.packages)) throw new Error(`${file}: no lock-version or [[packages]]: not a pylock.toml`)
  const entries = new Map<string, PypiEntry>()
  const problems: LockfileProblem[] = []
  ;(doc.packages as LockedPackage[]).forEach((p, i) => {
    const name = typeof p.name === 'string' ? p.name : `packages[${i}]`
    const where = `${file} [[packages]] ${name}${typeof p.version === 'string' ? ` ${p.version}` : ''}`
    const source = p.vcs != null ? 'vcs' : p.directory != null ? 'directory' : p.archive != null ? 'archive' : undefined
    if (source != null) { problems.push({ where, problem: 'unsupported', message: `${where}: a ${source} package, not an index package` }); return }
    if (typeof p.name !== 'string' || typeof p.version !== 'string') { problems.push({ where, problem: 'unsupported', message: `${where}: no name and version` }); return }
    const files = [...(Array.isArray(p.wheels) ? p.wheels : []), ...(p.sdist != null ? [p.sdist] : [])]
    const sha256 = files.map(f => f.hashes?.sha256).filter((h): h is string => typeof h === 'string' && /^[0-9a-fA-F]{64}$/.test(h)).map(h => h.toLowerCase())
    if (sha256.length === 0) { problems.push({ where, problem: 'unsupported', message: `${where}: no wheels or sdist with a sha256 hash` }); return }
    const project = canonicalName(p.name)
    const key = `${project}==${p.version}`
    const known = entries.get(key)
    if (known != null) known.sha256 = [...new Set([...known.sha256, ...sha256])]
    else entries.set(key, { kind: 'pypi', where, project, version: p.version, sha256: [...new Set(sha256)] })
  })
  return { file, format: 'pypi', entries: [...entries.values()], problems }
}
