// Where the config comes from: --config, $AKMESH_CONFIG, ./akmesh.yaml, else embedded defaults.
// Environment and flags override the file (AKMESH_DATA, AKMESH_PORT, --data, --port, --host).
import { existsSync } from 'node:fs'
import { resolve } from 'node:path'
import { loadConfigFile, parseConfig } from '../config/load.ts'
import type { Config } from '../config/schema.ts'
import { FORMAT_CATALOG as FORMATS } from '../protocols/catalog.ts'

export interface ConfigFlags { config?: string, data?: string, port?: string, host?: string }

export async function resolveConfig (flags: ConfigFlags): Promise<Config> {
  const formats = FORMATS.map(f => f.name)
  const remoteFormats = FORMATS.filter(f => f.remote).map(f => f.name)
  const virtualFormats = FORMATS.filter(f => f.virtual).map(f => f.name)
  const file = flags.config ?? process.env.AKMESH_CONFIG ?? (existsSync('akmesh.yaml') ? 'akmesh.yaml' : undefined)
  const config = file != null
    ? await loadConfigFile(resolve(file), { formats, remoteFormats, virtualFormats })
    : parseConfig({}, '(embedded defaults)', { formats, remoteFormats, virtualFormats })
  const data = flags.data ?? process.env.AKMESH_DATA
  if (data != null) config.dataDir = data
  config.dataDir = resolve(config.dataDir)
  const port = flags.port ?? process.env.AKMESH_PORT
  if (port != null) {
    const n = Number(port)
    if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`port: expected an integer 0-65535, got "${port}"`)
    config.http.port = n
  }
  if (flags.host != null) config.http.host = flags.host
  return config
}
