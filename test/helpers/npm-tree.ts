// A tree of small npm packages with dependencies between them, for installs through a registry:
// each package's index.js exports a number computed from its dependencies' numbers, so a project
// that prints the sum over its dependencies proves every package's code came through.
import { tgzBytes } from './archives.ts'

export interface TreePackage {
  manifest: { name: string, version: string, main: string, license: string, dependencies: Record<string, string> }
  tgz: Buffer
  /** What `require(name)` returns. */
  value: number
  tag?: string
}

/** `count` packages `<prefix>-NN` (each depending on up to two earlier ones, by caret range), a
 *  scoped one, and a second major of the first kept under the `next` dist-tag. */
export async function packageTree (prefix: string, count: number): Promise<TreePackage[]> {
  const out: TreePackage[] = []
  const byName = new Map<string, TreePackage>()
  const make = async (name: string, version: string, deps: string[], own: number, tag?: string) => {
    const dependencies = Object.fromEntries(deps.map(d => [d, `^${byName.get(d)?.manifest.version ?? '1.0.0'}`]))
    const value = own + deps.reduce((sum, d) => sum + (byName.get(d) as TreePackage).value, 0)
    const source = `module.exports = ${own}${deps.map(d => ` + require(${JSON.stringify(d)})`).join('')}\n`
    const manifest = { name, version, main: 'index.js', license: 'MIT', dependencies }
    const tgz = await tgzBytes([
      { path: 'package/package.json', text: JSON.stringify(manifest) },
      { path: 'package/index.js', text: source }
    ])
    const p: TreePackage = { manifest, tgz, value, tag }
    out.push(p)
    if (tag == null) byName.set(name, p)
    return p
  }
  for (let i = 0; i < count; i++) {
    const deps = [i - 1, Math.floor(i / 3)].filter(j => j >= 0 && j < i).map(j => `${prefix}-${String(j).padStart(2, '0')}`)
    await make(`${prefix}-${String(i).padStart(2, '0')}`, `1.${i % 3}.0`, [...new Set(deps)], i + 1)
  }
  await make(`@${prefix}/scoped`, '1.0.0', [`${prefix}-00`], 1000)
  await make(`${prefix}-00`, '2.0.0-beta.1', [], 500, 'next')
  return out
}
