// Which manifests and blobs a bundle carries: the whole node, some repositories, some origins,
// what is new since the last export to a destination, or what another site's inventory lacks.
// Selected in one read transaction, so the recorded watermarks match what was selected.
import type { FileBlobStore } from '../../store/blobs.ts'
import type { DB } from '../../store/db.ts'
import { badRequest, conflict } from '../../store/errors.ts'
import { currentManifests } from '../../store/current-manifests.ts'
import type { ManifestLog } from '../../store/manifests.ts'
import { manifestFacts } from '../manifest-facts.ts'
import type { DestinationState } from './export-state.ts'
import type { BundleIndex, SelectionMode } from './format.ts'
import { filesOf, heldManifests, type HeldManifest } from './held.ts'
import type { Inventory } from './inventory.ts'

export interface SelectOptions {
  repos?: string[]
  /** Only manifests of these origins (peer IDs), and the blobs they name. */
  origins?: string[]
  /** Only what is newer than this previous export (the --since-last state of a destination). */
  since?: DestinationState
  destination?: string
  lacks?: Inventory
  /** Bundle manifests whose blobs are not here (listed as absent) instead of failing. */
  allowMissing?: boolean
  /** Only these artifacts (a lockfile's set, lockfile-export.ts): every manifest of each version. */
  artifacts?: SelectedArtifact[]
}

/** One version, and where its rows may be: a virtual repository's members hold its rows, and a
 *  member may cache it under another name (OCI's `library/` of Docker Hub). */
export interface SelectedArtifact { at: Array<{ repo: string, name: string }>, version: string }

export interface Selection {
  mode: SelectionMode
  manifests: HeldManifest[]
  blobs: Array<{ cid: string, size: number }>
  absent: string[]
  base: Record<string, number>
  /** Per origin, the watermark at selection: what the next --since-last export starts from. */
  watermarks: Record<string, number>
}

export function selectBundle (deps: { db: DB, store: FileBlobStore, manifests: ManifestLog }, opts: SelectOptions): Selection {
  const { db, store, manifests } = deps
  const repos = opts.repos != null && opts.repos.length > 0 ? new Set(opts.repos) : undefined
  const origins = opts.origins != null && opts.origins.length > 0 ? new Set(opts.origins) : undefined
  if (opts.since != null) {
    const list = (x: Iterable<string> | null | undefined): string | null => x == null ? null : [...x].sort().join(',')
    const same = (what: string, was: string | null, now: string | null): void => {
      if (was !== now) throw badRequest(`the last export to ${opts.destination} selected ${what} ${was ?? '(all)'}, this one ${now ?? '(all)'}: use the same selection, or another destination name`)
    }
    same('repositories', list(opts.since.repos), list(repos))
    same('origins', list(opts.since.origins), list(origins))
  }
  return db.transaction((): Selection => {
    const held = heldManifests(db)
    const unknown = [...origins ?? []].filter(o => !held.some(m => m.origin === o))
    if (unknown.length > 0) throw badRequest(`--origin ${unknown.join(', ')}: this node holds no manifest of ${unknown.length === 1 ? 'that origin' : 'those origins'} (a peer ID, as /-/mesh/status lists under watermarks)`)
    const base = opts.since?.watermarks ?? {}
    const wanted = opts.artifacts == null ? undefined : new Set(opts.artifacts.flatMap(a => a.at.map(r => artifactKey(r.repo, r.name, a.version))))
    const lacks = opts.lacks == null ? undefined : new Map(Object.entries(opts.lacks.manifests).map(([o, s]) => [o, new Set(s)]))
    const chosen = held.filter(m =>
      (repos == null || repos.has(m.repo)) &&
      (origins == null || origins.has(m.origin)) &&
      (opts.since == null || m.seq > (base[m.origin] ?? 0)) &&
      (lacks == null || lacks.get(m.origin)?.has(m.seq) !== true) &&
      (wanted == null || wanted.has(artifactKey(m.repo, m.name, m.version))))
    if (opts.artifacts != null) {
      const found = new Set(chosen.map(m => artifactKey(m.repo, m.name, m.version)))
      const none = opts.artifacts.filter(a => !a.at.some(r => found.has(artifactKey(r.repo, r.name, a.version))))
      if (none.length > 0) throw conflict(`no signed manifest of ${none.slice(0, 5).map(a => `${a.at[0]?.name}@${a.version}`).join(', ')}${none.length > 5 ? ', ...' : ''} in ${[...new Set(none.flatMap(a => a.at.map(r => r.repo)))].join(', ')}`)
    }

    const theirs = new Set(opts.lacks?.blobs ?? [])
    const blobs = new Map<string, number>()
    const absent = new Set<string>()
    // Blobs of manifests a later delete or replace superseded may be gone (akmesh gc): listed as
    // absent, they need no --allow-missing (no node needs them once it holds the later manifest).
    const current = currentManifests(db, manifestFacts)
    const gone = new Set<string>()
    for (const m of chosen) {
      const record = manifests.get(m.origin, m.seq)
      if (record == null) continue
      const superseded = current.superseded(record)
      for (const f of filesOf(record.envelope)) {
        if (theirs.has(f.cid) || blobs.has(f.cid) || absent.has(f.cid)) continue
        if (store.has(f.cid)) blobs.set(f.cid, f.size)
        else if (superseded) gone.add(f.cid)
        else absent.add(f.cid)
      }
    }
    if (absent.size > 0 && opts.allowMissing !== true) {
      const list = [...absent]
      throw conflict(`${list.length} blob(s) the selected manifests name are not held here (replication on-demand?): ` +
        `${list.slice(0, 5).join(', ')}${list.length > 5 ? ', ...' : ''}. Fetch them first, or pass --allow-missing to bundle the manifests without them`)
    }
    // With --origin, only the selected origins: what the bundle speaks for (coverage, --since-last).
    const watermarks: Record<string, number> = {}
    // An artifact selection speaks for no origin's whole log: no watermarks (nor coverage warnings).
    if (wanted == null) for (const origin of new Set(held.map(m => m.origin))) if (origins == null || origins.has(origin)) watermarks[origin] = manifests.watermark(origin)
    const mode: SelectionMode = wanted != null ? 'artifacts' : opts.lacks != null ? 'lacks' : opts.since != null ? 'since' : repos != null ? 'repos' : origins != null ? 'origins' : 'all'
    // The base tells the importer what it must already hold. A repository filter leaves other
    // repositories' manifests out of every export, so a watermark cannot say that: no base then.
    // An origin filter keeps every manifest of the origins it keeps: their base stands.
    return { mode, manifests: chosen, blobs: [...blobs].map(([cid, size]) => ({ cid, size })), absent: [...new Set([...absent, ...gone])], base: repos == null && wanted == null ? base : {}, watermarks }
  })()
}

const artifactKey = (repo: string, name: string, version: string): string => `${repo}\0${name}\0${version}`

export type { BundleIndex }
