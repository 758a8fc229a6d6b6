// What a published tarball really contains: its package.json (which must agree with the metadata
// the client sent) and the facts the registry adds to `dist` (fileCount, unpackedSize). Read
// through the shared archive reader, so the limits on unpacking (limits.archive) apply.
import { badRequest } from '../../store/errors.ts'
import { inspectArchive, type ArchiveLimits } from '../shared/archive.ts'
import { isPlainObject } from './body.ts'

export interface TarballFacts {
  manifest: Record<string, unknown>
  fileCount: number
  unpackedSize: number
  hasShrinkwrap: boolean
}

/** Strips the archive's top folder (`package/` by convention; npm strips whatever it is). */
const inPackage = (path: string) => path.replace(/^\.\//, '').replace(/^[^/]+\//, '')

export async function inspectTarball (tgz: Uint8Array, limits: ArchiveLimits, signal?: AbortSignal): Promise<TarballFacts> {
  let hasShrinkwrap = false
  const summary = await inspectArchive({ bytes: tgz }, {
    format: 'tar.gz',
    limits,
    label: 'tarball',
    signal,
    select: (e) => {
      const path = inPackage(e.path)
      if (path === 'npm-shrinkwrap.json') hasShrinkwrap = true
      return path === 'package.json'
    }
  })
  const manifests = summary.extracted
  if (manifests.length === 0) throw badRequest('tarball has no package/package.json')
  // On extraction a later package.json would overwrite an earlier one: refuse the ambiguity.
  if (manifests.length > 1) throw badRequest('tarball has more than one package.json at its top level')
  let manifest: unknown
  try { manifest = JSON.parse(manifests[0].bytes.toString('utf8')) } catch (err) {
    throw badRequest(`tarball's package.json is not valid JSON: ${(err as Error).message}`)
  }
  if (!isPlainObject(manifest)) throw badRequest("tarball's package.json is not a JSON object")
  return { manifest, fileCount: summary.files, unpackedSize: summary.unpackedBytes, hasShrinkwrap }
}
