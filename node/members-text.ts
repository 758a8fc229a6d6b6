// The member table as text for `akmesh peers list`: one row per member, columns padded.
import type { MemberRow, MemberWarning } from '../mesh/member-table.ts'

const day = (iso: string): string => iso.slice(0, 10)
const minute = (iso: string): string => `${iso.slice(0, 16).replace('T', ' ')}Z`

export function membersText (rows: MemberRow[], warnings: MemberWarning[]): string[] {
  const head = ['PEER', 'SITE', 'STATE', 'GRANTS', 'EXPIRES', 'CONNECTED', 'LAST MANIFEST']
  const body = rows.map(r => [
    r.self ? `${r.peer} (this node)` : r.peer,
    r.site ?? '-',
    r.state,
    r.publish == null ? (r.self ? 'all' : 'all (allow list)') : r.publish.join(','),
    r.expires == null ? '-' : day(r.expires),
    r.self ? '-' : r.connected == null ? '?' : r.connected ? 'yes' : 'no',
    r.lastManifest == null ? '-' : `seq ${r.lastManifest.seq} at ${minute(r.lastManifest.timestamp)}`
  ])
  const widths = head.map((h, i) => Math.max(h.length, ...body.map(cells => cells[i]!.length)))
  const line = (cells: string[]): string => cells.map((c, i) => i === cells.length - 1 ? c : c.padEnd(widths[i]!)).join('  ')
  const out = [line(head), ...body.map(line)]
  for (const w of warnings) out.push(`warning: ${w.message}`)
  return out
}
