// package-lock.json / npm-shrinkwrap.json: v2/v3 `packages` (keyed by install path) and v1
// `dependencies` (nested). Only registry packages can be bundled: an entry resolved from a git
// URL, a file or a tarball URL elsewhere, or a workspace link, is a problem named with its path.
// https://docs.npmjs.com/cli/configuring-npm/package-lock-json
import type { NpmEntry, LockfileProblem, ParsedLockfile } from './types.ts'

interface V2Entry { name?: string, version?: string, resolved?: string, integrity?: string, link?: boolean, inBundle?: boolean }
interface V1Entry { version?: string, resolved?: string, integrity?: string, bundled?: boolean, dependencies?: Record<string, V1Entry> }

/** A `resolved`/`version` that is not a registry tarball: git, file, link, a GitHub shorthand. */
const NOT_REGISTRY = /^(git\+|git:|github:|gitlab:|bitbucket:|gist:|file:|link:|workspace:)/

export function parseNpmLockfile (text: string, file: string): ParsedLockfile {
  let doc: { lockfileVersion?: number, packages?: Record<string, V2Entry>, dependencies?: Record<string, V1Entry> }
  try { doc = JSON.parse(text) } catch (err) { throw new Error(`${file}: not JSON (${(err as Error).message})`) }
  const entries = new Map<string, NpmEntry>()
  const problems: LockfileProblem[] = []
  const add = (where: string, name: string, e: { version?: string, resolved?: string, integrity?: string }) => {
    const version = e.version ?? ''
    const source = e.resolved ?? version
    if (NOT_REGISTRY.test(source) || NOT_REGISTRY.test(version) || /^(https?:)?\/\//.test(version)) {
      problems.push({ where, problem: 'unsupported', message: `${where}: ${source} is not a registry package (git, file or URL dependencies cannot be bundled)` })
      return
    }
    // An alias (`"x": "npm:real@1.0.0"` in v1) names the real package.
    const alias = /^npm:((?:@[^/]+\/)?[^@]+)@(.+)$/.exec(version)
    const real = alias != null ? { name: alias[1], version: alias[2] } : { name, version }
    if (real.version === '') { problems.push({ where, problem: 'unsupported', message: `${where}: the lockfile pins no version` }); return }
    const key = `${real.name}@${real.version}`
    if (!entries.has(key)) entries.set(key, { kind: 'npm', where, name: real.name, version: real.version, ...(e.integrity != null ? { integrity: e.integrity } : {}) })
  }
  if (doc.packages != null && typeof doc.packages === 'object') {
    for (const [path, e] of Object.entries(doc.packages)) {
      // "" is the project itself; bundled dependencies come inside their parent's tarball.
      if (path === '' || e == null || e.inBundle === true) continue
      if (e.link === true) { problems.push({ where: path, problem: 'unsupported', message: `${path}: a link to ${e.resolved ?? 'a local folder'} (workspace), not a registry package` }); continue }
      const at = path.lastIndexOf('node_modules/')
      if (at < 0) continue // a workspace folder's own entry (its link is reported above)
      add(path, e.name ?? path.slice(at + 'node_modules/'.length), e)
    }
  } else if (doc.dependencies != null && typeof doc.dependencies === 'object') {
    const walk = (deps: Record<string, V1Entry>, parent: string) => {
      for (const [name, e] of Object.entries(deps)) {
        if (e == null || e.bundled === true) continue
        const where = `${parent}node_modules/${name}`
        add(where, name, e)
        if (e.dependencies != null) walk(e.dependencies, `${where}/`)
      }
    }
    walk(doc.dependencies, '')
  } else {
    throw new Error(`${file}: neither "packages" nor "dependencies": not a package-lock.json`)
  }
  return { file, format: 'npm', entries: [...entries.values()], problems }
}
