// Driving the real npm, yarn 1 and pnpm against a test node: per-test config, cache and projects,
// so nothing leaks between tests or from the developer's own ~/.npmrc.
import { createHash } from 'node:crypto'
import { mkdir, readdir, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import type { ExecutionContext } from 'ava'
import * as tar from 'tar'
import { requireClient, run, type RunResult } from './clients.ts'
import { makeTempDir, type TestNode } from './node.ts'

/** The environment of this process minus npm's own `npm_config_*` (set when tests run under
 *  `npm test`), which would override the per-test config; node 24 first on PATH. */
export function clientEnv (): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = {}
  for (const key of Object.keys(process.env)) if (/^npm_/i.test(key)) env[key] = undefined
  env.PATH = `${dirname(process.execPath)}:${process.env.PATH ?? ''}`
  env.NO_UPDATE_NOTIFIER = '1'
  return env
}

export interface NpmClient {
  registry: string
  userconfig: string
  dir: string
  run (args: string[], opts?: { cwd?: string, input?: string }): Promise<RunResult>
  /** Runs npm answering its prompts (see runAnswering). */
  answer (args: string[], answers: Array<[RegExp, string]>): Promise<RunResult>
}

/** A registry URL's `//host:port/path/` key for .npmrc credentials. */
export const credentialKey = (registry: string) => registry.replace(/^https?:/, '')

/** npm with its own userconfig (registry, and a token unless `token` is null) and cache. */
export async function npmClient (t: ExecutionContext, node: TestNode, token: string | null = node.adminToken): Promise<NpmClient | undefined> {
  const npm = await requireClient(t, 'npm')
  if (npm == null) return undefined
  const dir = await makeTempDir(t, 'akmesh-npm-')
  const registry = `${node.url}/npm/`
  const userconfig = join(dir, 'npmrc')
  const lines = [`registry=${registry}`, 'audit=false', 'fund=false', 'update-notifier=false', 'loglevel=notice']
  if (token != null) lines.push(`${credentialKey(registry)}:_authToken=${token}`)
  await writeFile(userconfig, lines.join('\n') + '\n')
  const cache = join(dir, 'cache')
  const common = ['--userconfig', userconfig, '--cache', cache]
  return {
    registry,
    userconfig,
    dir,
    run: async (args, opts = {}) => await run(npm, [...args, ...common], { cwd: opts.cwd ?? dir, env: clientEnv(), input: opts.input }),
    answer: async (args, answers) => await runAnswering(npm, [...args, ...common], answers, { cwd: dir, env: clientEnv() })
  }
}

export interface PackageSpec {
  name: string
  version: string
  /** CommonJS source of index.js. */
  source: string
  extra?: Record<string, unknown>
}

/** Writes a package folder (package.json, index.js, README.md) and returns its path. */
export async function writePackage (root: string, spec: PackageSpec): Promise<string> {
  const dir = join(root, `${spec.name.replace(/[@/]/g, '_')}-${spec.version}`)
  await mkdir(dir, { recursive: true })
  await writeFile(join(dir, 'package.json'), JSON.stringify({
    name: spec.name, version: spec.version, main: 'index.js', license: 'MIT', ...spec.extra
  }, null, 2))
  await writeFile(join(dir, 'index.js'), spec.source)
  await writeFile(join(dir, 'README.md'), `# ${spec.name}\n`)
  return dir
}

/** A fresh project folder with an empty package.json. */
export async function writeProject (t: ExecutionContext, name = 'consumer'): Promise<string> {
  const dir = await makeTempDir(t, 'akmesh-project-')
  await writeFile(join(dir, 'package.json'), JSON.stringify({ name, version: '1.0.0', private: true }))
  return dir
}

/** Runs `node -e` in a project (node 24, like the clients). */
export async function runNode (cwd: string, code: string): Promise<RunResult> {
  return await run(process.execPath, ['-e', code], { cwd, env: clientEnv() })
}

/** A gzipped npm tarball (`package/` prefix) holding the given package.json and an index.js. */
export async function makeTarball (root: string, manifest: Record<string, unknown>): Promise<Buffer> {
  const dir = join(root, `tgz-${createHash('sha1').update(JSON.stringify(manifest)).digest('hex')}`)
  await mkdir(join(dir, 'package'), { recursive: true })
  await writeFile(join(dir, 'package', 'package.json'), JSON.stringify(manifest))
  await writeFile(join(dir, 'package', 'index.js'), 'module.exports = 42\n')
  const chunks: Buffer[] = []
  for await (const c of tar.create({ gzip: true, cwd: dir, portable: true }, ['package'])) chunks.push(c as Buffer)
  return Buffer.concat(chunks)
}

/** The body `npm publish` sends (libnpmpublish buildMetadata), for hand-made requests. */
export function publishBody (name: string, version: string, tgz: Buffer): Record<string, any> {
  const sha1 = createHash('sha1').update(tgz).digest('hex')
  const integrity = 'sha512-' + createHash('sha512').update(tgz).digest('base64')
  const filename = `${name}-${version}.tgz`
  return {
    _id: name,
    name,
    'dist-tags': { latest: version },
    versions: {
      [version]: { name, version, _id: `${name}@${version}`, dist: { shasum: sha1, integrity, tarball: `http://x/${name}/-/${filename}` } }
    },
    access: 'public',
    _attachments: { [filename]: { content_type: 'application/octet-stream', data: tgz.toString('base64'), length: tgz.length } }
  }
}

/** Every file under a directory, recursively (to prove nothing was stored). */
export async function listFiles (dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => [])
  return entries.filter(e => e.isFile()).map(e => join(e.parentPath, e.name))
}

/** Runs a client that prompts, answering each prompt when it appears on stdout or stderr (as a
 *  person at a terminal would); stdin closes after the last answer. */
export async function runAnswering (cmd: string, args: string[], answers: Array<[RegExp, string]>, opts: { cwd?: string, env?: Record<string, string | undefined> } = {}): Promise<RunResult> {
  const { spawn } = await import('node:child_process')
  return await new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    let next = 0
    const answer = () => {
      while (next < answers.length && answers[next][0].test(stdout + stderr)) {
        child.stdin.write(answers[next][1] + '\n')
        if (++next === answers.length) child.stdin.end()
      }
    }
    child.stdout.on('data', (b) => { stdout += b; answer() })
    child.stderr.on('data', (b) => { stderr += b; answer() })
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000)
    child.on('close', (code) => { clearTimeout(timer); resolve({ code: code ?? -1, stdout, stderr }) })
  })
}
