// Random input files for the data-path benches, written once and kept under bench/.work (a
// `.part` file renamed into place, so an interrupted write is never taken for a complete one).
import { randomFillSync } from 'node:crypto'
import { once } from 'node:events'
import { createWriteStream, existsSync, mkdirSync, renameSync, statSync } from 'node:fs'
import { dirname } from 'node:path'
import { log } from './stats.ts'

export async function ensureRandomFile (file: string, size: number): Promise<void> {
  if (existsSync(file) && statSync(file).size === size) return
  log(`writing ${size} random bytes to ${file}`)
  mkdirSync(dirname(file), { recursive: true })
  const out = createWriteStream(`${file}.part`)
  const chunk = Buffer.allocUnsafe(16 * 1024 * 1024)
  for (let left = size; left > 0; left -= chunk.length) {
    const piece = left >= chunk.length ? Buffer.from(randomFillSync(chunk)) : randomFillSync(Buffer.allocUnsafe(left))
    if (!out.write(piece)) await once(out, 'drain')
  }
  out.end()
  await once(out, 'finish')
  renameSync(`${file}.part`, file)
}
