// What a bench prints about the conditions it ran in: the git commit measured and the machine's
// load average (other work on a shared machine skews absolute figures; ratios are what compare).
import { execFileSync } from 'node:child_process'
import { loadavg } from 'node:os'
import { ROOT } from './proc.ts'

export function gitCommit (): string {
  try {
    const sha = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim()
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: ROOT, encoding: 'utf8' }).trim() !== ''
    return dirty ? `${sha} (with uncommitted changes)` : sha
  } catch { return 'unknown' }
}

export const loadAverage = (): string => loadavg().map(x => x.toFixed(2)).join(' ')

/** One line: commit, load average now, and the load seen when the bench started. */
export function runInfo (loadAtStart: string): string {
  return `commit ${gitCommit()}; load average at start ${loadAtStart}, at end ${loadAverage()} (1/5/15 min)`
}
