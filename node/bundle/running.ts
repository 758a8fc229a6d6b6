// Is a node running on this data directory? A process with the index open holds a POSIX read
// lock on the WAL index file (`akmesh.db-shm`, SQLite's "DMS" lock) for as long as it is open;
// Linux lists those locks in /proc/locks. `akmesh import` must not write the index under a
// running node (its in-memory caches would go stale and nothing would be gossiped), so it uses
// this to refuse and point at --url instead.
import { readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'

/** PIDs, other than this process, holding a lock on the data directory's index. */
export async function processesHoldingIndex (dataDir: string): Promise<number[]> {
  const shm = await stat(join(dataDir, 'akmesh.db-shm')).catch(() => undefined)
  if (shm == null) return []
  let locks: string
  try { locks = await readFile('/proc/locks', 'utf8') } catch { return [] }
  const pids = new Set<number>()
  for (const line of locks.split('\n')) {
    // "1: POSIX  ADVISORY  READ 1234 fd:01:5678 128 128"
    const m = /^\d+:\s+\S+\s+\S+\s+\S+\s+(\d+)\s+[0-9a-f]+:[0-9a-f]+:(\d+)\s/.exec(line)
    if (m != null && Number(m[2]) === shm.ino && Number(m[1]) !== process.pid) pids.add(Number(m[1]))
  }
  return [...pids]
}
