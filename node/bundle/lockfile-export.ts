// `akmesh export --lockfile`: the set of artifacts a lockfile pins, resolved through a running
// node's remote or virtual repository (which fetches and caches what it lacks), for
// exportBundle's artifact selection. Every entry is resolved before anything is written; any
// problem (not upstream, other bytes than the lockfile pins, a git/file entry) fails the export
// with every problem named, unless --allow-missing, which skips those entries and lists them.
import { readFile } from 'node:fs/promises'
import { basename } from 'node:path'
import type { DB } from '../../store/db.ts'
import type { NodeAt } from './lockfiles/node-http.ts'
import { parseNpmLockfile } from './lockfiles/npm.ts'
import { resolveNpm } from './lockfiles/npm-resolve.ts'
import { parseImageList } from './lockfiles/oci-images.ts'
import { ociRowName, resolveImage } from './lockfiles/oci-resolve.ts'
import { resolvePypi } from './lockfiles/pypi-resolve.ts'
import { parsePylock } from './lockfiles/pylock.ts'
import { parseRequirements } from './lockfiles/requirements.ts'
import { LockfileError, type LockfileEntry, type LockfileProblem, type ParsedLockfile, type ResolvedArtifact } from './lockfiles/types.ts'
import type { SelectedArtifact } from './select.ts'

export interface RepositoryView { name: string, format: string, type?: string, members?: string[], dockerHubLibrary?: boolean }

/** Which parser reads a lockfile, by what it holds: JSON is a package-lock.json (or
 *  npm-shrinkwrap.json), text with `--hash=` options a requirements.txt, a `.toml` file a
 *  pylock.toml, other text a list of image references (one a line). */
export async function readLockfile (file: string): Promise<ParsedLockfile> {
  const text = await readFile(file, 'utf8')
  if (text.trimStart().startsWith('{')) return parseNpmLockfile(text, file)
  if (basename(file).endsWith('.toml')) return parsePylock(text, file)
  if (/--hash[=\s]/.test(text)) return parseRequirements(text, file)
  return parseImageList(text, file)
}

/** The repository of `--repo` a lockfile of `format` resolves through, and the repositories its
 *  rows land in (a virtual repository's members). */
export function repositoryFor (format: string, file: string, named: string[], repositories: RepositoryView[]): { repo: string, rows: RepositoryView[] } {
  const fits = named.map(n => {
    const r = repositories.find(x => x.name === n)
    if (r == null) throw new LockfileError(`--repo ${n}: no such repository in the config (pass the node's config file: --config, or $AKMESH_CONFIG)`)
    return r
  }).filter(r => r.format === format)
  if (fits.length !== 1) {
    throw new LockfileError(`${file} is a ${format} lockfile: --repo must name exactly one ${format} repository (remote or virtual) to resolve it through; ` +
      `it names ${fits.length === 0 ? 'none' : fits.map(r => r.name).join(', ')}`)
  }
  const r = fits[0]
  const rows = r.type === 'virtual' ? (r.members ?? []).map(m => repositories.find(x => x.name === m)).filter(x => x != null) : [r]
  return { repo: r.name, rows }
}

export interface LockfileSelection { artifacts: SelectedArtifact[], skipped: LockfileProblem[], entries: number }

/** Resolves every entry (a few at a time); throws a LockfileError naming every problem unless
 *  `allowMissing`, when problem entries are skipped and returned. */
export async function resolveLockfiles (node: NodeAt, lockfiles: Array<{ parsed: ParsedLockfile, repo: string, rows: RepositoryView[] }>, opts: { allowMissing?: boolean, signal?: AbortSignal } = {}): Promise<LockfileSelection> {
  const problems: LockfileProblem[] = lockfiles.flatMap(l => l.parsed.problems)
  const artifacts: SelectedArtifact[] = []
  const work = lockfiles.flatMap(l => l.parsed.entries.map(entry => ({ entry, repo: l.repo, rows: l.rows })))
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < work.length) {
      const { entry, repo, rows } = work[next++]
      const found = await resolveEntry(node, repo, entry, opts.signal)
      if ('problem' in found) { problems.push(found); continue }
      for (const r of Array.isArray(found) ? found : [found]) artifacts.push({ at: rows.map(row => ({ repo: row.name, name: rowName(row, r.name) })), version: r.version })
    }
  }
  await Promise.all(Array.from({ length: Math.min(4, work.length) }, worker))
  if (problems.length > 0 && opts.allowMissing !== true) {
    throw new LockfileError(`${problems.length} lockfile entr${problems.length === 1 ? 'y' : 'ies'} cannot be bundled, nothing written:\n  ${problems.map(p => `${p.problem}: ${p.message}`).join('\n  ')}\n` +
      '(pass --allow-missing to bundle the rest and list these)', problems)
  }
  return { artifacts, skipped: problems, entries: work.length }
}

/** The name a repository keeps an artifact's rows under. */
const rowName = (repo: RepositoryView, name: string): string => repo.format === 'oci' ? ociRowName(repo, name) : name

async function resolveEntry (node: NodeAt, repo: string, entry: LockfileEntry, signal?: AbortSignal): Promise<ResolvedArtifact | ResolvedArtifact[] | LockfileProblem> {
  switch (entry.kind) {
    case 'npm': return await resolveNpm(node, repo, entry, signal)
    case 'pypi': return await resolvePypi(node, repo, entry, signal)
    case 'oci': return await resolveImage(node, repo, entry, signal)
  }
}

/** Waits until the node has signed every local change of these artifacts (what it cached just
 *  now): export carries signed manifests only. */
export async function untilSigned (db: DB, self: string, artifacts: SelectedArtifact[], opts: { timeoutMs?: number, signal?: AbortSignal } = {}): Promise<void> {
  const unsigned = db.prepare<[string, string, string, string], { n: number }>(
    `SELECT COUNT(*) AS n FROM changes c WHERE c.origin IS NULL AND c.repo = ? AND c.name = ? AND c.version = ?
       AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.origin = ? AND m.seq = c.seq)`)
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000)
  for (;;) {
    const waiting = artifacts.filter(a => a.at.some(r => unsigned.get(r.repo, r.name, a.version, self)?.n !== 0))
    if (waiting.length === 0) return
    if (Date.now() > deadline) throw new LockfileError(`the node has not signed what it cached for ${waiting.slice(0, 5).map(a => `${a.at[0]?.name}@${a.version}`).join(', ')} yet (is it running on this data directory?)`)
    opts.signal?.throwIfAborted()
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}
