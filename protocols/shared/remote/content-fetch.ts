// An upstream body streamed to the first client while it is written to the store: hashed once,
// checked against what the upstream declared (length, digests), and recorded only if complete
// and verified. The client's stream ends only after that; on any failure it is destroyed, so a
// truncated or wrong body never reaches a client as a complete one and nothing is cached.
import { PassThrough } from 'node:stream'
import type { Logger } from 'pino'
import { isRegistryError, upstreamError } from '../../../store/errors.ts'
import type { BlobInfo, BlobStore, DigestName } from '../../../store/types.ts'
import { UpstreamClient, type UpstreamResponse } from './upstream-client.ts'

export interface ContentFetchOptions<T> {
  /** Digests (hex) the bytes must have, when the format or the upstream names them. */
  expect: Partial<Record<DigestName, string>>
  maxBytes: number
  /** Records what was stored (an artifact row); runs before the client's stream ends. */
  commit: (blob: BlobInfo) => T | Promise<T>
  /** Whether a client reads `stream` (if not, it is not fed, so it cannot hold the fetch back). */
  toClient: boolean
  log: Logger
}

export interface ContentFetch<T> {
  stream: PassThrough
  done: Promise<T>
  /** Resolves once the first bytes are handed to the client's stream: until then a failure can
   *  still be answered with an error status instead of a cut-off body. */
  flowing: Promise<void>
}

export function fetchIntoStore<T> (store: BlobStore, res: UpstreamResponse, opts: ContentFetchOptions<T>): ContentFetch<T> {
  const from = UpstreamClient.describe(res.url)
  if (res.length != null && res.length > opts.maxBytes) {
    void res.discard()
    throw upstreamError(`upstream ${from} declares ${res.length} bytes, over limits.uploadBytes (${opts.maxBytes}); refused, nothing cached`)
  }
  const out = new PassThrough()
  // The failure is reported through `done`; a stream no client took must not crash the process.
  out.on('error', () => {})
  const clientGone = () => !opts.toClient || out.destroyed || out.writableEnded
  // One piece is held back until the bytes are verified, so a client never has them all before
  // the store has said they are right.
  let held: Uint8Array | undefined
  let startFlowing!: () => void
  const flowing = new Promise<void>(resolve => { startFlowing = resolve })
  async function * pieces (): AsyncIterable<Uint8Array> {
    for await (const piece of res.body()) {
      if (held != null && !clientGone()) {
        const more = out.write(held)
        startFlowing()
        if (!more) await drained(out)
      }
      held = piece
      yield piece
    }
  }
  const done = (async () => {
    try {
      const blob = await store.put(pieces(), {
        expect: { ...opts.expect, ...(res.length != null ? { size: res.length } : {}) },
        maxBytes: opts.maxBytes
      })
      const result = await opts.commit(blob)
      if (!clientGone()) out.end(held)
      return result
    } catch (thrown) {
      const err = refusal(thrown, from, opts.maxBytes)
      opts.log.warn({ upstream: from, err: err.message }, 'upstream content refused; nothing cached')
      out.destroy(err)
      throw err
    }
  })()
  done.catch(() => {}) // a caller that only streams sees the failure on the stream
  return { stream: out, done, flowing }
}

/** What the store refused, told as the upstream's fault (502), not the client's. */
function refusal (thrown: unknown, from: string, maxBytes: number): Error {
  if (!isRegistryError(thrown)) return thrown as Error
  switch (thrown.code) {
    case 'TooLarge': return upstreamError(`upstream ${from} sent more than limits.uploadBytes (${maxBytes}); refused, nothing cached`)
    case 'IntegrityError': return upstreamError(`upstream ${from} sent bytes that do not match what it declared (${thrown.message}); refused, nothing cached`)
    default: return thrown
  }
}

function drained (s: PassThrough): Promise<void> {
  return new Promise(resolve => {
    const done = () => { s.off('drain', done); s.off('close', done); resolve() }
    s.once('drain', done)
    s.once('close', done)
  })
}
