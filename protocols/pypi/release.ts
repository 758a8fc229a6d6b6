// What a PyPI release keeps in its artifact row. The artifact is (repo, canonical project name,
// normal version); its files are the distributions plus, for each, "<filename>.metadata" (the
// core metadata blob of PEP 658), so replication carries both without knowing about PyPI.
import type { Artifact } from '../../store/types.ts'
import type { PackageType } from './names.ts'

/** PEP 592: a string (possibly empty: no reason given) means yanked. */
export type Yank = string | false

export interface DistFile {
  packagetype: PackageType
  /** The form's pyversion: a wheel's python tag, "source" for an sdist. */
  pythonVersion: string
  requiresPython: string | null
  /** Name of the core metadata file stored beside it, or null if none was extracted. */
  metadataFile: string | null
  uploadedBy: string
  uploadedAt: number
  yanked: Yank
  /** Set on a file a remote repository cached from its upstream. */
  cached?: { upstream: string, fetchedAt: number }
}

export interface ReleaseMetadata {
  /** The project name as first uploaded (display form), and the version as the uploader spelled it. */
  name: string
  version: string
  summary: string | null
  /** Yank of the whole release (PyPI yanks releases); a file is yanked if it or its release is. */
  yanked: Yank
  files: Record<string, DistFile>
}

export const METADATA_SUFFIX = '.metadata'

export const releaseOf = (artifact: Artifact): ReleaseMetadata => artifact.metadata as unknown as ReleaseMetadata

export function effectiveYank (release: ReleaseMetadata, file: DistFile): Yank {
  return file.yanked !== false ? file.yanked : release.yanked
}
