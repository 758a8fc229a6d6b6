// Worker thread of node/bundle/blake3-offload.ts: BLAKE3 of bundle chunks off the event loop.
// Requests are answered in order; `data` is a view of a SharedArrayBuffer (read where it lies,
// not copied) or, from callers without one, a structured-clone copy.
import { parentPort } from 'node:worker_threads'
import { blake3Implementation } from '../../store/hash.ts'

export interface Blake3Request { id: number, data: Uint8Array }
export type Blake3Reply = { id: number, digest: Uint8Array } | { id: number, error: string }

const port = parentPort
if (port == null) throw new Error('blake3-thread.ts must run in a worker thread')

const hasher = await (await blake3Implementation()).create()

port.on('message', (m: Blake3Request) => {
  try {
    hasher.reset()
    hasher.update(m.data)
    port.postMessage({ id: m.id, digest: hasher.digest() } satisfies Blake3Reply)
  } catch (err) {
    port.postMessage({ id: m.id, error: (err as Error)?.message ?? String(err) } satisfies Blake3Reply)
  }
})
