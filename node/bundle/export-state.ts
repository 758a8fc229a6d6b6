// Per destination, what the last export to it covered: `<data>/bundle-exports.json`, replaced
// atomically after each export (a crash keeps the previous state, so the next incremental export
// repeats rather than skips). A JSON file, not a table: it is an operator's record, not the index.
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { writeFileAtomic } from '../../config/atomic-file.ts'

export const EXPORT_STATE_FILE = 'bundle-exports.json'

export interface DestinationState {
  /** Per origin, the manifest-log watermark when the export was selected. */
  watermarks: Record<string, number>
  /** The repository filter of that export (an incremental export must use the same). */
  repos: string[] | null
  /** The origin filter of that export (absent in records written before --origin). */
  origins?: string[] | null
  exportedAt: number
  bundle: string
}

type ExportState = Record<string, DestinationState>

export async function readExportState (dataDir: string): Promise<ExportState> {
  try {
    return JSON.parse(await readFile(join(dataDir, EXPORT_STATE_FILE), 'utf8')) as ExportState
  } catch (err: any) {
    if (err?.code === 'ENOENT') return {}
    throw new Error(`${join(dataDir, EXPORT_STATE_FILE)}: unreadable (${err?.message}); move it away to start over with a full export`)
  }
}

export async function recordExport (dataDir: string, destination: string, state: DestinationState): Promise<void> {
  const all = await readExportState(dataDir)
  all[destination] = state
  await writeFileAtomic(join(dataDir, EXPORT_STATE_FILE), JSON.stringify(all, null, 2) + '\n')
}
