// Top functions by self time in V8 CPU profiles (node --cpu-prof), for bench/README.md:
//   node bench/lib/cpu-profile-top.ts <file.cpuprofile>... [--top N]
import { readFileSync } from 'node:fs'
import { basename } from 'node:path'

interface Node { id: number, callFrame: { functionName: string, url: string, lineNumber: number }, hitCount?: number }
interface Profile { nodes: Node[], samples: number[], timeDeltas: number[], startTime: number, endTime: number }

const args = process.argv.slice(2)
const topAt = args.indexOf('--top')
const top = topAt >= 0 ? Number(args.splice(topAt, 2)[1]) : 12
for (const file of args) {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile
  const byId = new Map(p.nodes.map(n => [n.id, n]))
  const self = new Map<string, number>()
  let total = 0
  // Each sample's time is the delta to the next sample.
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i + 1] ?? 0
    const n = byId.get(p.samples[i])
    if (n == null) continue
    const { functionName, url, lineNumber } = n.callFrame
    const where = url === '' ? '' : ` ${url.replace(/^.*\/(node_modules|node:internal|wt-[^/]+|bp-base)\//, '$1/').replace(/^file:\/\//, '')}:${lineNumber + 1}`
    const key = `${functionName === '' ? '(anonymous)' : functionName}${where}`
    self.set(key, (self.get(key) ?? 0) + dt)
    total += dt
  }
  const wall = (p.endTime - p.startTime) / 1e6
  console.log(`\n${basename(file)}: ${wall.toFixed(2)} s profiled`)
  console.log('| self ms | % | function |\n|---|---|---|')
  for (const [k, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`| ${(us / 1000).toFixed(0)} | ${(100 * us / total).toFixed(1)} | ${k.replaceAll('|', '\\|')} |`)
  }
}
