// The npm registry protocol, as npm 11, yarn 1 and pnpm speak it.
//   GET    /<name>                       packument (abbreviated for Accept: application/vnd.npm.install-v1+json)
//   GET    /<name>/<version|tag|range>   one version document
//   GET    /<name>/-/<name>-<v>.tgz      tarball (scoped: /@scope/name/-/name-<v>.tgz)
//   PUT    /<name>                       publish (with _attachments) or deprecate
//   PUT    /<name>/-rev/<rev>            packument update (unpublish of a version)
//   DELETE /<name>/-rev/<rev>            unpublish the package; /<name>/-/<file>/-rev/<rev> a tarball
//   /-/package/<name>/dist-tags[/<tag>], /-/user/org.couchdb.user:<name>, /-/whoami, /-/ping,
//   /-/v1/search
// A remote repository (type: remote) serves its upstream's packages instead (remote-routes.ts).
// Routes under /-/ are registered first: they must win over the package catch-all.
import { notFound } from '../../store/errors.ts'
import type { FormatHandler } from '../format.ts'
import { NPM_DIGESTS } from './publish.ts'
import { packageRoutes } from './package-routes.ts'
import { searchRoutes } from './search.ts'
import { distTagRoutes } from './tags.ts'
import { userRoutes } from './user-routes.ts'
import { validateNpmArtifact } from './names.ts'
import { npmRemote, remoteDistTagRoutes, remotePackageRoutes } from './remote-routes.ts'
import { virtualNpmRoutes } from './virtual.ts'

export const npmFormat: FormatHandler = {
  name: 'npm',
  digests: NPM_DIGESTS,
  validateArtifact: validateNpmArtifact,
  remote: npmRemote,
  virtual: true,

  routes (router, fc) {
    if (fc.virtual != null) { virtualNpmRoutes(router, fc, fc.virtual); return }
    userRoutes(router, fc)
    searchRoutes(router, fc) // on a remote repository: what is cached
    if (fc.remote != null) remoteDistTagRoutes(router, fc, fc.remote)
    else distTagRoutes(router, fc)
    router.all('/-/*rest', 'public', (ctx) => { throw notFound(`no such registry endpoint: ${ctx.method} ${ctx.path}`) })
    if (fc.remote != null) remotePackageRoutes(router, fc, fc.remote)
    else packageRoutes(router, fc)
  },

  // npm-registry-fetch shows `error` to the user (errors.js: HttpErrorGeneral).
  errorBody (err) {
    return { contentType: 'application/json', body: JSON.stringify({ error: err.message }) }
  }
}
