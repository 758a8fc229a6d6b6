// The Simple Repository API of a local repository: project list and project pages built from
// the artifact rows, rendered by ./simple-render.ts.
import { compare } from '@renovatebot/pep440'
import type { Context } from 'koa'
import { notFound } from '../../store/errors.ts'
import type { FormatContext } from '../format.ts'
import { RenderCache, RenderedDocument } from '../http/rendered.ts'
import { canonicalName, isValidProjectName } from './names.ts'
import { effectiveYank, releaseOf } from './release.ts'
import { negotiate, renderProject, renderProjectList, sendIndex, uploadTime, type IndexFile, type IndexProject } from './simple-render.ts'

/** GET /simple/: rendered once per change of the repository (per representation and base URL). */
export function projectList (ctx: Context, fc: FormatContext, cache: RenderCache): void {
  const rep = negotiate(ctx)
  const key = `list\0${rep.type}\0${fc.baseUrl(ctx)}`
  sendIndex(ctx, rep, cache.get(key, fc.artifacts.repositoryGeneration(fc.repo.name), () => new RenderedDocument(renderProjectList(rep, projectNames(fc)))))
}

/** The projects with rows in this repository (published, or cached from an upstream). */
export function projectNames (fc: FormatContext): string[] {
  return fc.artifacts.searchNames(fc.repo.name, '', Number.MAX_SAFE_INTEGER, 0).names
}

/** A project's page as the model, from its rows; undefined if it has no files here. URLs point
 *  at `baseUrl` (this repository). */
export function localProject (fc: FormatContext, baseUrl: string, project: string): IndexProject | undefined {
  const releases = fc.artifacts.versions(fc.repo.name, project).sort((a, b) => compare(a.version, b.version))
  const files: IndexFile[] = []
  for (const artifact of releases) {
    const release = releaseOf(artifact)
    const blobs = new Map(fc.artifacts.filesWithBlobs(artifact).map(f => [f.filename, f.blob]))
    for (const [filename, dist] of Object.entries(release.files).sort(([a], [b]) => a < b ? -1 : 1)) {
      const blob = blobs.get(filename)
      if (blob == null) continue
      const metadata = dist.metadataFile == null ? undefined : blobs.get(dist.metadataFile)
      files.push({
        filename,
        url: `${baseUrl}/packages/${encodeURIComponent(project)}/${encodeURIComponent(filename)}`,
        hashes: { sha256: blob.sha256 },
        requiresPython: dist.requiresPython,
        coreMetadata: metadata == null ? false : { sha256: metadata.sha256 },
        yanked: effectiveYank(release, dist),
        size: blob.size,
        uploadTime: uploadTime(dist.uploadedAt)
      })
    }
  }
  if (files.length === 0) return undefined
  return { name: project, displayName: releaseOf(releases[releases.length - 1]).name, versions: releases.map(r => r.version), files }
}

/** The normalised project name of GET /simple/<project>/, or undefined after answering a 301 to
 *  the normalised URL (other spellings and a missing slash, as PEP 503 asks). */
export function normalisedProject (ctx: Context, fc: FormatContext, requested: string): string | undefined {
  // Never redirect an invalid name (e.g. "..") to some normal form of it.
  if (!isValidProjectName(requested)) throw notFound(`no project "${requested.slice(0, 200)}" in ${fc.repo.name} (not a valid project name)`)
  const project = canonicalName(requested)
  if (project === requested && ctx.path.endsWith('/')) return project
  ctx.redirect(`${fc.baseUrl(ctx)}/simple/${encodeURIComponent(project)}/`)
  ctx.status = 301
  return undefined
}

/** GET /simple/<project>/: rendered once per change of the project. */
export function projectPage (ctx: Context, fc: FormatContext, cache: RenderCache, requested: string): void {
  const project = normalisedProject(ctx, fc, requested)
  if (project == null) return
  const rep = negotiate(ctx)
  const baseUrl = fc.baseUrl(ctx)
  const key = `page\0${rep.type}\0${baseUrl}\0${project}`
  const doc = cache.get(key, fc.artifacts.generation(fc.repo.name, project), () => {
    const page = localProject(fc, baseUrl, project)
    if (page == null) throw notFound(`no project "${project}" in ${fc.repo.name}`)
    return new RenderedDocument(renderProject(rep, page))
  })
  sendIndex(ctx, rep, doc)
}
