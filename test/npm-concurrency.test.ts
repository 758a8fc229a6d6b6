// Many real `npm publish` processes at once against one node: every publish succeeds, every
// package is then installable and its code runs.
import test from 'ava'
import { randomBytes } from 'node:crypto'
import { makeTempDir, startTestNode } from './helpers/node.ts'
import { npmClient, runNode, writePackage, writeProject } from './helpers/npm-client.ts'

const PACKAGES = 50
/** npm processes at a time: each is ~1 s of CPU, and the machine has 2 cores. */
const PARALLEL = 10

async function pool<T> (items: T[], width: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < items.length) await work(items[next++])
  }))
}

test(`${PACKAGES} concurrent npm publishes of different packages all succeed and all install`, async (t) => {
  const node = await startTestNode(t)
  const npm = await npmClient(t, node)
  if (npm == null) return
  const root = await makeTempDir(t, 'akmesh-many-')
  const run = randomBytes(3).toString('hex')
  const names = Array.from({ length: PACKAGES }, (_, i) => i % 2 === 0 ? `many-${run}-${i}` : `@many/p-${run}-${i}`)
  const dirs = await Promise.all(names.map(async (name, i) =>
    await writePackage(root, { name, version: '1.0.0', source: `module.exports = ${i * 1000 + 7}\n` })))

  const failures: string[] = []
  await pool(names.map((name, i) => ({ name, dir: dirs[i] })), PARALLEL, async ({ name, dir }) => {
    const r = await npm.run(['publish'], { cwd: dir })
    if (r.code !== 0) failures.push(`${name}: ${r.stderr}`)
  })
  t.deepEqual(failures, [])

  for (const name of names) {
    const res = await fetch(`${node.url}/npm/${name.replace('/', '%2f')}`)
    t.is(res.status, 200, name)
  }

  const project = await writeProject(t)
  const install = await npm.run(['install', ...names], { cwd: project })
  t.is(install.code, 0, install.stderr)
  const sum = await runNode(project, `console.log(${JSON.stringify(names)}.reduce((s, n) => s + require(n), 0))`)
  const expected = names.reduce((s, _, i) => s + i * 1000 + 7, 0)
  t.is(sum.stdout.trim(), String(expected), sum.stderr)
})
