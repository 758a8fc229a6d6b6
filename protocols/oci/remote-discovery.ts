// Tag lists and referrers of a remote OCI repository: the upstream's answers passed through (as
// metadata, kept for metadataTtl), else answered from what is cached.
//   tags/list:  the upstream's list (n/last passed on), the name rewritten to this node's; when
//               the upstream fails, the cached tags with `Warning: 110`.
//   referrers:  the upstream's index, filtered here by artifactType; a registry without the
//               referrers API (404) or one that fails is answered from the cached manifests.
import type { Context } from 'koa'
import type { RegistryError } from '../../store/errors.ts'
import type { FormatContext } from '../format.ts'
import { STALE_WARNING, type RemoteRepository } from '../shared/remote/remote-repository.ts'
import { filterReferrers, localReferrers, localTags, listTags, sendReferrers, type Descriptor } from './discovery.ts'
import { sha256Of } from './names.ts'
import { query } from './respond.ts'
import { pullOf, upstreamUrl } from './remote-upstream.ts'

const failed = (err: unknown) => ['UpstreamError', 'UpstreamTimeout'].includes((err as RegistryError).code)

const notJson = (what: string, check: (doc: any) => boolean) => (contentType: string, body: Buffer): string | undefined => {
  if (!/json/i.test(contentType)) return `${what} came as ${contentType === '' ? 'no Content-Type' : contentType}, not JSON`
  try { return check(JSON.parse(body.toString('utf8'))) ? undefined : `${what} is not of the expected shape` } catch { return `${what} is not JSON` }
}

/** `clientName` is the name as the client sent it; `name` the upstream's (library/ added). */
export async function listRemoteTags (ctx: Context, fc: FormatContext, remote: RemoteRepository, clientName: string, name: string): Promise<void> {
  if (remote.settings.offline) return listTags(ctx, fc, name)
  const url = upstreamUrl(remote, name, 'tags/list')
  for (const key of ['n', 'last']) { const v = query(ctx, key); if (v !== '') url.searchParams.set(key, v) }
  let answer
  try {
    answer = await remote.metadata(`tags ${name}${url.search}`, url, {
      refuse: notJson('the tag list', d => d != null && (d.tags == null || Array.isArray(d.tags))),
      upstream: pullOf(name)
    })
  } catch (err) {
    if (!failed(err)) throw err
    ctx.set('Warning', STALE_WARNING)
    return listTags(ctx, fc, name)
  }
  const doc = JSON.parse(answer.doc.body.toString('utf8')) as { tags?: string[] | null }
  if (answer.stale) ctx.set('Warning', STALE_WARNING)
  ctx.body = { name: `${fc.repo.name}/${clientName}`, tags: doc.tags ?? [] }
}

export async function listRemoteReferrers (ctx: Context, fc: FormatContext, remote: RemoteRepository, name: string, digest: string): Promise<void> {
  sha256Of(digest)
  const { manifests, stale } = await remoteReferrers(fc, remote, name, digest)
  if (stale) ctx.set('Warning', STALE_WARNING)
  sendReferrers(ctx, filterReferrers(ctx, manifests))
}

/** The upstream's referrers of `digest` (unfiltered), or the cached ones when it has no
 *  referrers API or fails. */
export async function remoteReferrers (fc: FormatContext, remote: RemoteRepository, name: string, digest: string): Promise<{ manifests: Descriptor[], stale: boolean }> {
  if (remote.settings.offline) return { manifests: localReferrers(fc, name, digest), stale: false }
  const url = upstreamUrl(remote, name, `referrers/${digest}`)
  try {
    const answer = await remote.metadata(`referrers ${name}@${digest}`, url, {
      refuse: notJson('the referrers index', d => d != null && Array.isArray(d.manifests)),
      upstream: pullOf(name)
    })
    return { manifests: (JSON.parse(answer.doc.body.toString('utf8')) as { manifests: Descriptor[] }).manifests, stale: answer.stale }
  } catch (err) {
    const code = (err as RegistryError).code
    if (code !== 'NotFound' && !failed(err)) throw err
    return { manifests: localReferrers(fc, name, digest), stale: false }
  }
}

/** The upstream's whole tag list of an image (for a virtual repository to merge), else the
 *  cached tags (stale) when it fails; undefined if neither knows the image. */
export async function remoteTags (fc: FormatContext, remote: RemoteRepository, name: string): Promise<{ tags: string[], stale: boolean } | undefined> {
  if (remote.settings.offline) { const tags = localTags(fc, name); return tags == null ? undefined : { tags, stale: false } }
  const url = upstreamUrl(remote, name, 'tags/list')
  try {
    const answer = await remote.metadata(`tags ${name}${url.search}`, url, {
      refuse: notJson('the tag list', d => d != null && (d.tags == null || Array.isArray(d.tags))),
      upstream: pullOf(name)
    })
    return { tags: (JSON.parse(answer.doc.body.toString('utf8')) as { tags?: string[] | null }).tags ?? [], stale: answer.stale }
  } catch (err) {
    if ((err as RegistryError).code === 'NotFound') return undefined
    if (!failed(err)) throw err
    const tags = localTags(fc, name)
    return tags == null ? undefined : { tags, stale: true }
  }
}
