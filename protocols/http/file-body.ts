// Sends a byte range of a local file as a response body, bypassing Koa's stream piping: 1 MiB
// reads into two buffers that are reused (a read fills one while the socket drains the other), so
// a 1 GiB download allocates 2 MiB instead of 4096 stream chunks the garbage collector must chase.
import type { ServerResponse } from 'node:http'
import { close, read } from 'node:fs'
import { promisify } from 'node:util'

const readFd = promisify(read)
const closeFd = promisify(close)

const BLOCK = 1024 * 1024

/** Writes bytes [start, end] (inclusive) of the open file `fd` to `res`, then ends it; closes `fd`.
 *  Headers must be set already. A client that goes away stops the loop; a read error destroys
 *  the response (the status is already sent, so only a cut connection can say it failed). */
export async function sendFileRange (res: ServerResponse, fd: number, start: number, end: number): Promise<void> {
  if (end + 1 - start <= BLOCK) { await sendSmall(res, fd, start, end); return }
  const buffers = [Buffer.allocUnsafeSlow(BLOCK), Buffer.allocUnsafeSlow(BLOCK)]
  let gone = false
  const releases = new Set<() => void>()
  const onClose = () => { gone = true; for (const r of releases) r() }
  res.once('close', onClose)
  // Resolves when the socket wants more (drain) or can take no more (close).
  const writable = async (): Promise<void> => await new Promise(resolve => {
    const done = () => { res.off('drain', done); res.off('close', done); resolve() }
    res.once('drain', done)
    res.once('close', done)
  })
  const readAt = async (buf: Buffer, pos: number): Promise<number> => {
    const want = Math.min(BLOCK, end + 1 - pos)
    if (want <= 0 || gone) return 0
    const { bytesRead } = await readFd(fd, buf, 0, want, pos)
    if (bytesRead === 0) throw new Error(`file ended at byte ${pos}, before byte ${end}`)
    return bytesRead
  }
  // Per buffer, settled once the socket no longer holds it (the write callback): only then may
  // a read refill it.
  const released: Array<Promise<void>> = [Promise.resolve(), Promise.resolve()]
  const refill = async (turn: number, pos: number): Promise<number> => { await released[turn]; return await readAt(buffers[turn], pos) }
  try {
    let pos = start
    let turn = 0
    let next = refill(0, pos)
    while (!gone) {
      const n = await next
      if (n === 0) break
      const buf = buffers[turn]
      pos += n
      let ok = true
      released[turn] = new Promise<void>(resolve => {
        const release = () => { releases.delete(release); resolve() }
        releases.add(release)
        ok = res.write(n === BLOCK ? buf : buf.subarray(0, n), release)
      })
      turn ^= 1
      next = refill(turn, pos) // overlaps the socket draining the buffer just written
      if (!ok && !gone) await writable()
    }
    await next.catch(() => 0) // no read in flight when the descriptor closes
    if (!gone) res.end()
  } catch (err) {
    res.destroy(err as Error)
  } finally {
    res.off('close', onClose)
    await closeFd(fd).catch(() => {})
  }
}

/** A range of one block or less (most npm tarballs, packages of a few KiB): one buffer of its own
 *  size and one read, sent with the end of the response. Two 1 MiB buffers per tiny tarball were
 *  most of an install's garbage collection (bench/README.md, "npm-install"). */
async function sendSmall (res: ServerResponse, fd: number, start: number, end: number): Promise<void> {
  try {
    const want = end + 1 - start
    const buf = Buffer.allocUnsafe(want)
    let got = 0
    while (got < want) {
      const { bytesRead } = await readFd(fd, buf, got, want - got, start + got)
      if (bytesRead === 0) throw new Error(`file ended at byte ${start + got}, before byte ${end}`)
      got += bytesRead
    }
    if (!res.destroyed) res.end(buf)
  } catch (err) {
    res.destroy(err as Error)
  } finally {
    await closeFd(fd).catch(() => {})
  }
}
