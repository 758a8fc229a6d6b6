// Starting both npm registries under test and loading the same packages into each.
import semver from 'semver'
import { startAkmesh } from './akmesh.ts'
import { publishAll, type CorpusPackage } from './corpus.ts'
import { escapeName, pool, publishFile } from './npm-publish.ts'
import { fmt, log, timeMs } from './stats.ts'
import type { Registry } from './types.ts'
import { startVerdaccio } from './verdaccio.ts'

export interface Started { registries: Registry[], failures: string[] }

/** Starts akmesh and Verdaccio; a registry that fails to start is reported, not fatal. */
export async function startRegistries (): Promise<Started> {
  const registries: Registry[] = []
  const failures: string[] = []
  for (const [name, start] of [['akmesh', startAkmesh], ['verdaccio', startVerdaccio]] as const) {
    try {
      const r = await start()
      log(`${name} up at ${r.registry}`)
      registries.push(r)
    } catch (err) {
      const msg = `${name} failed to start: ${err instanceof Error ? err.message : String(err)}`
      log(msg)
      failures.push(msg)
    }
  }
  return { registries, failures }
}

/** Publishes every package to the registry and checks each version is then served. Returns ms. */
export async function load (reg: Registry, packages: CorpusPackage[]): Promise<number> {
  const { ms } = await timeMs(async () => {
    await publishAll(p => publishFile(reg, p.file, { name: p.name, version: p.version }), packages)
  })
  log(`${reg.name}: published ${packages.length} tarballs in ${fmt(ms / 1000)} s`)
  const byName = new Map<string, string[]>()
  for (const p of packages) byName.set(p.name, [...(byName.get(p.name) ?? []), p.version])
  await pool([...byName], 8, async ([name, versions]) => {
    const res = await fetch(`${reg.registry}${escapeName(name)}`, { headers: { authorization: `Bearer ${reg.token}` } })
    if (!res.ok) throw new Error(`${reg.name}: GET packument ${name} after publish -> ${res.status} ${(await res.text()).slice(0, 300)}`)
    const doc = await res.json() as { versions?: Record<string, unknown>, 'dist-tags'?: Record<string, string> }
    const missing = versions.filter(v => doc.versions?.[v] == null)
    if (missing.length > 0) throw new Error(`${reg.name}: ${name} lacks published versions ${missing.join(', ')}`)
    const highest = [...versions].sort(semver.compare).at(-1)
    if (doc['dist-tags']?.latest !== highest) log(`WARNING ${reg.name}: ${name} dist-tags.latest is ${doc['dist-tags']?.latest}, expected ${highest}`)
  })
  return ms
}
