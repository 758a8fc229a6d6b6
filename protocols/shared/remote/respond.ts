// How every format answers a GET of remote content it did not have: stream the upstream's bytes
// to this client while they are cached, or wait and serve the cached copy. Shared so that the
// choice between the two is made one way for all formats.
import type { Context } from 'koa'
import type { ContentAnswer } from './remote-repository.ts'
import type { UpstreamResponse } from './upstream-client.ts'

/** Whether this request may be answered with the upstream's stream: a range or conditional
 *  request is answered from the cache once the whole thing is in. */
export function streamsToClient (ctx: Context): boolean {
  return ctx.get('range') === '' && ctx.get('if-none-match') === '' && ctx.get('if-modified-since') === ''
}

export interface RespondOptions {
  /** What `streamsToClient` said when the fetch was started. */
  streams: boolean
  /** Serves the cached copy (the format's own cache-hit path); must succeed once `done` has. */
  fromCache: () => Promise<void>
  /** Content-Type and the format's own headers for the streamed answer. */
  headers: (res: UpstreamResponse) => Record<string, string>
}

/** Answers from the stream or from the cache. Headers go out with the first bytes: a fetch that
 *  fails before them is answered with its error (502/504), and content complete before them (a
 *  small file, or one another request fetched) is served from the cache, with its cache headers. */
export async function respondWithContent<T> (ctx: Context, answer: ContentAnswer<T>, opts: RespondOptions): Promise<void> {
  const cachedFirst = !answer.first || !opts.streams ||
    await Promise.race([answer.flowing.then(() => false), answer.done.then(() => true)])
  if (cachedFirst) {
    await answer.done
    await opts.fromCache()
    // A peer's copy: the bytes stream from that peer through the store (verified as they come).
    if (!answer.first && answer.fromPeer === true) ctx.set('X-Akmesh-Cache', 'peer')
    return
  }
  const res = answer.response
  ctx.status = 200
  ctx.compress = false
  for (const [name, value] of Object.entries(opts.headers(res))) ctx.set(name, value)
  if (res.length != null) ctx.length = res.length
  ctx.set('X-Akmesh-Cache', 'miss')
  ctx.body = answer.stream
}
