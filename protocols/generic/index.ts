// Generic files: any path in a repository, like Artifactory's generic repositories.
//   PUT    /<repo>/<path>   upload (X-Checksum-Sha256/-Sha1/-Md5/-Sha512 are verified first)
//   GET    /<repo>/<path>   download (Range, If-None-Match, checksum headers); HEAD likewise
//   GET    /<repo>/<dir>/   JSON listing of the files under a folder
//   DELETE /<repo>/<path>
// A remote repository (type: remote) serves its upstream's files instead (./remote.ts); a virtual
// one (type: virtual) its members' (./virtual.ts).
import { badRequest, notFound } from '../../store/errors.ts'
import { actorOf, type FormatContext, type FormatHandler } from '../format.ts'
import { validateGenericArtifact } from './names.ts'
import { putFile, sendLocalFile, GENERIC_DIGESTS } from './local-file.ts'
import { filePath } from './request-path.ts'
import { genericRemote, remoteGenericRoutes } from './remote.ts'
import { virtualGenericRoutes } from './virtual.ts'

const VERSION = '' // generic files have a path, not versions

export const genericFormat: FormatHandler = {
  name: 'generic',
  digests: GENERIC_DIGESTS,
  validateArtifact: validateGenericArtifact,
  remote: genericRemote,
  virtual: true,

  routes (router, fc) {
    if (fc.remote != null) { remoteGenericRoutes(router, fc, fc.remote); return }
    if (fc.virtual != null) { virtualGenericRoutes(router, fc, fc.virtual); return }
    router.put('{/*path}', 'write', async (ctx) => {
      const user = actorOf(ctx)
      const { path, folder } = filePath(ctx, fc)
      if (folder || path === '') throw badRequest('PUT needs a file path, not a folder')
      await putFile(ctx, fc, path, user)
    })

    router.get('{/*path}', 'read', async (ctx) => {
      const { path, folder } = filePath(ctx, fc)
      if (folder) {
        ctx.body = { repo: fc.repo.name, path, files: fc.artifacts.listNames(fc.repo.name, path === '' ? '' : path + '/') }
        return
      }
      if (!await sendLocalFile(ctx, fc, path)) throw notFound(`${path} not found in ${fc.repo.name}`)
    })

    router.delete('{/*path}', 'write', async (ctx) => {
      const { path, folder } = filePath(ctx, fc)
      if (folder || path === '') throw badRequest('DELETE needs a file path')
      fc.artifacts.remove(fc.repo.name, path, VERSION)
      ctx.status = 204
    })
  }
}
