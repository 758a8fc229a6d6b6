// Python packages: the upload API twine speaks and the Simple API pip reads. See README.md.
//   POST /<repo>/  (or /<repo>/legacy/)          upload (multipart, :action=file_upload)
//   GET  /<repo>/simple/                         project list (PEP 503 HTML / PEP 691 JSON)
//   GET  /<repo>/simple/<project>/               files of a project
//   GET  /<repo>/packages/<project>/<file>       a distribution; <file>.metadata its core metadata (PEP 658)
//   POST /<repo>/-/yank/<project>/<version>      yank (PEP 592); /-/unyank/ undoes it
// A remote repository (type: remote) serves its upstream's index and caches its files (./remote.ts).
import type { Context } from 'koa'
import { notFound } from '../../store/errors.ts'
import type { FormatHandler } from '../format.ts'
import { sendBlob } from '../http/blob-response.ts'
import { RenderCache } from '../http/rendered.ts'
import { canonicalName, validatePypiArtifact } from './names.ts'
import { METADATA_SUFFIX } from './release.ts'
import { pypiRemote, remotePypiRoutes } from './remote.ts'
import { projectList, projectPage } from './simple.ts'
import { handleUpload } from './upload.ts'
import { setYank } from './yank.ts'
import { virtualPypiRoutes } from './virtual.ts'

/** An HTTP reason phrase may hold only visible ASCII, spaces and tabs (RFC 9112 §4). */
const reasonPhrase = (message: string) => message.replace(/[^\t\x20-\x7e]/g, '?').slice(0, 300)

export const pypiFormat: FormatHandler = {
  name: 'pypi',
  validateArtifact: validatePypiArtifact,
  remote: pypiRemote,
  virtual: true,

  routes (router, fc) {
    if (fc.virtual != null) { virtualPypiRoutes(router, fc, fc.virtual); return }
    if (fc.remote != null) { remotePypiRoutes(router, fc, fc.remote); return }
    router.post(['/', '/legacy', '/legacy/'], 'write', async (ctx) => { await handleUpload(ctx, fc) })

    const rendered = new RenderCache()
    router.get('/simple', 'read', (ctx) => {
      if (!ctx.path.endsWith('/')) { ctx.redirect(`${fc.baseUrl(ctx)}/simple/`); ctx.status = 301; return }
      projectList(ctx, fc, rendered)
    })
    router.get('/simple/:project', 'read', (ctx) => { projectPage(ctx, fc, rendered, String(ctx.params.project)) })

    router.get('/packages/:project/:filename', 'read', async (ctx: Context) => {
      const project = canonicalName(String(ctx.params.project))
      const filename = String(ctx.params.filename)
      const file = fc.artifacts.fileByName(fc.repo.name, project, filename)
      const blob = file == null ? undefined : await fc.store.locate(file.cid)
      if (blob == null) throw notFound(`no file ${filename} in project ${project}`)
      sendBlob(ctx, fc.store, blob, {
        filename,
        contentType: filename.endsWith(METADATA_SUFFIX) ? 'text/plain; charset=utf-8' : 'application/octet-stream'
      })
    })

    router.post('/-/yank/:project/:version', 'write', async (ctx) => { await setYank(ctx, fc, true) })
    router.post('/-/unyank/:project/:version', 'write', async (ctx) => { await setYank(ctx, fc, false) })
  },

  // twine prints the reason phrase of a failed upload (requests' HTTPError: "409 Client Error:
  // <reason> for url: ..."), which is where PyPI puts its message; the body is for --verbose.
  errorBody (err) {
    return { contentType: 'text/plain; charset=utf-8', body: err.message + '\n', statusMessage: reasonPhrase(err.message) }
  }
}
