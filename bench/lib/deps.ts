// Bench-only tools (Verdaccio, autocannon), installed on demand into bench/.deps (gitignored),
// never into the project's own dependencies.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { DEPS_DIR, run } from './proc.ts'
import { log } from './stats.ts'

const MANIFEST = {
  name: 'akmesh-bench-deps',
  private: true,
  description: 'bench-only tools; installed by bench/lib/deps.ts',
  dependencies: {
    verdaccio: '6.10.4',
    autocannon: '8.0.0'
  },
  // verdaccio-audit asks for node-fetch@cjs, a dist-tag the registry mirror does not carry.
  overrides: { 'node-fetch': '2.7.0' }
}

export interface BenchDeps { verdaccioBin: string, autocannonBin: string }

export async function ensureBenchDeps (): Promise<BenchDeps> {
  const verdaccioBin = join(DEPS_DIR, 'node_modules/verdaccio/bin/verdaccio')
  const autocannonBin = join(DEPS_DIR, 'node_modules/autocannon/autocannon.js')
  const manifestPath = join(DEPS_DIR, 'package.json')
  const wanted = JSON.stringify(MANIFEST, null, 2) + '\n'
  const current = existsSync(manifestPath) ? readFileSync(manifestPath, 'utf8') : ''
  if (current !== wanted || !existsSync(verdaccioBin) || !existsSync(autocannonBin)) {
    log(`installing bench tools into ${DEPS_DIR} (verdaccio, autocannon)`)
    mkdirSync(DEPS_DIR, { recursive: true })
    writeFileSync(manifestPath, wanted)
    // Own npmrc so the project's and the user's settings (nodedir, ...) do not leak in.
    writeFileSync(join(DEPS_DIR, '.npmrc'), 'fund=false\naudit=false\nupdate-notifier=false\n')
    await run('npm', ['install', '--prefix', DEPS_DIR, '--no-audit', '--no-fund', '--ignore-scripts', '--loglevel=error'], { cwd: DEPS_DIR })
    if (!existsSync(verdaccioBin) || !existsSync(autocannonBin)) throw new Error(`bench tools missing after npm install in ${DEPS_DIR}`)
  }
  return { verdaccioBin, autocannonBin }
}
