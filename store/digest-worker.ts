// Worker thread: computes node:crypto digests for hash sessions, off the event loop.
// Messages arrive in order per session, so the digests match the bytes in stream order.
import { createHash, type Hash } from 'node:crypto'
import { parentPort } from 'node:worker_threads'

export type DigestRequest =
  | { type: 'open', id: number, algorithms: string[] }
  | { type: 'data', id: number, data: Uint8Array }
  | { type: 'digest', id: number }
  | { type: 'drop', id: number }

export type DigestReply =
  | { type: 'ack', id: number, bytes: number }
  | { type: 'digest', id: number, hex: Record<string, string> }

const sessions = new Map<number, Map<string, Hash>>()
const port = parentPort
if (port == null) throw new Error('digest-worker.ts must run in a worker thread')

port.on('message', (m: DigestRequest) => {
  switch (m.type) {
    case 'open':
      sessions.set(m.id, new Map(m.algorithms.map(a => [a, createHash(a)])))
      break
    case 'data': {
      const hashes = sessions.get(m.id)
      if (hashes != null) for (const h of hashes.values()) h.update(m.data)
      port.postMessage({ type: 'ack', id: m.id, bytes: m.data.byteLength } satisfies DigestReply)
      break
    }
    case 'digest': {
      const hashes = sessions.get(m.id)
      sessions.delete(m.id)
      const hex = Object.fromEntries([...(hashes ?? new Map<string, Hash>())].map(([a, h]) => [a, h.digest('hex')]))
      port.postMessage({ type: 'digest', id: m.id, hex } satisfies DigestReply)
      break
    }
    case 'drop':
      sessions.delete(m.id)
      break
  }
})
