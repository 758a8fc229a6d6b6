// A virtual repository: one URL over member repositories asked in order. Formats ask it which
// members may serve a package (dependency-confusion protection), resolve a reference to the first
// member that has it, merge metadata first-member-wins, and send writes to defaultLocal.
// See protocols/README.md, "Virtual repositories".
import type { Context } from 'koa'
import { forbidden, methodNotAllowed, RegistryError } from '../../../store/errors.ts'
import type { FormatContext } from '../../format.ts'

export interface VirtualMember {
  name: string
  kind: 'local' | 'remote'
  fc: FormatContext
}

export interface VirtualRepositoryParts {
  name: string
  members: VirtualMember[]
  /** The local member writes go to; none: writes are refused with 405. */
  defaultLocal?: string
  /** Names remote members may serve even when a local member has them. */
  allowRemoteOverride?: string[]
}

export class VirtualRepository {
  readonly name: string
  readonly members: readonly VirtualMember[]
  readonly #defaultLocal?: VirtualMember
  readonly #override: Set<string>

  constructor (p: VirtualRepositoryParts) {
    this.name = p.name
    this.members = p.members
    this.#defaultLocal = p.members.find(m => m.name === p.defaultLocal && m.kind === 'local')
    if (p.defaultLocal != null && this.#defaultLocal == null) throw new Error(`virtual repository ${p.name}: defaultLocal ${p.defaultLocal} is not a local member`)
    this.#override = new Set(p.allowRemoteOverride ?? [])
  }

  /** The members that may serve `name`, in order. Dependency-confusion protection: if any local
   *  member has the name (`inLocal` says, per member), remote members are left out, whatever
   *  their order and versions, unless the name is in allowRemoteOverride. Members the request
   *  may not read are left out too (the rule itself counts every local member). */
  membersFor (koa: Context, name: string, inLocal: (member: VirtualMember) => boolean): VirtualMember[] {
    const local = this.members.filter(m => m.kind === 'local')
    const serving = !this.#override.has(name) && local.some(inLocal) ? local : this.members
    return serving.filter(m => m.fc.allows(koa, 'read'))
  }

  /** The member a write goes to (the request needs write there too), or 405 naming the key to set. */
  writeTarget (koa: Context, what: string): FormatContext {
    if (this.#defaultLocal == null) {
      throw methodNotAllowed(`${this.name} is a virtual repository without defaultLocal: ${what} to one of its local members (${this.members.filter(m => m.kind === 'local').map(m => m.name).join(', ') || 'none'}), or set defaultLocal`)
    }
    const target = this.#defaultLocal.fc
    if (!target.allows(koa, 'write')) throw forbidden(`${what} to ${this.name} goes to its defaultLocal ${target.repo.name}, which this principal may not write to`)
    return target
  }

  get defaultLocal (): string | undefined { return this.#defaultLocal?.name }
}

/** Asks `members` in order; the first answer that is not undefined wins. A member that fails
 *  with anything but NotFound (an upstream that is down) is skipped, and its error is thrown if
 *  no later member has the thing either, so the client sees why rather than a bare 404. */
export async function firstMember<T> (members: readonly VirtualMember[], ask: (m: VirtualMember) => Promise<T | undefined>): Promise<{ member: VirtualMember, value: T } | undefined> {
  let failure: unknown
  for (const member of members) {
    try {
      const value = await ask(member)
      if (value !== undefined) return { member, value }
    } catch (err) {
      if (err instanceof RegistryError && err.code === 'NotFound') continue
      failure ??= err
    }
  }
  if (failure !== undefined) throw failure
  return undefined
}

/** Keyed entries merged across members in member order: for a key several members have, the
 *  first member's entry wins. */
export function mergeFirstWins<T> (sources: ReadonlyArray<{ member: VirtualMember, entries: Iterable<[string, T]> }>): Map<string, { member: VirtualMember, value: T }> {
  const merged = new Map<string, { member: VirtualMember, value: T }>()
  for (const { member, entries } of sources) {
    for (const [key, value] of entries) if (!merged.has(key)) merged.set(key, { member, value })
  }
  return merged
}
