// The legacy upload API (https://docs.pypi.org/api/upload/) as twine, flit, poetry and uv send it:
// POST multipart/form-data with ":action=file_upload", the metadata fields, then the "content" part.
import { Readable } from 'node:stream'
import { createBLAKE2b } from 'hash-wasm'
import type { Context } from 'koa'
import { badRequest, conflict, integrityError, isRegistryError } from '../../store/errors.ts'
import type { BlobInfo, DigestName } from '../../store/types.ts'
import { actorOf, type FormatContext } from '../format.ts'
import { requestAbortSignal } from '../http/blob-response.ts'
import { refuseDeclaredOver } from '../http/body-limit.ts'
import { extractCoreMetadata, parseCoreMetadata } from './core-metadata.ts'
import { readUploadForm, type UploadFields } from './multipart.ts'
import { canonicalName, isValidProjectName, normalVersion, parseDistFilename, type DistFilename } from './names.ts'
import { METADATA_SUFFIX, type ReleaseMetadata } from './release.ts'

interface UploadPlan {
  project: string          // canonical name: the artifact's name
  displayName: string
  version: string          // normal form: the artifact's version
  givenVersion: string
  filename: string
  dist: DistFilename
  blake2?: string
}

const DIGEST_FIELDS: Array<[DigestName | 'blake2', string, number]> = [
  ['sha256', 'sha256_digest', 64],
  ['md5', 'md5_digest', 32],
  ['blake2', 'blake2_256_digest', 64]
]

function declaredDigests (fields: UploadFields): Partial<Record<DigestName | 'blake2', string>> {
  const digests: Partial<Record<DigestName | 'blake2', string>> = {}
  for (const [name, field, hexLength] of DIGEST_FIELDS) {
    const value = fields.get(field)
    if (value == null) continue
    if (!new RegExp(`^[0-9a-fA-F]{${hexLength}}$`).test(value)) throw badRequest(`${field} must be ${hexLength} hex characters`)
    digests[name] = value.toLowerCase()
  }
  return digests
}

const fileExists = (filename: string) =>
  conflict(`File already exists: ${filename}. A file, once uploaded, cannot be replaced; upload a new version`)

/** Checks everything that can be checked before a byte of the file is read. */
function planUpload (fc: FormatContext, fields: UploadFields, filename: string): UploadPlan {
  const action = fields.get(':action')
  if (action == null && fields.get('name') == null) {
    throw badRequest('the metadata fields (:action, name, version, filetype, digests) must come before the content part')
  }
  if (action !== 'file_upload') throw badRequest(`unsupported :action ${JSON.stringify(action ?? null)}; only "file_upload" is supported`)
  const protocol = fields.get('protocol_version')
  if (protocol != null && protocol !== '1') throw badRequest(`unsupported protocol_version ${protocol}`)
  const name = fields.get('name')
  const givenVersion = fields.get('version')
  const filetype = fields.get('filetype')
  if (name == null || givenVersion == null || filetype == null) {
    throw badRequest('the name, version and filetype fields are required (and must come before the content part)')
  }
  if (!isValidProjectName(name)) throw badRequest(`invalid project name "${name}" (PEP 508: letters, digits, "-", "_", ".")`)
  const version = normalVersion(givenVersion)
  if (version == null) throw badRequest(`invalid version "${givenVersion}" (not a PEP 440 version)`)
  if (filetype !== 'bdist_wheel' && filetype !== 'sdist') {
    throw badRequest(`unsupported filetype "${filetype}": only wheels (bdist_wheel) and sdists are accepted`)
  }
  const dist = parseDistFilename(filename, name, givenVersion)
  if (dist.packagetype !== filetype) throw badRequest(`filetype ${filetype} does not match the filename ${filename}`)
  const digests = declaredDigests(fields)
  if (digests.sha256 == null && digests.md5 == null && digests.blake2 == null) {
    throw badRequest('the upload declares no digest: send sha256_digest (or md5_digest, blake2_256_digest)')
  }
  const project = canonicalName(name)
  if (fc.artifacts.fileByName(fc.repo.name, project, filename) != null) throw fileExists(filename)
  return { project, displayName: name, version, givenVersion, filename, dist, blake2: digests.blake2 }
}

/** The file part, hashed with BLAKE2b-256 on the way (the store does not compute it) when the
 *  client declared one: a mismatch throws inside the store's read loop, so nothing is stored.
 *  Never destroys the part: what the store leaves unread is drained by the form reader. */
