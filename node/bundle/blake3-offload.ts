// BLAKE3 on the second core for `akmesh export`: each chunk it reads is checked against the
// chunk table while the chunk is written. On the main thread that check was ~0.4 s per GiB
// (bench/README.md, bundle.ts) in which no read or write was issued. Bytes in a
// SharedArrayBuffer (the export's chunk buffers) are hashed where they lie: the caller must not
// change them until the returned promise settles. (Import's whole-blob hash was tried here too
// and reverted: it gained nothing, import waits for the disk.)
import { Worker } from 'node:worker_threads'
import type { Blake3Reply, Blake3Request } from './blake3-thread.ts'

interface Pending { resolve (digest: Uint8Array): void, reject (err: Error): void }

class Blake3Thread {
  readonly #worker = new Worker(new URL('./blake3-thread.ts', import.meta.url))
  readonly #pending = new Map<number, Pending>()
  #nextId = 1
  failure: Error | undefined

  constructor () {
    this.#worker.on('message', (r: Blake3Reply) => {
      const p = this.#pending.get(r.id)
      this.#pending.delete(r.id)
      if ('error' in r) p?.reject(new Error(`BLAKE3 worker: ${r.error}`))
      else p?.resolve(r.digest)
      if (this.#pending.size === 0) this.#worker.unref()
    })
    this.#worker.on('error', (err) => { this.#fail(err) })
    this.#worker.on('exit', (code) => { this.#fail(new Error(`BLAKE3 worker exited with code ${code}`)) })
    // After the listeners (a 'message' listener refs the worker): an idle worker must not keep
    // a CLI command from exiting.
    this.#worker.unref()
  }

  #fail (err: Error): void {
    this.failure ??= err
    for (const p of this.#pending.values()) p.reject(err)
    this.#pending.clear()
  }

  async hash (data: Uint8Array): Promise<Uint8Array> {
    if (this.failure != null) throw this.failure
    const id = this.#nextId++
    const done = new Promise<Uint8Array>((resolve, reject) => { this.#pending.set(id, { resolve, reject }) })
    this.#worker.ref()
    this.#worker.postMessage({ id, data } satisfies Blake3Request)
    return await done
  }
}

let thread: Blake3Thread | undefined
/** The process's one BLAKE3 worker, started on first use (and again if it died). */
const worker = (): Blake3Thread => {
  if (thread == null || thread.failure != null) thread = new Blake3Thread()
  return thread
}

/** Starts the worker ahead of its first use (its start-up overlaps the caller's). */
export function warmBlake3Thread (): void { worker() }

/** BLAKE3 of `data`, computed in the worker. */
export async function blake3InThread (data: Uint8Array): Promise<Uint8Array> {
  return await worker().hash(data)
}
