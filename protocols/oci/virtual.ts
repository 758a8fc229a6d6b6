// An OCI virtual repository: one /v2/<virtual>/ over local and remote OCI members, asked in order.
//   manifests (tag or digest), blobs: the first member that has the reference; local members
//     from the index, remote members through their cache and upstream. A HEAD of a blob asks
//     remote members' caches only (pushes HEAD every layer; "exists" must mean a blob this node
//     holds, so the manifest PUT can take it, below).
//   tags/list: the members' tags merged (union, sorted, then paginated), as Artifactory's and
//     Nexus's docker virtual/group repositories list them; a tag several members have is
//     resolved by the first of them on pull.
//   referrers: the members' referrers merged (one entry per digest).
//   pushes (blob uploads, manifest PUT): to defaultLocal, with Location URLs on the virtual
//     repository; a manifest's blobs that another member holds are linked into defaultLocal
//     (a cross-member mount), so an image built on a base pulled through the virtual pushes.
//   deletes: refused (delete on the member).
// Dependency-confusion protection: an image name any local member has is never served by a
// remote member (unless allowRemoteOverride names it).
import type { Context } from 'koa'
import type { FormatContext } from '../format.ts'
import { STALE_WARNING } from '../shared/remote/remote-repository.ts'
import { firstMember, type VirtualMember, type VirtualRepository } from '../shared/virtual/virtual-repository.ts'
import { canRead } from './auth.ts'
import { getBlob, linkedBlob, servableBlob } from './blobs.ts'
import { filterReferrers, localReferrers, localTags, sendReferrers, type Descriptor } from './discovery.ts'
import { OciError, ociError } from './errors.ts'
import { checkManifestReference, getManifest, readManifestBody, resolveManifest, storeManifest } from './manifests.ts'
import { parseManifest } from './media.ts'
import type { Route } from './names.ts'
import { remoteDispatch } from './remote.ts'
import { paginate } from './respond.ts'
import { remoteReferrers, remoteTags } from './remote-discovery.ts'
import { upstreamName } from './remote-upstream.ts'
import { cancelUpload, finishUpload, patchUpload, startUpload, uploadStatus, type RepoLookup } from './uploads.ts'

export async function virtualDispatch (ctx: Context, fc: FormatContext, virtual: VirtualRepository, r: Route, lookup: RepoLookup): Promise<void> {
  const method = ctx.method === 'HEAD' ? 'GET' : ctx.method
  if (r.kind === 'uploads' || r.kind === 'upload' || (r.kind === 'manifest' && method === 'PUT')) return await push(ctx, fc, virtual, r, lookup)
  if (method !== 'GET') {
    throw new OciError('UNSUPPORTED', `${fc.repo.name} is a virtual repository: ${ctx.method} it on the member that holds the image`, { headers: { Allow: 'GET, HEAD' } })
  }
  const members = virtual.membersFor(ctx, r.name, m => m.fc.artifacts.versions(m.name, r.name).length > 0)
  const names = members.map(m => m.name).join(', ')
  switch (r.kind) {
    case 'manifest': {
      const hit = await firstMember(members, async m => {
        if (m.fc.remote != null) { await remoteDispatch(ctx, m.fc, m.fc.remote, r); return true }
        if (resolveManifest(m.fc, r.name, r.reference) == null) return undefined
        await getManifest(ctx, m.fc, r.name, r.reference)
        return true
      })
      if (hit == null) throw ociError('MANIFEST_UNKNOWN', `manifest ${r.reference} of ${r.name} is in no member of ${fc.repo.name} (${names})`, { reference: r.reference })
      ctx.set('X-Akmesh-Member', hit.member.name)
      return
    }
    case 'blob': {
      const hit = await firstMember(members, async m => {
        if (m.fc.remote != null && ctx.method !== 'HEAD') { await remoteDispatch(ctx, m.fc, m.fc.remote, r); return true }
        const name = imageIn(m, r.name)
        if (await servableBlob(m.fc, name, r.digest) == null) return undefined
        await getBlob(ctx, m.fc, name, r.digest)
        return true
      })
      if (hit == null) throw ociError('BLOB_UNKNOWN', `blob ${r.digest} of ${r.name} is in no member of ${fc.repo.name} (${names})`, { digest: r.digest })
      ctx.set('X-Akmesh-Member', hit.member.name)
      return
    }
    case 'tags': return await mergedTags(ctx, fc, members, r.name)
    case 'referrers': return await mergedReferrers(ctx, members, r.name, r.digest)
  }
}

