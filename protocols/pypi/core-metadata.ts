// The core metadata file of a distribution (a wheel's *.dist-info/METADATA, an sdist's PKG-INFO),
// read from the stored blob so it can be served on its own (PEP 658) and checked against the form.
import type { BlobStore } from '../../store/types.ts'
import { badRequest } from '../../store/errors.ts'
import { inspectArchive, type ArchiveFormat, type ArchiveLimits } from '../shared/archive.ts'
import type { DistFilename } from './names.ts'

/** The core metadata bytes of a stored distribution, read through the shared archive reader (so
 *  limits.archive apply to the whole archive); 400 if the archive lacks them. */
export async function extractCoreMetadata (store: BlobStore, cid: string, size: number, dist: DistFilename, filename: string, limits: ArchiveLimits, signal?: AbortSignal): Promise<Buffer> {
  const wheel = dist.packagetype === 'bdist_wheel'
  // PEP 427: the metadata lives in {name}-{version}.dist-info/METADATA, spelled as in the filename.
  const wanted = `${dist.name}-${dist.version}.dist-info/METADATA`
  const pick = wheel ? (n: string) => n === wanted : (n: string) => /^[^/]+\/PKG-INFO$/.test(n)
  const format: ArchiveFormat = wheel || filename.endsWith('.zip') ? 'zip' : 'tar.gz'
  let found = false
  const { extracted } = await inspectArchive({ store, cid, size }, {
    format,
    limits,
    label: `${wheel ? 'wheel' : 'sdist'} ${filename}`,
    signal,
    // Only the first match is read: a second one costs nothing and changes nothing.
    select: (e) => { const hit = !found && pick(e.path); found ||= hit; return hit }
  })
  if (extracted.length === 0) throw badRequest(wheel ? `wheel ${filename} has no ${wanted}` : `sdist ${filename} has no <name>-<version>/PKG-INFO`)
  return extracted[0].bytes
}

/** The header fields of a core metadata file (RFC 822 style: "Key: value", continuation lines
 *  start with whitespace, the body after the first blank line is the description). Keys are
 *  lowercased; repeated keys (Classifier, Requires-Dist) keep every value. */
export function parseCoreMetadata (bytes: Buffer): Map<string, string[]> {
  const headers = new Map<string, string[]>()
  let last: { key: string, index: number } | undefined
  for (const line of bytes.toString('utf8').split(/\r?\n/)) {
    if (line === '') break
    if (/^[ \t]/.test(line) && last != null) {
      const values = headers.get(last.key) as string[]
      values[last.index] += '\n' + line.trim()
      continue
    }
    const colon = line.indexOf(':')
    if (colon <= 0) continue
    const key = line.slice(0, colon).trim().toLowerCase()
    const values = headers.get(key) ?? []
    values.push(line.slice(colon + 1).trim())
    headers.set(key, values)
    last = { key, index: values.length - 1 }
  }
  return headers
}
