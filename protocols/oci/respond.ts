// Small response and query helpers shared by the OCI endpoints.
import type { Context } from 'koa'
import { OciError } from './errors.ts'

/** A status with an empty body and `Content-Length: 0` (what clients expect on 201/202/204). */
export function noBody (ctx: Context, status: number): void {
  ctx.body = null // first: Koa turns a null body into 204 unless a status follows
  ctx.status = status
}

/** The single value of a query parameter ('' when absent; the last one when repeated). */
export function query (ctx: Context, key: string): string {
  const v = ctx.query[key]
  return Array.isArray(v) ? (v.at(-1) ?? '') : (v ?? '')
}

export function queryAll (ctx: Context, key: string): string[] {
  const v = ctx.query[key]
  return v == null ? [] : Array.isArray(v) ? v : [v]
}

/** `n`/`last` pagination over a sorted list (tags/list, _catalog), with a `Link` to the next page
 *  when one exists. https://github.com/opencontainers/distribution-spec/blob/main/spec.md#listing-tags */
export function paginate (ctx: Context, sorted: string[]): string[] {
  const nText = query(ctx, 'n')
  const last = query(ctx, 'last')
  if (nText !== '' && !/^\d{1,9}$/.test(nText)) {
    throw new OciError('UNSUPPORTED', `n must be a non-negative integer, got "${nText}"`, { status: 'BadRequest' })
  }
  const after = last === '' ? sorted : sorted.filter(s => s > last)
  if (nText === '') return after
  const n = Number(nText)
  if (n === 0) return []
  const page = after.slice(0, n)
  if (after.length > n) {
    ctx.set('Link', `<${ctx.path}?n=${n}&last=${encodeURIComponent(page[page.length - 1])}>; rel="next"`)
  }
  return page
}
