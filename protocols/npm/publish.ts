// Publishing one version: validate the body, check the tarball agrees with it, store the bytes
// (digests verified by the store), then record the version and its dist-tags in one transaction.
import { forbidden, badRequest, RegistryError } from '../../store/errors.ts'
import type { BlobInfo } from '../../store/types.ts'
import type { FormatContext } from '../format.ts'
import { requestAbortSignal } from '../http/blob-response.ts'
import type { Context } from 'koa'
import { tarballFilename } from './names.ts'
import { parsePublishRequest, type PublishRequest } from './publish-request.ts'
import { inspectTarball, type TarballFacts } from './tarball.ts'
import { isPlainObject } from './body.ts'

/** npm's dist fields: shasum (sha1) and integrity (sha512). */
export const NPM_DIGESTS = ['sha512', 'sha1'] as const

const INSTALL_SCRIPTS = ['preinstall', 'install', 'postinstall']

/** npm registry's own wording, which people search for. */
const publishedBefore = (version: string) => `You cannot publish over the previously published versions: ${version}.`

function refuseExisting (fc: FormatContext, name: string, version: string): void {
  if (fc.artifacts.get(fc.repo.name, name, version) != null) throw forbidden(publishedBefore(version))
  if (fc.artifacts.isTombstoned(fc.repo.name, name, version)) {
    throw forbidden(`${publishedBefore(version)} ${name}@${version} was unpublished; a version number can never be reused.`)
  }
}

function versionMetadata (req: PublishRequest, facts: TarballFacts, blob: BlobInfo, user: string): Record<string, unknown> {
  const { tarball: _url, ...dist } = req.manifest.dist as Record<string, unknown>
  const scripts = isPlainObject(req.manifest.scripts) ? req.manifest.scripts : {}
  const metadata: Record<string, unknown> = {
    ...req.manifest,
    _id: `${req.name}@${req.version}`,
    _npmUser: { name: user, email: '' }, // no e-mail is known; '' keeps npm view from printing "undefined"
    dist: {
      ...dist,
      shasum: blob.sha1,
      integrity: `sha512-${Buffer.from(blob.sha512, 'hex').toString('base64')}`,
      fileCount: facts.fileCount,
      unpackedSize: facts.unpackedSize
    }
  }
  if (metadata.maintainers === undefined) metadata.maintainers = [{ name: user, email: '' }]
  if (facts.hasShrinkwrap) metadata._hasShrinkwrap = true
  if (INSTALL_SCRIPTS.some(s => typeof scripts[s] === 'string')) metadata.hasInstallScript = true
  return metadata
}

/** Handles PUT /<name> with `_attachments`. Resolves once the version is visible. */
export async function publishVersion (ctx: Context, fc: FormatContext, urlName: string, body: Record<string, unknown>, user: string): Promise<{ name: string, version: string }> {
  const req = parsePublishRequest(urlName, body)
  const { name, version } = req
  refuseExisting(fc, name, version)

  const signal = requestAbortSignal(ctx)
  const facts = await inspectTarball(req.tarball, fc.limits.archive, signal)
  if (facts.manifest.name !== name || facts.manifest.version !== version) {
    throw badRequest(`the tarball's package.json is ${JSON.stringify(facts.manifest.name)}@${JSON.stringify(facts.manifest.version)}, but the metadata publishes ${name}@${version}`)
  }

  const stored = await fc.store.put((async function * () { yield req.tarball })(), {
    expect: { ...req.expect, size: req.tarball.length },
    maxBytes: fc.limits.metadataBytes,
    digests: NPM_DIGESTS,
    signal
  })
  // The dist fields need sha512 and sha1: present unless the same bytes were stored by a format
  // that skips them and the row kept that (then they are computed now, once).
  const blob = await fc.store.completeDigests(stored.cid, NPM_DIGESTS)

  fc.artifacts.atomically(() => {
    try {
      fc.artifacts.publish({
        repo: fc.repo.name,
        name,
        version,
        files: [{ filename: tarballFilename(name, version), cid: blob.cid }],
        metadata: versionMetadata(req, facts, blob, user)
      }, { refuseTombstoned: true })
    } catch (err) {
      // A concurrent publish of the same version won the race.
      if (err instanceof RegistryError && err.code === 'Conflict') throw forbidden(publishedBefore(version))
      throw err
    }
    for (const tag of req.tags) fc.artifacts.setTag(fc.repo.name, name, tag, version)
    // Like registry.npmjs.org: a package always has `latest`, even if first published under --tag.
    if (fc.artifacts.tags(fc.repo.name, name).latest == null) fc.artifacts.setTag(fc.repo.name, name, 'latest', version)
  })
  fc.log.info({ name, version, cid: blob.cid, user }, 'published')
  return { name, version }
}
