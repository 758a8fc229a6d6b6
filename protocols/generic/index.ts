// Generic files: any path in a repository, like Artifactory's generic repositories.
//   PUT    /<repo>/<path>   upload (X-Checksum-Sha256/-Sha1/-Md5/-Sha512 are verified first)
//   GET    /<repo>/<path>   download (Range, If-None-Match, checksum headers); HEAD likewise
//   GET    /<repo>/<dir>/   JSON listing of the files under a folder
//   DELETE /<repo>/<path>
// A remote repository (type: remote) serves its upstream's files instead (./remote.ts).
import { badRequest, notFound } from '../../store/errors.ts'
import { actorOf, type FormatContext, type FormatHandler } from '../format.ts'
import { requestAbortSignal, sendBlob } from '../http/blob-response.ts'
import { requestBody } from '../http/request-body.ts'
import { refuseDeclaredOver } from '../http/body-limit.ts'
import { encodePath } from '../http/encode.ts'
import { validateGenericArtifact } from './names.ts'
import { expectedChecksums, filePath } from './request-path.ts'
import { genericRemote, remoteGenericRoutes } from './remote.ts'

const VERSION = '' // generic files have a path, not versions

export const genericFormat: FormatHandler = {
  name: 'generic',
  validateArtifact: validateGenericArtifact,
  remote: genericRemote,

  routes (router, fc) {
    if (fc.remote != null) { remoteGenericRoutes(router, fc, fc.remote); return }
    router.put('{/*path}', 'write', async (ctx) => {
      const user = actorOf(ctx)
      const { path, folder } = filePath(ctx, fc)
      if (folder || path === '') throw badRequest('PUT needs a file path, not a folder')
      refuseDeclaredOver(ctx, fc.limits.uploadBytes)
      // Everything the answer is built from is ready before anything is stored or published: a
      // response that fails after the publish would tell the client "failed" about a file that
      // every peer already has.
      const url = `${fc.baseUrl(ctx)}/${encodePath(path)}`
      const blob = await fc.store.put(requestBody(ctx), {
        expect: expectedChecksums(ctx),
        maxBytes: fc.limits.uploadBytes,
        signal: requestAbortSignal(ctx)
      })
      const contentType = ctx.get('content-type')
      const existed = fc.artifacts.get(fc.repo.name, path, VERSION) != null
      fc.artifacts.publish({
        repo: fc.repo.name,
        name: path,
        version: VERSION,
        files: [{ filename: path.split('/').pop() as string, cid: blob.cid }],
        metadata: {
          contentType: contentType === '' || contentType.startsWith('application/x-www-form-urlencoded') ? null : contentType,
          uploadedBy: user
        }
      }, { replace: true })
      ctx.status = existed ? 200 : 201
      ctx.set('Location', url)
      ctx.body = {
        repo: fc.repo.name,
        path,
        size: blob.size,
        cid: blob.cid,
        checksums: { sha256: blob.sha256, sha1: blob.sha1, sha512: blob.sha512, md5: blob.md5 },
        downloadUri: url
      }
    })

    router.get('{/*path}', 'read', async (ctx) => {
      const { path, folder } = filePath(ctx, fc)
      if (folder) {
        ctx.body = { repo: fc.repo.name, path, files: fc.artifacts.listNames(fc.repo.name, path === '' ? '' : path + '/') }
        return
      }
      const artifact = fc.artifacts.get(fc.repo.name, path, VERSION)
      if (artifact == null || artifact.files.length === 0) throw notFound(`${path} not found in ${fc.repo.name}`)
      const [file] = fc.artifacts.filesWithBlobs(artifact)
      sendBlob(ctx, fc.store, (await fc.store.locate(file.cid)) ?? file.blob, {
        contentType: (artifact.metadata.contentType as string | null) ?? undefined,
        filename: file.filename,
        lastModified: artifact.updatedAt
      })
    })

    router.delete('{/*path}', 'write', async (ctx) => {
      const { path, folder } = filePath(ctx, fc)
      if (folder || path === '') throw badRequest('DELETE needs a file path')
      fc.artifacts.remove(fc.repo.name, path, VERSION)
      ctx.status = 204
    })
  }
}
