// Top functions by self time in a V8 .cpuprofile (node --cpu-prof), for bench/README.md.
//
//   node bench/profile-summary.ts <file.cpuprofile> [top (default 15)] [from s] [to s]
// `from`/`to`: only the samples that many seconds after the profile started (e.g. one npm install
// of a bench run, not the publishing before it).
import { readFileSync } from 'node:fs'
import { basename } from 'node:path'

interface ProfileNode { id: number, callFrame: { functionName: string, url: string, lineNumber: number }, hitCount?: number }
interface Profile { nodes: ProfileNode[], samples: number[], timeDeltas: number[], startTime: number, endTime: number }

const [file, topArg, fromArg, toArg] = process.argv.slice(2)
const fromUs = Number(fromArg ?? 0) * 1e6
const toUs = toArg == null ? Infinity : Number(toArg) * 1e6
if (file == null) { console.error('usage: node bench/profile-summary.ts <file.cpuprofile> [top]'); process.exit(2) }
const p = JSON.parse(readFileSync(file, 'utf8')) as Profile
const byId = new Map(p.nodes.map(n => [n.id, n]))
const selfUs = new Map<string, number>()
let total = 0
let at = 0
p.samples.forEach((id, i) => {
  const n = byId.get(id)!
  const dt = p.timeDeltas[i] ?? 0
  at += dt
  if (at < fromUs || at > toUs) return
  const f = n.callFrame
  const where = f.url === '' ? '' : ` ${basename(f.url)}:${f.lineNumber + 1}`
  const key = `${f.functionName === '' ? '(anonymous)' : f.functionName}${where}`
  selfUs.set(key, (selfUs.get(key) ?? 0) + dt)
  total += dt
})
const busy = total - (selfUs.get('(idle)') ?? 0)
console.log(`${basename(file)}: ${(total / 1e6).toFixed(1)} s sampled, ${(busy / 1e6).toFixed(1)} s not idle`)
for (const [k, us] of [...selfUs].sort((a, b) => b[1] - a[1]).slice(0, Number(topArg ?? 15))) {
  console.log(`${(us / 1e6).toFixed(2).padStart(7)} s ${(100 * us / total).toFixed(1).padStart(5)}%  ${k}`)
}
