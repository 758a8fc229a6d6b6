// Loads, validates, watches and edits the peering file. Errors name the file, the key and what
// was expected; an invalid edit of a running node's file is logged and the last good one stays.
import { watch, type FSWatcher } from 'node:fs'
import { mkdir, readFile } from 'node:fs/promises'
import { basename, dirname, isAbsolute, join, resolve } from 'node:path'
import { Low, type Adapter } from 'lowdb'
import type { Logger } from 'pino'
import { writeFileAtomic } from './atomic-file.ts'
import { PSK_PATTERN, defaultPeeringFile, peeringSchema, type Peering, type PeeringFileContent } from './peering-schema.ts'

export class PeeringError extends Error {
  constructor (message: string) { super(message); this.name = 'PeeringError' }
}

export const PEERING_FILE = 'peering.json'

/** --peering, else $AKMESH_PEERING, else <dataDir>/peering.json. */
export function peeringPath (dataDir: string, flag?: string): string {
  return resolve(flag ?? process.env.AKMESH_PEERING ?? join(dataDir, PEERING_FILE))
}

/** lowdb adapter writing through a unique temp file + fsync + rename, so `akmesh peers` can
 *  edit the file beside a running node (which watches it) without a torn read. */
class AtomicJSONFile implements Adapter<PeeringFileContent> {
  readonly #file: string
  constructor (file: string) { this.#file = file }
  async read (): Promise<PeeringFileContent | null> {
    let text: string
    try { text = await readFile(this.#file, 'utf8') } catch (e: any) {
      if (e.code === 'ENOENT') return null
      throw new PeeringError(`${this.#file}: cannot read peering file (${e.code ?? e.message})`)
    }
    return parseJson(text, this.#file)
  }
  async write (data: PeeringFileContent): Promise<void> {
    await mkdir(dirname(this.#file), { recursive: true })
    await writeFileAtomic(this.#file, JSON.stringify(data, null, 2) + '\n')
  }
}

function parseJson (text: string, file: string): any {
  try { return JSON.parse(text) } catch (e: any) { throw new PeeringError(`${file}: invalid JSON: ${e.message}`) }
}

/** Validates parsed content; `file` names the source in errors and anchors a relative psk path. */
export async function parsePeering (raw: unknown, file: string): Promise<Peering> {
  const result = peeringSchema.safeParse(raw ?? {})
  if (!result.success) {
    const known = Object.keys(peeringSchema.shape)
    const lines = result.error.issues.flatMap(i => i.code === 'unrecognized_keys'
      ? i.keys.map(k => `${file}: ${formatPath([...i.path, k])}: unknown key; expected one of ${i.path.length === 0 ? known.join(', ') : 'name, site, region'}`)
      : [`${file}: ${formatPath(i.path)}: ${i.message}`])
    throw new PeeringError(lines.join('\n'))
  }
  const peering: Peering = result.data
  if (peering.psk != null) peering.pskKey = await resolvePsk(peering.psk, file)
  if (peering.certificate != null) peering.certificateBytes = await readCertificate(peering.certificate, file)
  return peering
}

async function readCertificate (certificate: string, file: string): Promise<Uint8Array> {
  const certFile = isAbsolute(certificate) ? certificate : resolve(dirname(file), certificate)
  try { return new Uint8Array(await readFile(certFile)) } catch (e: any) {
    throw new PeeringError(`${file}: certificate: cannot read this node's member certificate ${certFile} (${e.code ?? e.message})`)
  }
}

async function resolvePsk (psk: string, file: string): Promise<Uint8Array> {
  let text = psk
  if (!psk.startsWith('/key/')) {
    const keyFile = isAbsolute(psk) ? psk : resolve(dirname(file), psk)
    try { text = await readFile(keyFile, 'utf8') } catch (e: any) {
      throw new PeeringError(`${file}: psk: expected a swarm key or the path of a swarm key file; cannot read ${keyFile} (${e.code ?? e.message})`)
    }
  }
  if (!PSK_PATTERN.test(text)) {
    throw new PeeringError(`${file}: psk: expected a swarm key in go-ipfs swarm.key format ("/key/swarm/psk/1.0.0/", "/base16/", 64 hex digits on three lines)`)
  }
  return new TextEncoder().encode(text.trim() + '\n')
}

function formatPath (path: PropertyKey[]): string {
  if (path.length === 0) return '(top level)'
  return path.map((p, i) => typeof p === 'number' ? `[${p}]` : (i === 0 ? String(p) : `.${String(p)}`)).join('')
}

/** Reads and validates the peering file, creating it with the defaults if it is missing. */
export async function loadPeeringFile (file: string, opts: { create?: boolean } = {}): Promise<Peering> {
  const db = new Low(new AtomicJSONFile(file), defaultPeeringFile())
  await db.read()
  const exists = await readFile(file).then(() => true, () => false)
  if (!exists && opts.create !== false) await db.write()
  return await parsePeering(db.data, file)
}

/** Edits the raw file content (keys it does not touch are kept as written), validates the
 *  result and replaces the file atomically. Creates the file with defaults if missing. */
export async function editPeeringFile (file: string, edit: (content: PeeringFileContent) => void): Promise<Peering> {
  const db = new Low(new AtomicJSONFile(file), defaultPeeringFile())
  await db.read()
  edit(db.data)
  const peering = await parsePeering(db.data, file)
  await db.write()
  return peering
}

export type PeeringListener = (next: Peering, previous: Peering) => void

/** A peering file kept current: watches its directory, re-validates on change, and tells
 *  subscribers. The last valid content stays in force while the file is invalid. */
export class LivePeering {
  readonly file: string
  #current: Peering
  #listeners = new Set<PeeringListener>()
  #watcher?: FSWatcher
  #timer?: NodeJS.Timeout
  #lastText = ''
  #reloading: Promise<boolean> = Promise.resolve(false)
  readonly #log?: Logger

  private constructor (file: string, current: Peering, log?: Logger) {
    this.file = file
    this.#current = current
    this.#log = log
  }

  static async open (file: string, opts: { log?: Logger, signal?: AbortSignal, debounceMs?: number } = {}): Promise<LivePeering> {
    const live = new LivePeering(file, await loadPeeringFile(file), opts.log)
    live.#lastText = await readFile(file, 'utf8').catch(() => '')
    // Watch the directory, not the file: an atomic rename replaces the inode a file watch holds.
    const name = basename(file)
    live.#watcher = watch(dirname(file), { persistent: false }, (_event, filename) => {
      if (filename !== name) return
      clearTimeout(live.#timer)
      live.#timer = setTimeout(() => { void live.reload() }, opts.debounceMs ?? 100)
    })
    live.#watcher.on('error', (err) => live.#log?.warn({ err, file }, 'peering file watch failed; edits need a restart'))
    opts.signal?.addEventListener('abort', () => live.close(), { once: true })
    return live
  }

  get current (): Peering { return this.#current }

  /** Calls `fn` after every valid change; returns the unsubscribe function. */
  subscribe (fn: PeeringListener): () => void {
    this.#listeners.add(fn)
    return () => this.#listeners.delete(fn)
  }

  /** Re-reads the file now (the watcher calls this); resolves true if a new config took effect.
   *  Reloads run one after another, so an older read never replaces a newer one. */
  async reload (): Promise<boolean> {
    this.#reloading = this.#reloading.then(async () => await this.#reload(), async () => await this.#reload())
    return await this.#reloading
  }

  async #reload (): Promise<boolean> {
    let text: string
    try { text = await readFile(this.file, 'utf8') } catch (e: any) {
      this.#log?.error({ file: this.file, error: `cannot read (${e.code ?? e.message})` }, 'invalid peering file; the previous configuration stays in force')
      return false
    }
    if (text === this.#lastText) return false
    let next: Peering
    try {
      next = await parsePeering(parseJson(text, this.file), this.file)
    } catch (e: any) {
      this.#log?.error({ file: this.file, error: e.message }, 'invalid peering file; the previous configuration stays in force')
      return false
    }
    this.#lastText = text
    const previous = this.#current
    this.#current = next
    this.#log?.info({ file: this.file, bootstrap: next.bootstrap.length, allow: next.allow.length }, 'peering file reloaded')
    for (const fn of this.#listeners) {
      try { fn(next, previous) } catch (err) { this.#log?.error({ err }, 'peering change listener failed') }
    }
    return true
  }

  close (): void {
    clearTimeout(this.#timer)
    this.#watcher?.close()
    this.#listeners.clear()
  }
}
