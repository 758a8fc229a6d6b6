// dist-tags: GET /-/package/<name>/dist-tags, PUT and DELETE /-/package/<name>/dist-tags/<tag>.
// A PUT body is the version as a JSON string (npm dist-tag add sends `"1.2.3"`).
import type { Context } from 'koa'
import semver from 'semver'
import { badRequest, notFound } from '../../store/errors.ts'
import type { FormatContext, RepoRoutes } from '../format.ts'
import { readJsonBody } from './body.ts'
import { splitPackageName } from './names.ts'
import { loadPackage } from './packument.ts'

const MAX_TAG = 128

/** npm refuses tags that could be read as versions or ranges (`1.2.3`, `^1`, `x`). */
export function assertTagName (tag: string): void {
  if (tag === '' || tag.length > MAX_TAG) throw badRequest(`dist-tag must be 1 to ${MAX_TAG} characters`)
  if (encodeURIComponent(tag) !== tag) throw badRequest(`dist-tag "${tag}" may only contain URL-safe characters`)
  if (semver.validRange(tag) != null) throw badRequest(`dist-tag "${tag}" must not be a valid semver range`)
}

function tagPath (ctx: Context, fc: FormatContext): { name: string, tag?: string } {
  const raw = ctx.path.slice(`/${fc.repo.name}/-/package/`.length)
  const { name, rest } = splitPackageName(raw)
  if (rest[0] !== 'dist-tags' || rest.length > 2) throw notFound(`no such resource: ${ctx.path}`)
  return { name, tag: rest[1] }
}

export function distTagRoutes (router: RepoRoutes, fc: FormatContext): void {
  router.get('/-/package/*rest', 'read', (ctx) => {
    const { name, tag } = tagPath(ctx, fc)
    const tags = loadPackage(fc, name).tags
    if (tag == null) ctx.body = tags
    else if (tags[tag] != null) ctx.body = JSON.stringify(tags[tag])
    else throw notFound(`dist-tag ${tag} not found on ${name}`)
    ctx.type = 'application/json'
    ctx.set('Cache-Control', 'no-cache')
  })

  router.put('/-/package/*rest', 'write', async (ctx) => {
    const { name, tag } = tagPath(ctx, fc)
    if (tag == null) throw badRequest('PUT needs a tag: /-/package/<name>/dist-tags/<tag>')
    assertTagName(tag)
    const version = await readJsonBody(ctx, fc.limits.metadataBytes)
    if (typeof version !== 'string' || semver.valid(version) !== version) {
      throw badRequest(`the body must be a version as a JSON string, e.g. "1.2.3"; got ${JSON.stringify(version)?.slice(0, 100)}`)
    }
    loadPackage(fc, name) // 404 for an unknown package, before the version check
    fc.artifacts.setTag(fc.repo.name, name, tag, version)
    ctx.status = 201
    ctx.body = { ok: true, id: name, 'dist-tags': fc.artifacts.tags(fc.repo.name, name) }
  })

  router.delete('/-/package/*rest', 'write', (ctx) => {
    const { name, tag } = tagPath(ctx, fc)
    if (tag == null) throw badRequest('DELETE needs a tag: /-/package/<name>/dist-tags/<tag>')
    // Installs resolve `latest` by default; a package without it would be uninstallable by name.
    if (tag === 'latest') throw badRequest('the latest dist-tag cannot be removed; point it at another version instead')
    loadPackage(fc, name)
    fc.artifacts.removeTag(fc.repo.name, name, tag)
    ctx.body = { ok: true, id: name, 'dist-tags': fc.artifacts.tags(fc.repo.name, name) }
  })
}
