// What a published tarball really contains: its package.json (which must agree with the metadata
// the client sent) and the facts the registry adds to `dist` (fileCount, unpackedSize).
import { Parser, type ReadEntry } from 'tar'
import { badRequest } from '../../store/errors.ts'
import { isPlainObject } from './body.ts'

const MAX_MANIFEST_BYTES = 16 * 1024 * 1024
/** Fed to the parser in slices so a broken archive stops the work early. */
const SLICE = 256 * 1024

export interface TarballFacts {
  manifest: Record<string, unknown>
  fileCount: number
  unpackedSize: number
  hasShrinkwrap: boolean
}

/** Strips the archive's top folder (`package/` by convention; npm strips whatever it is). */
const inPackage = (path: string) => path.replace(/^\.\//, '').replace(/^[^/]+\//, '')

export async function inspectTarball (tgz: Buffer): Promise<TarballFacts> {
  const manifests: string[] = []
  let fileCount = 0
  let unpackedSize = 0
  let hasShrinkwrap = false
  let failure: Error | undefined

  const readEntry = (entry: ReadEntry): void => {
    if (entry.type !== 'File' && entry.type !== 'OldFile') return
    fileCount++
    unpackedSize += entry.size
    const path = inPackage(entry.path)
    if (path === 'npm-shrinkwrap.json') hasShrinkwrap = true
    if (path !== 'package.json') return
    if (entry.size > MAX_MANIFEST_BYTES) {
      failure ??= badRequest(`tarball's package.json is larger than ${MAX_MANIFEST_BYTES} bytes`)
      return
    }
    const pieces: Buffer[] = []
    entry.on('data', (b: Buffer) => pieces.push(b))
    entry.on('end', () => manifests.push(Buffer.concat(pieces).toString('utf8')))
  }
  const parser = new Parser({
    strict: true,
    onReadEntry: (entry: ReadEntry) => {
      readEntry(entry)
      entry.resume() // the parser waits until every entry's body is consumed
    }
  })
  const done = new Promise<void>((resolve) => {
    parser.on('error', (err: Error) => { failure ??= badRequest(`tarball is not a valid gzipped tar archive: ${err.message}`); resolve() })
    parser.on('abort', (err: Error) => { failure ??= badRequest(`tarball rejected: ${err.message}`); resolve() })
    parser.on('end', () => resolve())
  })
  for (let at = 0; at < tgz.length && failure == null; at += SLICE) parser.write(tgz.subarray(at, at + SLICE))
  parser.end()
  await done
  if (failure != null) throw failure

  if (manifests.length === 0) throw badRequest('tarball has no package/package.json')
  // On extraction a later package.json would overwrite an earlier one: refuse the ambiguity.
  if (manifests.length > 1) throw badRequest('tarball has more than one package.json at its top level')
  let manifest: unknown
  try { manifest = JSON.parse(manifests[0]) } catch (err) {
    throw badRequest(`tarball's package.json is not valid JSON: ${(err as Error).message}`)
  }
  if (!isPlainObject(manifest)) throw badRequest("tarball's package.json is not a JSON object")
  return { manifest, fileCount, unpackedSize, hasShrinkwrap }
}
