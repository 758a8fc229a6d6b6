// Crash-safe file replacement: a reader (or a crash) sees the old file or the new one, never half.
import { randomBytes } from 'node:crypto'
import { open, rename, rm } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'

/** Writes `data` to a unique temp file beside `file`, fsyncs it, renames it over `file` and
 *  fsyncs the directory so the rename itself survives a power cut. */
export async function writeFileAtomic (file: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  const dir = dirname(file)
  const temp = join(dir, `.${basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`)
  const fh = await open(temp, 'wx', mode)
  try {
    await fh.writeFile(data)
    await fh.chmod(mode) // the umask may have narrowed or widened what open() asked for
    await fh.sync()
  } catch (err) {
    await fh.close()
    await rm(temp, { force: true })
    throw err
  }
  await fh.close()
  try {
    await rename(temp, file)
  } catch (err) {
    await rm(temp, { force: true })
    throw err
  }
  const dh = await open(dir, 'r')
  try { await dh.sync() } finally { await dh.close() }
}