async function * checkedBlake2 (stream: Readable, expected: string | undefined): AsyncGenerator<Uint8Array> {
  const hasher = expected == null ? undefined : await createBLAKE2b(256)
  for await (const piece of stream.iterator({ destroyOnReturn: false })) {
    hasher?.update(piece)
    yield piece
  }
  const computed = hasher?.digest('hex')
  if (computed !== expected) throw integrityError(`blake2_256 mismatch: expected ${expected}, computed ${computed}`)
}

/** Digest fields that arrived after the content part could not be checked while streaming. */
function checkLateDigests (fields: UploadFields, blob: BlobInfo): void {
  const digests = declaredDigests(fields)
  if (digests.sha256 != null && digests.sha256 !== blob.sha256) throw integrityError(`sha256 mismatch: expected ${digests.sha256}, computed ${blob.sha256}`)
  if (digests.md5 != null && blob.md5 != null && digests.md5 !== blob.md5) throw integrityError(`md5 mismatch: expected ${digests.md5}, computed ${blob.md5}`)
}

export async function handleUpload (ctx: Context, fc: FormatContext): Promise<void> {
  const user = actorOf(ctx)
  refuseDeclaredOver(ctx, fc.limits.uploadBytes)
  const signal = requestAbortSignal(ctx)
  const { fields, content: { plan, blob } } = await readUploadForm(ctx, async (fields, filename, stream) => {
    const plan = planUpload(fc, fields, filename)
    const { sha256, md5 } = declaredDigests(fields)
    const blob = await fc.store.put(checkedBlake2(stream, plan.blake2), {
      expect: { sha256, md5 },
      md5: md5 != null,
      maxBytes: fc.limits.uploadBytes,
      signal
    })
    return { plan, blob }
  })
  checkLateDigests(fields, blob)

  const metadataBytes = await extractCoreMetadata(fc.store, blob.cid, blob.size, plan.dist, plan.filename, fc.limits.archive, signal)
  const core = parseCoreMetadata(metadataBytes)
  const coreName = core.get('name')?.[0]
  const coreVersion = core.get('version')?.[0]
  if (coreName == null || canonicalName(coreName) !== plan.project) {
    throw badRequest(`the metadata inside ${plan.filename} names project "${coreName ?? ''}", the upload "${plan.displayName}"`)
  }
  if (coreVersion == null || normalVersion(coreVersion) !== plan.version) {
    throw badRequest(`the metadata inside ${plan.filename} says version "${coreVersion ?? ''}", the upload "${plan.givenVersion}"`)
  }
  const metadataBlob = await fc.store.put(Readable.from([metadataBytes]), { signal })
  const requiresPython = core.get('requires-python')?.[0] ?? fields.get('requires_python') ?? null
  const summary = core.get('summary')?.[0] ?? fields.get('summary') ?? null
  const metadataFile = plan.filename + METADATA_SUFFIX

  try {
    fc.artifacts.addFiles(fc.repo.name, plan.project, plan.version,
      [{ filename: plan.filename, cid: blob.cid }, { filename: metadataFile, cid: metadataBlob.cid }],
      (current) => {
        const release: ReleaseMetadata = (current as unknown as ReleaseMetadata | undefined) ??
          { name: plan.displayName, version: plan.givenVersion, summary, yanked: false, files: {} }
        release.files[plan.filename] = {
          packagetype: plan.dist.packagetype,
          pythonVersion: fields.get('pyversion') ?? (plan.dist.packagetype === 'sdist' ? 'source' : 'unknown'),
          requiresPython: requiresPython === '' ? null : requiresPython,
          metadataFile,
          uploadedBy: user,
          uploadedAt: Date.now(),
          yanked: false
        }
        return release as unknown as Record<string, unknown>
      })
  } catch (err) {
    // Another upload of the same file won the race since planUpload looked.
    if (isRegistryError(err) && err.code === 'Conflict') throw fileExists(plan.filename)
    throw err
  }
  fc.log.info({ project: plan.project, version: plan.version, filename: plan.filename, cid: blob.cid, user }, 'pypi upload')
  ctx.status = 200
  ctx.body = {
    project: plan.project,
    version: plan.version,
    filename: plan.filename,
    url: `${fc.baseUrl(ctx)}/packages/${plan.project}/${plan.filename}`,
    sha256: blob.sha256,
    cid: blob.cid
  }
}
