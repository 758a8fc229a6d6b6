// The CLI side of `akmesh export --lockfile`: reads the lockfiles, resolves them through the node
// running on the data directory, and waits until it signed what it cached (export reads signed
// manifests from the data directory).
import { readLockfile, repositoryFor, resolveLockfiles, untilSigned, type LockfileSelection, type RepositoryView } from './lockfile-export.ts'

interface Parts { dataDir: string, self: string, repositories: RepositoryView[] }

export async function lockfileSelection (parts: Parts, opts: { lockfiles: string[], repos: string[], url?: string, token?: string, allowMissing?: boolean, signal?: AbortSignal }): Promise<LockfileSelection> {
  if (opts.url == null) throw new Error('--lockfile needs the node running on this data directory: --url http://HOST:PORT (or $AKMESH_URL); it resolves and fetches the entries')
  if (opts.repos.length === 0) throw new Error('--lockfile needs --repo: the remote or virtual repository (one per format) to resolve the lockfile through')
  const node = { url: opts.url, token: opts.token }
  if (opts.token != null) {
    // An admin token can ask who the node is: the data directory read must be that node's.
    const res = await fetch(new URL('/-/mesh/status', opts.url), { headers: { authorization: `Bearer ${opts.token}` }, signal: opts.signal })
    if (res.status === 200) {
      const { peerId } = await res.json() as { peerId: string }
      if (peerId !== parts.self) throw new Error(`the node at ${opts.url} is ${peerId}, not the node of ${parts.dataDir} (${parts.self})`)
    } else await res.body?.cancel()
  }
  const lockfiles = []
  for (const file of opts.lockfiles) {
    const parsed = await readLockfile(file)
    lockfiles.push({ parsed, ...repositoryFor(parsed.format, file, opts.repos, parts.repositories) })
  }
  const selection = await resolveLockfiles(node, lockfiles, { allowMissing: opts.allowMissing, signal: opts.signal })
  const { openStorage } = await import('../storage.ts')
  const { db } = await openStorage(parts.dataDir)
  try { await untilSigned(db, parts.self, selection.artifacts, { signal: opts.signal }) } finally { db.close() }
  return selection
}
