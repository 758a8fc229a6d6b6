// Generic file paths as stored: the decoded, safe segments a PUT /<repo>/<path> accepts.
import { badRequest } from '../../store/errors.ts'
import type { ArtifactCheck } from '../format.ts'
import { checkStoredPath } from '../http/paths.ts'

/** The format's check of a replicated change (FormatHandler.validateArtifact): a safe path, no
 *  version, and the one file named after the path's last segment, as a PUT stores it. */
export function validateGenericArtifact (a: ArtifactCheck): void {
  checkStoredPath(a.name)
  if (a.version !== '') throw badRequest(`generic files have no versions; got "${a.version}" for ${a.name}`)
  const last = a.name.split('/').pop()
  for (const f of a.files) {
    if (f.filename !== last) throw badRequest(`file "${f.filename}" of ${a.name} must be named ${String(last)}`)
  }
  if (a.tag != null) throw badRequest('generic files have no tags')
}
