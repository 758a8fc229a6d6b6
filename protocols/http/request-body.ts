// The request body as the store reads it. Node's stream iterator destroys its stream when the
// loop stops early, and destroying a request destroys its socket: a store.put refused for size or
// a digest would then cut the connection before its 413/400 is sent (curl: "empty reply"). Closing
// right after the answer is no better: bytes the client is still sending arrive at a closed
// socket, the kernel answers with a reset, and the client loses the answer unread. So stopping
// early only stops reading; once the answer is sent, Node reads and discards the rest of the body
// (its keep-alive "dump"), and this bounds that drain in time and bytes, then closes the socket.
import type { Context } from 'koa'

const DRAIN_MS = 5_000
const DRAIN_BYTES = 64 * 1024 * 1024

export function requestBody (ctx: Context): AsyncIterable<Buffer> {
  return {
    [Symbol.asyncIterator] () {
      const it = ctx.req.iterator({ destroyOnReturn: false })[Symbol.asyncIterator]()
      return {
        next: async () => await it.next(),
        return: async () => {
          await it.return?.()
          if (!ctx.req.complete) boundDrain(ctx)
          return { done: true as const, value: undefined }
        }
      }
    }
  }
}

function boundDrain (ctx: Context): void {
  const req = ctx.req
  let drained = 0
  const stop = () => { clearTimeout(timer); req.off('data', count) }
  const count = (chunk: Buffer) => {
    drained += chunk.byteLength
    if (drained > DRAIN_BYTES) { stop(); req.socket.destroy() }
  }
  const timer = setTimeout(() => { stop(); if (!req.complete) req.socket.destroy() }, DRAIN_MS)
  timer.unref()
  req.on('data', count)
  req.once('end', stop)
  req.once('close', stop)
}
