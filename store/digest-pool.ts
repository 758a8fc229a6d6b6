// Spreads the SHA-family digests of every blob over two worker threads, so hashing neither blocks
// the event loop nor caps an upload at one core. Measured here, one core: sha512 0.41 GiB/s,
// sha256 1.15, sha1 1.23, so sha512 gets a worker of its own and the others share the second.
import { Worker } from 'node:worker_threads'
import type { DigestReply, DigestRequest } from './digest-worker.ts'

/** Bytes a session may have queued at a worker before `settle()` waits: bounds memory. */
const MAX_IN_FLIGHT = 8 * 1024 * 1024

const GROUPS = [['sha512'], ['sha256', 'sha1', 'md5']]

interface Pending { resolve (hex: Record<string, string>): void, reject (e: Error): void }

class DigestWorker {
  readonly #worker: Worker
  readonly inFlight = new Map<number, number>()
  readonly onAck = new Map<number, () => void>()
  readonly digests = new Map<number, Pending>()
  readonly #waiters = new Map<number, () => void>()
  failure: Error | undefined

  constructor () {
    this.#worker = new Worker(new URL('./digest-worker.ts', import.meta.url))
    this.#worker.on('message', (m: DigestReply) => {
      if (m.type === 'ack') {
        this.onAck.get(m.id)?.()
        const left = (this.inFlight.get(m.id) ?? 0) - m.bytes
        this.inFlight.set(m.id, left)
        if (left <= MAX_IN_FLIGHT) { this.#waiters.get(m.id)?.(); this.#waiters.delete(m.id) }
      } else {
        this.inFlight.delete(m.id)
        this.onAck.delete(m.id)
        this.digests.get(m.id)?.resolve(m.hex)
        this.digests.delete(m.id)
      }
      this.#updateRef()
    })
    this.#worker.on('error', (e) => { this.#fail(e) })
    this.#worker.on('exit', (code) => { this.#fail(new Error(`digest worker exited with code ${code}`)) })
    // After the listeners: adding a 'message' listener refs the worker again.
    this.#updateRef()
  }

  /** Holds the process open only while someone awaits this worker (a digest or a settle): an idle
   *  pool must not keep a CLI command from exiting, and a pending digest must not be cut off. */
  #updateRef (): void {
    if (this.digests.size + this.#waiters.size > 0) this.#worker.ref()
    else this.#worker.unref()
  }

  #fail (e: Error): void {
    this.failure ??= e
    for (const p of this.digests.values()) p.reject(e)
    this.digests.clear()
    for (const w of this.#waiters.values()) w()
    this.#waiters.clear()
  }

  post (m: DigestRequest): void {
    if (this.failure != null) throw this.failure
    if (m.type === 'data') this.inFlight.set(m.id, (this.inFlight.get(m.id) ?? 0) + m.data.byteLength)
    this.#worker.postMessage(m)
  }

  async settle (id: number): Promise<void> {
    if ((this.inFlight.get(id) ?? 0) <= MAX_IN_FLIGHT || this.failure != null) return
    await new Promise<void>(resolve => { this.#waiters.set(id, resolve); this.#updateRef() })
    if (this.failure != null) throw this.failure
  }

  digest (id: number): Promise<Record<string, string>> {
    return new Promise((resolve, reject) => {
      this.digests.set(id, { resolve, reject })
      try { this.post({ type: 'digest', id }) } catch (e) { this.digests.delete(id); reject(e as Error) }
      this.#updateRef()
    })
  }

  forget (id: number): void {
    this.inFlight.delete(id)
    this.onAck.delete(id)
    if (this.failure == null) this.#worker.postMessage({ type: 'drop', id } satisfies DigestRequest)
  }
}

let workers: DigestWorker[] | undefined
let nextId = 1

function pool (): DigestWorker[] {
  // A crashed worker is replaced for new sessions; sessions it held fail with its error.
  if (workers == null || workers.some(w => w.failure != null)) workers = GROUPS.map(() => new DigestWorker())
  return workers
}

// Staging buffers go back to a free list once every worker has hashed them: allocating a fresh
// SharedArrayBuffer per MiB costs more CPU (page faults) than hashing it with sha1.
const freeBuffers: SharedArrayBuffer[] = []
// Bounded in bytes (stages are 4 MiB): what stays allocated after a burst of uploads.
const MAX_FREE_BYTES = 16 * 1024 * 1024

export function sharedBuffer (size: number): Uint8Array {
  const b = freeBuffers.pop()
  return new Uint8Array(b != null && b.byteLength === size ? b : new SharedArrayBuffer(size))
}

/** One blob's SHA-family digests, computed by the pool from the bytes given to `update`. */
export class DigestSession {
  readonly #id = nextId++
  readonly #workers: DigestWorker[]
  /** Posted buffers not yet hashed by every worker, oldest first, with acks still owed. */
  readonly #posted: Array<{ buffer: SharedArrayBuffer, owed: number }> = []
  readonly #acked: number[]

  constructor (algorithms: string[]) {
    this.#workers = pool()
    this.#acked = this.#workers.map(() => 0)
    GROUPS.forEach((group, i) => {
      this.#workers[i].post({ type: 'open', id: this.#id, algorithms: group.filter(a => algorithms.includes(a)) })
      this.#workers[i].onAck.set(this.#id, () => { this.#release(i) })
    })
  }

  // Acks come in order per worker, so worker i's k-th ack is for the k-th posted buffer.
  #release (worker: number): void {
    const index = this.#acked[worker]++ - (this.#base)
    const entry = this.#posted[index]
    if (entry != null && --entry.owed === 0) {
      while (this.#posted.length > 0 && this.#posted[0].owed === 0) {
        const done = this.#posted.shift() as { buffer: SharedArrayBuffer }
        this.#base++
        if ((freeBuffers.length + 1) * done.buffer.byteLength <= MAX_FREE_BYTES) freeBuffers.push(done.buffer)
      }
    }
  }

  #base = 0

  /** Queues `data`, a view of a buffer from `sharedBuffer()`; ownership passes to the session. */
  update (data: Uint8Array): void {
    this.#posted.push({ buffer: data.buffer as SharedArrayBuffer, owed: this.#workers.length })
    for (const w of this.#workers) w.post({ type: 'data', id: this.#id, data })
  }

  /** Resolves once the workers have caught up enough that more data may be queued. */
  async settle (): Promise<void> {
    for (const w of this.#workers) await w.settle(this.#id)
  }

  async digest (): Promise<Record<string, string>> {
    const parts = await Promise.all(this.#workers.map(w => w.digest(this.#id)))
    return Object.assign({}, ...parts)
  }

  abandon (): void {
    for (const w of this.#workers) w.forget(this.#id)
  }
}
