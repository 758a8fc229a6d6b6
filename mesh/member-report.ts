// The member table and its warnings from live sources: the node's Membership, the live peering
// file, its libp2p connections and its manifest log; `akmesh peers list` builds the same from
// the data directory (node/peers-cli.ts). Logs expiring certificates at start and then daily.
import type { Logger } from 'pino'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { decodeCertificate, type Certificate } from './certificates.ts'
import { memberTable, memberWarnings, type CertifiedMember, type MemberRow, type MemberWarning } from './member-table.ts'
import { OWN_CERTIFICATE_FILE } from './membership.ts'

export interface MemberReportInit {
  dataDir: string
  self?: string
  membership: { members: () => CertifiedMember[] }
  peering: () => { mesh: string, allow: string[] }
  /** Peer IDs connected now; undefined when no node runs on the data directory. */
  connected: () => Iterable<string> | undefined
  lastSeen: (origin: string) => { seq: number, timestamp: number, receivedAt: number } | undefined
}

export interface MemberReportView { members: MemberRow[], warnings: MemberWarning[] }

export class MemberReport {
  readonly #i: MemberReportInit
  constructor (init: MemberReportInit) { this.#i = init }

  async view (now = Date.now()): Promise<MemberReportView> {
    const { mesh, allow } = this.#i.peering()
    const live = this.#i.connected()
    const members = memberTable({
      mesh, self: this.#i.self, members: this.#i.membership.members(), allow, now,
      connected: live == null ? undefined : new Set(live), lastSeen: this.#i.lastSeen, own: await this.#ownFile()
    })
    return { members, warnings: memberWarnings(members, mesh, now) }
  }

  /** The own certificate file, unverified (Membership drops an expired one at load). */
  async #ownFile (): Promise<Certificate | undefined> {
    try { return decodeCertificate(await readFile(join(this.#i.dataDir, OWN_CERTIFICATE_FILE))) } catch { return undefined }
  }
}

const DAILY_MS = 86_400_000

/** Logs every certificate warning at start and then once a day (the status shows them live). */
export class CertificateExpiryWatch {
  readonly #report: MemberReport
  readonly #log: Logger
  readonly #everyMs: number
  #timer: ReturnType<typeof setInterval> | undefined

  constructor (report: MemberReport, log: Logger, everyMs = DAILY_MS) {
    this.#report = report
    this.#log = log.child({ component: 'mesh:membership' })
    this.#everyMs = everyMs
  }

  async check (): Promise<MemberWarning[]> {
    const { warnings } = await this.#report.view()
    for (const w of warnings) this.#log.warn({ peer: w.peer, site: w.site, self: w.self, kind: w.kind, expires: w.expires }, w.message)
    return warnings
  }

  async start (): Promise<void> {
    await this.check()
    this.#timer = setInterval(() => { this.check().catch((err) => this.#log.warn({ error: String(err) }, 'checking certificate expiry failed')) }, this.#everyMs)
    this.#timer.unref?.()
  }

  stop (): void { clearInterval(this.#timer) }
}
