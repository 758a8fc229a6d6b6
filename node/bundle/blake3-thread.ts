// Worker thread of node/bundle/blake3-offload.ts: BLAKE3 of bundle chunks and blobs off the
// event loop. Requests arrive and are answered in order; `data` is a view of a SharedArrayBuffer
// (read where it lies, not copied) or, from callers without one, a structured-clone copy.
import { parentPort } from 'node:worker_threads'
import { blake3Implementation, type Blake3 } from '../../store/hash.ts'

export type Blake3Request =
  | { op: 'hash', id: number, data: Uint8Array }
  | { op: 'update', id: number, stream: number, data: Uint8Array }
  | { op: 'digest', id: number, stream: number }
  | { op: 'drop', id: number, stream: number }

export type Blake3Reply =
  | { id: number, digest?: Uint8Array }
  | { id: number, error: string }

const port = parentPort
if (port == null) throw new Error('blake3-thread.ts must run in a worker thread')

const { create } = await blake3Implementation()
const once = await create()
const streams = new Map<number, Blake3>()

// One request at a time, in arrival order (creating a hasher may await: updates must not pass it).
let queue: Promise<void> = Promise.resolve()
port.on('message', (m: Blake3Request) => {
  queue = queue.then(async () => { port.postMessage(await answer(m)) })
    .catch((err: unknown) => { port.postMessage({ id: m.id, error: (err as Error)?.message ?? String(err) } satisfies Blake3Reply) })
})

async function answer (m: Blake3Request): Promise<Blake3Reply> {
  switch (m.op) {
    case 'hash': {
      once.reset()
      once.update(m.data)
      return { id: m.id, digest: once.digest() }
    }
    case 'update': {
      let h = streams.get(m.stream)
      if (h == null) { h = await create(); streams.set(m.stream, h) }
      h.update(m.data)
      return { id: m.id }
    }
    case 'digest': {
      const h = streams.get(m.stream) ?? await create()
      streams.delete(m.stream)
      return { id: m.id, digest: h.digest() }
    }
    case 'drop':
      streams.delete(m.stream)
      return { id: m.id }
  }
}
