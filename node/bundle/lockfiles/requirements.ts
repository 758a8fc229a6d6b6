// requirements.txt as `pip install --require-hashes -r` takes it: every requirement pinned with
// `==` and carrying `--hash=sha256:...` options (pip-compile --generate-hashes, pip-tools, uv
// export write this). Continuation lines end with a backslash; comments start at " #".
// https://pip.pypa.io/en/stable/topics/secure-installs/
import { canonicalName } from '../../../protocols/pypi/names.ts'
import type { LockfileProblem, ParsedLockfile, PypiEntry } from './types.ts'

const REQUIREMENT = /^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*===?\s*([^\s;]+)\s*(?:;.*)?$/

export function parseRequirements (text: string, file: string): ParsedLockfile {
  const entries = new Map<string, PypiEntry>()
  const problems: LockfileProblem[] = []
  // Logical lines (continuations joined), each named by the physical line it starts on.
  const logical: Array<{ text: string, line: number }> = []
  let pending: { text: string, line: number } | undefined
  text.split(/\r?\n/).forEach((physical, i) => {
    const current = pending ?? { text: '', line: i + 1 }
    current.text += (current.text === '' ? '' : ' ') + physical.replace(/\\$/, '')
    if (physical.endsWith('\\')) { pending = current; return }
    pending = undefined
    logical.push(current)
  })
  if (pending != null) logical.push(pending)
  logical.forEach(({ text: raw, line: n }) => {
    const line = raw.replace(/(^|\s)#.*$/, '').trim()
    if (line === '') return
    const where = `${file} line ${n}`
    if (line.startsWith('-')) {
      // Options on their own line (--index-url, -r other.txt, -e path): nothing to bundle, but
      // -r/-c/-e name requirements this export would silently leave out.
      if (/^(-r|-c|-e|--requirement|--constraint|--editable)\b/.test(line)) problems.push({ where, problem: 'unsupported', message: `${where}: "${line}" is not supported in a lockfile bundle (list the pinned requirements themselves)` })
      return
    }
    const hashes = [...line.matchAll(/--hash[=\s]+sha256:([0-9a-fA-F]{64})\b/g)].map(m => m[1].toLowerCase())
    const spec = line.replace(/--hash[=\s]+\S+/g, '').trim()
    if (/ @ |^(git\+|https?:|file:)/.test(spec)) { problems.push({ where, problem: 'unsupported', message: `${where}: ${spec} is a URL or VCS requirement, not an index package` }); return }
    const m = REQUIREMENT.exec(spec)
    if (m == null) { problems.push({ where, problem: 'unsupported', message: `${where}: "${spec}" is not pinned with == (pip --require-hashes needs every requirement pinned)` }); return }
    if (hashes.length === 0) { problems.push({ where, problem: 'unsupported', message: `${where}: ${m[1]}==${m[2]} has no --hash=sha256:... (pip --require-hashes needs one)` }); return }
    const project = canonicalName(m[1])
    const key = `${project}==${m[2]}`
    const known = entries.get(key)
    if (known != null) { known.sha256 = [...new Set([...known.sha256, ...hashes])]; return }
    entries.set(key, { kind: 'pypi', where: `${where} (${m[1]}==${m[2]})`, project, version: m[2], sha256: hashes })
  })
  return { file, format: 'pypi', entries: [...entries.values()], problems }
}
