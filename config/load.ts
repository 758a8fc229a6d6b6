// Reads the YAML config; every error names the file, the key and what was expected.
import { readFile } from 'node:fs/promises'
import { isAbsolute, resolve, dirname } from 'node:path'
import { configSchema, type Config } from './schema.ts'

export class ConfigError extends Error {
  constructor (message: string) { super(message); this.name = 'ConfigError' }
}

export interface LoadOptions {
  /** Formats the node can serve; a repository naming another is an error. */
  formats: string[]
  /** Formats that have remote repositories (type: remote); default: every format. */
  remoteFormats?: string[]
  /** Formats that have virtual repositories (type: virtual); default: every format. */
  virtualFormats?: string[]
}

/** Validates an already-parsed object (the embedded defaults use this too). */
export function parseConfig (raw: unknown, source: string, opts: LoadOptions): Config {
  const result = configSchema.safeParse(raw ?? {})
  if (!result.success) {
    const lines = result.error.issues.flatMap(i => i.code === 'unrecognized_keys'
      ? i.keys.map(k => `${source}: ${formatPath([...i.path, k])}: unknown key; expected one of ${knownKeys(i.path).join(', ')}`)
      : [`${source}: ${formatPath(i.path)}: ${i.message}`])
    throw new ConfigError(lines.join('\n'))
  }
  const config = result.data
  config.repositories.forEach((r, i) => {
    if (!opts.formats.includes(r.format)) {
      throw new ConfigError(`${source}: repositories[${i}].format: expected one of ${opts.formats.join(', ')}, got "${r.format}"`)
    }
    if (r.type === 'remote' && opts.remoteFormats != null && !opts.remoteFormats.includes(r.format)) {
      throw new ConfigError(`${source}: repositories[${i}].type: ${r.format} has no remote repositories yet (type: remote works for ${opts.remoteFormats.join(', ')})`)
    }
    if (r.type === 'virtual' && opts.virtualFormats != null && !opts.virtualFormats.includes(r.format)) {
      throw new ConfigError(`${source}: repositories[${i}].type: ${r.format} has no virtual repositories yet (type: virtual works for ${opts.virtualFormats.join(', ')})`)
    }
  })
  return config
}

export async function loadConfigFile (file: string, opts: LoadOptions): Promise<Config> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (e: any) {
    throw new ConfigError(`${file}: cannot read config file (${e.code ?? e.message})`)
  }
  const { parseDocument } = await import('yaml') // only with a file: ~70 modules CLI commands without one skip
  const doc = parseDocument(text, { prettyErrors: true })
  if (doc.errors.length > 0) {
    throw new ConfigError(doc.errors.map(e => `${file}: invalid YAML: ${e.message}`).join('\n'))
  }
  const config = parseConfig(doc.toJS(), file, opts)
  // A relative dataDir in a config file is relative to that file, not to wherever akmesh ran.
  if (!isAbsolute(config.dataDir)) config.dataDir = resolve(dirname(file), config.dataDir)
  return config
}

/** The keys the schema allows in the object at `path`, to name them next to an unknown one. */
function knownKeys (path: PropertyKey[]): string[] {
  let schema: any = configSchema
  const unwrap = () => {
    for (;;) {
      const def = schema?._zod?.def
      if (def?.type === 'default' || def?.type === 'optional' || def?.type === 'nullable') schema = def.innerType
      else if (def?.type === 'pipe') schema = def.in
      else return def
    }
  }
  for (const key of path) {
    const def = unwrap()
    schema = def?.type === 'array' ? def.element : def?.type === 'object' ? def.shape[key] : undefined
  }
  const def = unwrap()
  return def?.type === 'object' ? Object.keys(def.shape) : []
}

function formatPath (path: PropertyKey[]): string {
  if (path.length === 0) return '(top level)'
  return path.map((p, i) => typeof p === 'number' ? `[${p}]` : (i === 0 ? String(p) : `.${String(p)}`)).join('')
}