/** The name a member keeps an image under (a Docker Hub remote adds `library/`). */
const imageIn = (m: VirtualMember, name: string) => m.fc.remote != null ? upstreamName(m.fc, name) : name

async function mergedTags (ctx: Context, fc: FormatContext, members: VirtualMember[], name: string): Promise<void> {
  const tags = new Set<string>()
  let known = false
  let stale = false
  for (const m of members) {
    const listed = m.fc.remote != null ? await remoteTags(m.fc, m.fc.remote, imageIn(m, name)) : wrap(localTags(m.fc, name))
    if (listed == null) continue
    known = true
    stale ||= listed.stale
    for (const tag of listed.tags) tags.add(tag)
  }
  if (!known) throw ociError('NAME_UNKNOWN', `${fc.repo.name}/${name} is in no member (${members.map(m => m.name).join(', ')})`, { name: `${fc.repo.name}/${name}` })
  if (stale) ctx.set('Warning', STALE_WARNING)
  ctx.body = { name: `${fc.repo.name}/${name}`, tags: paginate(ctx, [...tags].sort()) }
}

const wrap = (tags: string[] | undefined) => tags == null ? undefined : { tags, stale: false }

async function mergedReferrers (ctx: Context, members: VirtualMember[], name: string, digest: string): Promise<void> {
  const byDigest = new Map<string, Descriptor>()
  let stale = false
  for (const m of members) {
    let found: Descriptor[]
    if (m.fc.remote != null) {
      const answer = await remoteReferrers(m.fc, m.fc.remote, imageIn(m, name), digest)
      stale ||= answer.stale
      found = answer.manifests
    } else found = localReferrers(m.fc, name, digest)
    for (const d of found) if (!byDigest.has(d.digest)) byDigest.set(d.digest, d)
  }
  if (stale) ctx.set('Warning', STALE_WARNING)
  sendReferrers(ctx, filterReferrers(ctx, [...byDigest.values()]))
}

/** Blob uploads and manifest PUTs, done on defaultLocal as seen from the virtual repository's
 *  URL (Location headers point back here, where the client's token is valid). */
async function push (ctx: Context, fc: FormatContext, virtual: VirtualRepository, r: Route, lookup: RepoLookup): Promise<void> {
  const target = virtual.writeTarget(ctx, 'push')
  const view: FormatContext = { ...target, baseUrl: fc.baseUrl }
  const method = ctx.method
  if (r.kind === 'uploads' && method === 'POST') return await startUpload(ctx, view, r.name, lookup)
  if (r.kind === 'upload') {
    if (method === 'GET' || method === 'HEAD') return uploadStatus(ctx, view, r.name, r.id)
    if (method === 'PATCH') return await patchUpload(ctx, view, r.name, r.id)
    if (method === 'PUT') return await finishUpload(ctx, view, r.name, r.id)
    if (method === 'DELETE') return await cancelUpload(ctx, view, r.name, r.id)
  }
  if (r.kind === 'manifest') {
    checkManifestReference(ctx, r.reference)
    const bytes = await readManifestBody(ctx)
    mountFromMembers(ctx, virtual, view, r.name, bytes)
    return await storeManifest(ctx, view, r.name, r.reference, bytes)
  }
  throw new OciError('UNSUPPORTED', `${ctx.method} is not supported here`)
}

/** Links into the target the blobs a manifest pins that another member holds for this image
 *  (answered "exists" to the client's HEAD), so the PUT finds them. Unparseable manifests are
 *  left to storeManifest's own refusal. */
function mountFromMembers (ctx: Context, virtual: VirtualRepository, target: FormatContext, name: string, bytes: Buffer): void {
  let blobs: Array<{ digest: string }>
  try { blobs = parseManifest(bytes, ctx.get('content-type')).blobs } catch { return }
  for (const d of blobs) {
    if (linkedBlob(target, name, d.digest) != null) continue
    for (const m of virtual.members) {
      if (m.name === target.repo.name || !canRead(ctx, m.fc, name)) continue
      let blob
      try { blob = linkedBlob(m.fc, imageIn(m, name), d.digest) } catch { break }
      if (blob != null) { target.blobLinks.link(target.repo.name, name, blob.cid); break }
    }
  }
}
