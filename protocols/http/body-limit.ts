// Refusing a body by its declared size, before a byte of it is read. With Expect: 100-continue
// (node/expect-continue.ts) the client then never sends it and shows this message.
import type { Context } from 'koa'
import { tooLarge } from '../../store/errors.ts'

/** Throws TooLarge if the declared Content-Length, added to `already` bytes (an upload's earlier
 *  chunks), exceeds `limit`. The unread body is not drained: the connection is closed instead. */
export function refuseDeclaredOver (ctx: Context, limit: number, opts: { already?: number, setting?: string } = {}): void {
  const declared = ctx.get('content-length')
  if (declared === '') return
  const total = Number(declared) + (opts.already ?? 0)
  if (!(total > limit)) return
  ctx.set('Connection', 'close')
  const what = opts.already == null || opts.already === 0 ? `upload of ${declared} bytes` : `upload of ${total} bytes (${opts.already} received, ${declared} more declared)`
  throw tooLarge(`${what} exceeds the limit of ${limit} bytes (${opts.setting ?? 'limits.uploadBytes'})`)
}
