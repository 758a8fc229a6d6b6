// What a generic request names: the file path below the repository, and the checksums declared.
import type { Context } from 'koa'
import { badRequest } from '../../store/errors.ts'
import type { DigestName } from '../../store/types.ts'
import type { FormatContext } from '../format.ts'
import { safePathSegments } from '../http/paths.ts'

export const CHECKSUM_HEADERS: Array<[DigestName, string, number]> = [
  ['sha256', 'x-checksum-sha256', 64],
  ['sha1', 'x-checksum-sha1', 40],
  ['md5', 'x-checksum-md5', 32],
  ['sha512', 'x-checksum-sha512', 128]
]

export function expectedChecksums (ctx: Context): Partial<Record<DigestName, string>> {
  const expect: Partial<Record<DigestName, string>> = {}
  for (const [name, header, hexLength] of CHECKSUM_HEADERS) {
    const value = ctx.get(header)
    if (value === '') continue
    if (!new RegExp(`^[0-9a-fA-F]{${hexLength}}$`).test(value)) {
      throw badRequest(`${header} must be ${hexLength} hex characters`)
    }
    expect[name] = value.toLowerCase()
  }
  return expect
}

export function filePath (ctx: Context, fc: FormatContext): { path: string, folder: boolean } {
  const rest = ctx.path.slice(fc.repo.name.length + 2) // strip "/<repo>/"
  const folder = rest === '' || rest.endsWith('/')
  const trimmed = folder ? rest.replace(/\/$/, '') : rest
  return { path: trimmed === '' ? '' : safePathSegments(trimmed).join('/'), folder }
}
