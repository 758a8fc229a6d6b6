// <data>/mesh-connected.json: the peers this node is connected to now, rewritten (atomically)
// whenever one connects or disconnects. `akmesh peers list` reads it beside the running node: the
// CLI works on the data directory and holds no admin token for the node's HTTP API. The file names
// the node's pid, so a file left by a node that died is recognised as stale.
import { readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { describeError } from './errors.ts'

export const CONNECTED_FILE = 'mesh-connected.json'
/** Bursts of connection events become one write. */
const DEBOUNCE_MS = 200

export interface ConnectedPeer { peerId: string, addrs: string[], direction: string }
export interface ConnectedSnapshot { pid: number, updatedAt: number, peers: ConnectedPeer[] }

export class ConnectedPeersFile {
  readonly #file: string
  readonly #peers: () => ConnectedPeer[]
  readonly #log: Logger
  #timer: ReturnType<typeof setTimeout> | undefined
  #writing: Promise<void> = Promise.resolve()
  #stopped = false

  constructor (dataDir: string, peers: () => ConnectedPeer[], log: Logger) {
    this.#file = join(dataDir, CONNECTED_FILE)
    this.#peers = peers
    this.#log = log
  }

  /** Schedules a rewrite (call on every connect and disconnect). */
  changed = (): void => {
    if (this.#stopped || this.#timer != null) return
    this.#timer = setTimeout(() => { this.#timer = undefined; this.#write() }, DEBOUNCE_MS)
    this.#timer.unref?.()
  }

  #write (): void {
    const snapshot: ConnectedSnapshot = { pid: process.pid, updatedAt: Date.now(), peers: this.#peers() }
    const tmp = `${this.#file}.${process.pid}.tmp`
    this.#writing = this.#writing
      .then(async () => { if (!this.#stopped) { await writeFile(tmp, JSON.stringify(snapshot, null, 2)); await rename(tmp, this.#file) } })
      .catch((err) => { this.#log.warn({ file: this.#file, error: describeError(err) }, 'writing the connected-peers file failed') })
  }

  async start (): Promise<void> {
    this.#write()
    await this.#writing
  }

  /** A stopped node is connected to nobody: the file goes. */
  async stop (): Promise<void> {
    this.#stopped = true
    clearTimeout(this.#timer)
    await this.#writing
    await rm(this.#file, { force: true })
  }
}

/** The running node's connected peers, or undefined when no node runs on `dataDir`. */
export async function readConnectedPeers (dataDir: string): Promise<ConnectedSnapshot | undefined> {
  let snapshot: ConnectedSnapshot
  try {
    snapshot = JSON.parse(await readFile(join(dataDir, CONNECTED_FILE), 'utf8')) as ConnectedSnapshot
  } catch {
    return undefined
  }
  try {
    process.kill(snapshot.pid, 0)
  } catch (err: any) {
    if (err?.code === 'ESRCH') return undefined // left by a node that was killed
  }
  return snapshot
}
