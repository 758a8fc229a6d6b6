// Content discovery: tag lists, the referrers API and the catalog, all rendered from the index.
import type { Context } from 'koa'
import type { FormatContext } from '../format.ts'
import { canRead, challenge, registryRoot } from './auth.ts'
import { ociError, OciError } from './errors.ts'
import type { ManifestMetadata } from './manifests.ts'
import { OCI_INDEX } from './media.ts'
import { sha256Of } from './names.ts'
import { paginate, query } from './respond.ts'

/** The image's tags, sorted; undefined if the image has no manifests in this repository. */
export function localTags (fc: FormatContext, name: string): string[] | undefined {
  const tags = Object.keys(fc.artifacts.tags(fc.repo.name, name)).sort()
  if (tags.length === 0 && fc.artifacts.versions(fc.repo.name, name).length === 0) return undefined
  return tags
}

export function listTags (ctx: Context, fc: FormatContext, name: string): void {
  const tags = localTags(fc, name)
  if (tags == null) throw ociError('NAME_UNKNOWN', `${fc.repo.name}/${name} has no manifests`, { name: `${fc.repo.name}/${name}` })
  ctx.body = { name: `${fc.repo.name}/${name}`, tags: paginate(ctx, tags) }
}

export interface Descriptor { mediaType: string, digest: string, size: number, artifactType?: string, annotations?: Record<string, string> }

/** GET /v2/<repo>/<name>/referrers/<digest>[?artifactType=]: an image index of the manifests in
 *  this image whose `subject` is `digest`. Never 404 (an unknown subject has no referrers).
 *  https://github.com/opencontainers/distribution-spec/blob/main/spec.md#listing-referrers */
export function listReferrers (ctx: Context, fc: FormatContext, name: string, digest: string): void {
  sha256Of(digest)
  sendReferrers(ctx, filterReferrers(ctx, localReferrers(fc, name, digest)))
}

/** The descriptors of the manifests in this image whose `subject` is `digest`. */
export function localReferrers (fc: FormatContext, name: string, digest: string): Descriptor[] {
  // Scans this image's manifests: fine for the hundreds an image has; a subject index (one
  // more table) is the step if images grow to many thousands of manifests.
  return fc.artifacts.versions(fc.repo.name, name)
    .map(a => a.metadata as unknown as ManifestMetadata)
    .filter(m => m.subject === digest)
    .map(m => ({
      mediaType: m.mediaType,
      digest: m.digest,
      size: m.size,
      ...(m.artifactType != null ? { artifactType: m.artifactType } : {}),
      ...(m.annotations != null ? { annotations: m.annotations } : {})
    }))
}

/** The request's `artifactType` filter, applied (and said so in OCI-Filters-Applied). */
export function filterReferrers (ctx: Context, manifests: Descriptor[]): Descriptor[] {
  const wanted = query(ctx, 'artifactType')
  if (wanted === '') return manifests
  ctx.set('OCI-Filters-Applied', 'artifactType')
  return manifests.filter(m => m.artifactType === wanted)
}

export function sendReferrers (ctx: Context, manifests: Descriptor[]): void {
  ctx.type = OCI_INDEX
  ctx.body = JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests })
}

/** GET /v2/_catalog: "<repo>/<name>" of every image the caller may read, across all OCI
 *  repositories. An anonymous caller who cannot see everything is asked to authenticate. */
export function listCatalog (ctx: Context, fcs: FormatContext[]): void {
  const readable = fcs.filter(fc => canRead(ctx, fc))
  if (ctx.state.principal == null && readable.length < fcs.length) {
    throw new OciError('UNAUTHORIZED', 'authentication required to list every repository', {
      headers: challenge(registryRoot(ctx, fcs[0]), 'registry:catalog:*')
    })
  }
  const names: string[] = []
  for (const fc of readable) {
    for (let offset = 0; ; offset += 1000) {
      const page = fc.artifacts.searchNames(fc.repo.name, '', 1000, offset).names
      names.push(...page.map(n => `${fc.repo.name}/${n}`))
      if (page.length < 1000) break
    }
  }
  ctx.body = { repositories: paginate(ctx, names.sort()) }
}
