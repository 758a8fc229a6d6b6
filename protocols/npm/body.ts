// Reading JSON request bodies with a hard size limit. An npm publish carries its tarball base64
// inside the JSON, so the limit (limits.metadataBytes) bounds the largest publishable package.
import type { Context } from 'koa'
import getRawBody from 'raw-body'
import { badRequest, tooLarge } from '../../store/errors.ts'

function refuseTooLarge (ctx: Context, what: string, limit: number): never {
  // The rest of the body is never read: close the connection rather than drain it.
  ctx.set('Connection', 'close')
  throw tooLarge(`${what} exceeds the limit of ${limit} bytes (limits.metadataBytes)`)
}

export async function readJsonBody (ctx: Context, limit: number): Promise<unknown> {
  const declared = ctx.get('content-length')
  if (declared !== '' && Number(declared) > limit) refuseTooLarge(ctx, `request body of ${declared} bytes`, limit)
  const encoding = ctx.get('content-encoding')
  if (encoding !== '' && encoding !== 'identity') throw badRequest(`unsupported Content-Encoding "${encoding}"`)
  let text: string
  try {
    text = await getRawBody(ctx.req, { limit, encoding: 'utf8', length: declared === '' ? undefined : declared })
  } catch (err: any) {
    if (err?.type === 'entity.too.large') refuseTooLarge(ctx, 'request body', limit)
    if (err?.type === 'request.size.invalid') throw badRequest('request body is shorter or longer than its Content-Length')
    throw err
  }
  if (text.trim() === '') throw badRequest('empty request body; expected JSON')
  try {
    return JSON.parse(text)
  } catch (err) {
    throw badRequest(`malformed JSON body: ${(err as Error).message}`)
  }
}

export function isPlainObject (v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}
