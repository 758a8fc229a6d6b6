// Everything under /<repo>/<package name>: packuments, versions, tarballs, publish and unpublish.
// One catch-all route per method, parsed by names.ts, because scoped names come both as
// `@scope%2fname` and `@scope/name`, which no path pattern expresses.
import type { Context } from 'koa'
import { badRequest, notFound } from '../../store/errors.ts'
import { actorOf, type FormatContext, type RepoRoutes } from '../format.ts'
import { sendBlob } from '../http/blob-response.ts'
import { RenderCache, renderJson, sendRendered, type RenderedDocument } from '../http/rendered.ts'
import { isPlainObject, readJsonBody } from './body.ts'
import { parsePackagePath, type PackagePath } from './names.ts'
import { ABBREVIATED_TYPE, loadPackage, modifiedAt, renderAbbreviated, renderFull, renderVersion, resolveSpec } from './packument.ts'
import { publishVersion } from './publish.ts'
import { removePackage, removeTarball, updatePackument } from './update.ts'

export function packagePath (ctx: Context, fc: FormatContext): PackagePath | undefined {
  const raw = ctx.path.slice(fc.repo.name.length + 2) // strip "/<repo>/"
  return raw === '' ? undefined : parsePackagePath(raw)
}

/** Sends a JSON document with a content-derived ETag, so unchanged packuments cost a 304;
 *  `reuse` for a cached one (its gzip bytes are kept with it). */
export function sendJson (ctx: Context, doc: RenderedDocument, type: string, reuse = false): void {
  sendRendered(ctx, doc, { type, vary: 'Accept', cacheControl: 'max-age=0, must-revalidate', reuse })
}

function getPackument (ctx: Context, fc: FormatContext, cache: RenderCache, name: string): void {
  const forWrite = ctx.query.write === 'true'
  // application/json first, so `*/*` gets the full document; npm and pnpm ask for the
  // abbreviated one with a higher q-value.
  const abbreviated = !forWrite && ctx.accepts('application/json', ABBREVIATED_TYPE) === ABBREVIATED_TYPE
  const baseUrl = fc.baseUrl(ctx)
  const generation = fc.artifacts.generation(fc.repo.name, name)
  const key = `${abbreviated ? 'a' : 'f'}\0${baseUrl}\0${name}`
  const doc = cache.get(key, generation, () => {
    const p = loadPackage(fc, name)
    return renderJson(abbreviated ? renderAbbreviated(p, baseUrl) : renderFull(p, baseUrl), modifiedAt(p))
  })
  sendJson(ctx, doc, abbreviated ? ABBREVIATED_TYPE : 'application/json', true)
  if (forWrite) ctx.set('Cache-Control', 'no-store')
}

async function getTarball (ctx: Context, fc: FormatContext, name: string, filename: string): Promise<void> {
  const file = fc.artifacts.fileByName(fc.repo.name, name, filename)
  const blob = file == null ? undefined : await fc.store.locate(file.cid)
  if (blob == null) throw notFound(`${name}/-/${filename} not found`)
  sendBlob(ctx, fc.store, blob, { contentType: 'application/octet-stream' })
}

export function packageRoutes (router: RepoRoutes, fc: FormatContext): void {
  const cache = new RenderCache()
  // ?write=true fetches the document a write will be based on: writers only.
  router.get('{/*rest}', (ctx) => ctx.query.write === 'true' ? 'write' : 'read', (ctx) => {
    const path = packagePath(ctx, fc)
    if (path == null) { ctx.body = { db_name: fc.repo.name }; return }
    switch (path.kind) {
      case 'packument': return getPackument(ctx, fc, cache, path.name)
      case 'version': {
        const a = resolveSpec(loadPackage(fc, path.name), path.spec)
        if (a == null) throw notFound(`version not found: ${path.name}@${path.spec}`)
        return sendJson(ctx, renderJson(renderVersion(a, fc.baseUrl(ctx))), 'application/json')
      }
      case 'tarball': return getTarball(ctx, fc, path.name, path.filename)
      default: throw notFound(`no such resource: ${ctx.path}`)
    }
  })

  router.put('{/*rest}', 'write', async (ctx) => {
    const user = actorOf(ctx)
    const path = packagePath(ctx, fc)
    if (path?.kind !== 'packument' && path?.kind !== 'packument-rev') throw badRequest(`cannot PUT ${ctx.path}`)
    const body = await readJsonBody(ctx, fc.limits.metadataBytes)
    if (!isPlainObject(body)) throw badRequest('the body must be a JSON object (a package document)')
    if (body._attachments !== undefined) {
      const { version } = await publishVersion(ctx, fc, path.name, body, user)
      ctx.status = 201
      ctx.body = { ok: true, id: path.name, version }
    } else {
      updatePackument(fc, path.name, body, path.kind === 'packument-rev' ? path.rev : undefined)
      ctx.body = { ok: true, id: path.name, rev: loadRevOrGone(fc, path.name) }
    }
  })

  router.delete('{/*rest}', 'write', (ctx) => {
    const path = packagePath(ctx, fc)
    if (path?.kind === 'packument-rev') removePackage(fc, path.name, path.rev)
    else if (path?.kind === 'tarball-rev') removeTarball(fc, path.name, path.filename, path.rev)
    else throw badRequest(`cannot DELETE ${ctx.path}; npm deletes /<name>/-rev/<rev> or /<name>/-/<file>/-rev/<rev>`)
    ctx.body = { ok: true }
  })
}

function loadRevOrGone (fc: FormatContext, name: string): string | undefined {
  return fc.artifacts.versions(fc.repo.name, name).length === 0 ? undefined : loadPackage(fc, name).rev
}
