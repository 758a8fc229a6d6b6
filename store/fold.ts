// The state of one package as a pure function of its changes, whatever order they arrived in.
//
// Changes are folded in (timestamp, origin, seq) order, the same on every node:
// - publish: sets a version's files and metadata. If the version is live with other files from
//   another origin, the earlier publish wins (mesh/README.md, "Conflicts") and this one is a
//   conflict loser, unless it is an explicit replace (a mutable format re-uploading a path:
//   last writer wins).
// - add-files: creates the version or adds the files it lacks; its metadata replaces the current.
// - metadata: replaces the metadata of the live version it was made on (same files); a metadata
//   change made on a conflict loser's files is ignored.
// - delete: the version is gone (tombstoned) until a later publish; tags pointing at it go too.
// - tag / untag: last writer wins; a tag survives only if its version is live at the end.
// So a delete that arrives before its publish still wins (it is later), and re-applying or
// re-ordering manifests ends in the same state.
import type { Change } from './changes.ts'
import type { ArtifactFile } from './types.ts'

export interface ChangeRef { origin: string, seq: number }

export interface VersionState {
  live: boolean
  files: ArtifactFile[]
  metadata: Record<string, unknown>
  /** The change that set the current files. */
  by: ChangeRef
  createdAt: number
  updatedAt: number
}

export interface FoldConflict { version: string, winner: ChangeRef, loser: ChangeRef }

export interface PackageState {
  versions: Map<string, VersionState>
  tags: Map<string, string>
  conflicts: FoldConflict[]
}

/** `self` stands for this node's own (origin NULL) rows, so they sort as they do elsewhere. */
export function foldPackage (changes: Change[], self: string): PackageState {
  const keyed = changes.map(c => ({ c, origin: c.origin ?? self, seq: c.originSeq ?? c.seq }))
  keyed.sort((a, b) => a.c.at - b.c.at || (a.origin < b.origin ? -1 : a.origin > b.origin ? 1 : 0) || a.seq - b.seq)

  const versions = new Map<string, VersionState>()
  const tags = new Map<string, string>()
  const conflicts: FoldConflict[] = []
  for (const { c, origin, seq } of keyed) {
    const ref = { origin, seq }
    const s = versions.get(c.version)
    const live = s?.live === true ? s : undefined
    const files = c.detail.files ?? []
    const metadata = c.detail.metadata ?? {}
    switch (c.kind) {
      case 'publish': {
        const same = live != null && sameFiles(live.files, files)
        if (live != null && !same && c.detail.replace !== true && live.by.origin !== origin) {
          conflicts.push({ version: c.version, winner: live.by, loser: ref })
          break
        }
        versions.set(c.version, { live: true, files, metadata, by: same ? live.by : ref, createdAt: live?.createdAt ?? c.at, updatedAt: c.at })
        break
      }
      case 'add-files': {
        if (live == null) {
          versions.set(c.version, { live: true, files, metadata, by: ref, createdAt: c.at, updatedAt: c.at })
          break
        }
        const have = new Set(live.files.map(f => f.filename))
        const merged = [...live.files, ...files.filter(f => !have.has(f.filename))].sort((a, b) => a.filename < b.filename ? -1 : a.filename > b.filename ? 1 : 0)
        versions.set(c.version, { ...live, files: merged, metadata, updatedAt: c.at })
        break
      }
      case 'metadata':
        if (live != null && (c.detail.files == null || sameFiles(live.files, files))) {
          versions.set(c.version, { ...live, metadata, updatedAt: c.at })
        }
        break
      case 'delete':
        versions.set(c.version, { live: false, files: [], metadata: {}, by: ref, createdAt: c.at, updatedAt: c.at })
        for (const [tag, v] of tags) if (v === c.version) tags.delete(tag)
        break
      case 'tag':
        if (c.detail.tag != null) tags.set(c.detail.tag, c.version)
        break
      case 'untag':
        if (c.detail.tag != null) tags.delete(c.detail.tag)
        break
    }
  }
  for (const [tag, v] of tags) if (versions.get(v)?.live !== true) tags.delete(tag)
  return { versions, tags, conflicts }
}

export function sameFiles (a: ArtifactFile[], b: ArtifactFile[]): boolean {
  if (a.length !== b.length) return false
  const m = new Map(a.map(f => [f.filename, f.cid]))
  return b.every(f => m.get(f.filename) === f.cid)
}

/** JSON with sorted keys: metadata decoded from dag-cbor has another key order than the JSON it
 *  was made from, and is still the same metadata. */
export function canonicalJson (x: unknown): string {
  return JSON.stringify(x, (_k, v: unknown) => v !== null && typeof v === 'object' && !Array.isArray(v)
    ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0))
    : v)
}
