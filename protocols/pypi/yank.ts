// Yanking (PEP 592): a yanked file stays downloadable and installable by an exact == pin, but
// resolvers skip it otherwise.
//   POST /<repo>/-/yank/<project>/<version>     body (optional, JSON or form): reason, filename
//   POST /<repo>/-/unyank/<project>/<version>   body (optional): filename
// Without `filename` the whole release is (un)yanked, as on PyPI.
import getRawBody from 'raw-body'
import type { Context } from 'koa'
import { badRequest, notFound } from '../../store/errors.ts'
import { actorOf, type FormatContext } from '../format.ts'
import { canonicalName, normalVersion } from './names.ts'
import { effectiveYank, releaseOf, type ReleaseMetadata } from './release.ts'

const MAX_BODY = 64 * 1024
const MAX_REASON = 1024

async function readOptions (ctx: Context): Promise<{ reason?: string, filename?: string }> {
  let text: string
  try {
    text = await getRawBody(ctx.req, { limit: MAX_BODY, encoding: 'utf8' })
  } catch (err) {
    throw badRequest(`unreadable request body: ${(err as Error).message}`)
  }
  if (text.trim() === '') return {}
  let raw: Record<string, unknown>
  if (ctx.is('application/x-www-form-urlencoded') !== false) {
    raw = Object.fromEntries(new URLSearchParams(text))
  } else {
    try { raw = JSON.parse(text) } catch { throw badRequest('the body must be JSON ({"reason": "...", "filename": "..."}) or a form') }
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw badRequest('the JSON body must be an object')
  }
  for (const key of ['reason', 'filename']) {
    if (raw[key] != null && typeof raw[key] !== 'string') throw badRequest(`${key} must be a string`)
  }
  const reason = raw.reason as string | undefined
  if (reason != null && reason.length > MAX_REASON) throw badRequest(`reason longer than ${MAX_REASON} characters`)
  return { reason, filename: raw.filename as string | undefined }
}

export async function setYank (ctx: Context, fc: FormatContext, yank: boolean): Promise<void> {
  const user = actorOf(ctx)
  const project = canonicalName(String(ctx.params.project))
  const version = normalVersion(String(ctx.params.version))
  if (version == null) throw badRequest(`invalid version "${ctx.params.version}"`)
  const { reason = '', filename } = await readOptions(ctx)
  const release = fc.artifacts.atomically(() => {
    const artifact = fc.artifacts.get(fc.repo.name, project, version)
    if (artifact == null) throw notFound(`${project} ${version} not found in ${fc.repo.name}`)
    const release = releaseOf(artifact)
    if (filename != null) {
      const file = release.files[filename]
      if (file == null) throw notFound(`${project} ${version} has no file ${filename}`)
      file.yanked = yank ? reason : false
    } else {
      release.yanked = yank ? reason : false
      for (const file of Object.values(release.files)) file.yanked = false
    }
    fc.artifacts.updateMetadata(fc.repo.name, project, version, release as unknown as Record<string, unknown>)
    return release
  })
  fc.log.info({ project, version, filename, yank, user }, yank ? 'pypi yank' : 'pypi unyank')
  ctx.body = releaseState(project, version, release)
}

function releaseState (project: string, version: string, release: ReleaseMetadata) {
  return {
    project,
    version,
    yanked: release.yanked,
    files: Object.entries(release.files).map(([filename, f]) => ({ filename, yanked: effectiveYank(release, f) }))
  }
}
