// The packument of an npm virtual repository: its members' packuments merged. Versions from all
// members; for a version several members have, the first member's document (and its integrity)
// wins; dist-tags merged the same way, tag by tag; package fields (description, readme) and
// `_rev` from the first member that has the package. Tarball URLs point at the virtual repository.
import { createHash } from 'node:crypto'
import semver from 'semver'
import { mergeFirstWins, type VirtualMember } from '../shared/virtual/virtual-repository.ts'
import { INSTALL_FIELDS, tarballUrl } from './packument.ts'
import type { MemberPackument } from './virtual-member.ts'

export interface MergedPackage {
  full: Record<string, unknown>
  /** Which member each version came from. */
  origin: Map<string, string>
}

export function mergePackuments (name: string, docs: Array<{ member: VirtualMember, doc: MemberPackument }>, baseUrl: string): MergedPackage {
  const versions = mergeFirstWins(docs.map(({ member, doc }) => ({ member, entries: Object.entries(doc.versions ?? {}) })))
  const tags = mergeFirstWins(docs.map(({ member, doc }) => ({
    member,
    // A tag only counts where its member's version is the one served.
    entries: Object.entries(doc['dist-tags'] ?? {}).filter(([, v]) => versions.get(v)?.member === member)
  })))
  const ordered = [...versions.keys()].sort(semver.compare)
  const first = docs[0].doc
  const time: Record<string, string> = {}
  for (const v of ordered) {
    const t = docs.find(d => d.member === versions.get(v)?.member)?.doc.time?.[v]
    if (t != null) time[v] = t
  }
  const stamps = Object.values(time).sort()
  if (stamps.length > 0) { time.created = stamps[0]; time.modified = stamps[stamps.length - 1] }
  const distTags = Object.fromEntries([...tags].map(([t, { value }]) => [t, value]))
  if (distTags.latest == null && ordered.length > 0) distTags.latest = semver.maxSatisfying(ordered, '*') ?? ordered[ordered.length - 1]
  const full: Record<string, unknown> = {
    ...first,
    _id: name,
    _rev: revOf(docs),
    name,
    'dist-tags': distTags,
    versions: Object.fromEntries(ordered.map(v => {
      const doc = (versions.get(v) as { value: Record<string, unknown> }).value
      return [v, { ...doc, dist: { ...(doc.dist as object), tarball: tarballUrl(baseUrl, name, v) } }]
    })),
    time
  }
  return { full, origin: new Map([...versions].map(([v, { member }]) => [v, member.name])) }
}

/** The abbreviated (install) document of a merged packument. */
export function abbreviate (full: Record<string, unknown>): Record<string, unknown> {
  const versions = full.versions as Record<string, Record<string, unknown>>
  return {
    name: full.name,
    modified: (full.time as Record<string, string>).modified,
    'dist-tags': full['dist-tags'],
    versions: Object.fromEntries(Object.entries(versions).map(([v, doc]) =>
      [v, Object.fromEntries(INSTALL_FIELDS.filter(f => doc[f] !== undefined).map(f => [f, doc[f]]))]))
  }
}

function revOf (docs: Array<{ member: VirtualMember, doc: MemberPackument }>): string {
  const h = createHash('sha256')
  for (const { member, doc } of docs) h.update(`${member.name}\0${String(doc._rev)}\0`)
  return `1-${h.digest('hex').slice(0, 32)}`
}
