// A bundle on disk: one file, or volumes `<file>.001`, `<file>.002`, ... when split for media
// limits (plain byte slices, like split(1): `cat` joins them back into the CAR).
import { open, readdir, stat, type FileHandle } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { badRequest, conflict, integrityError } from '../../store/errors.ts'
import { EarlyFlush } from './early-flush.ts'

export interface Volume { path: string, size: number }

export const volumeName = (base: string, n: number): string => `${base}.${String(n).padStart(3, '0')}`

/** The volumes of a bundle: `path` itself if it exists, else `path.001`, `path.002`, ... (also
 *  when `path` names the first volume). */
export async function findVolumes (path: string): Promise<Volume[]> {
  const base = /\.001$/.test(path) ? path.slice(0, -4) : path
  if (base === path) {
    const s = await stat(path).catch(() => undefined)
    if (s?.isFile() === true) return [{ path, size: s.size }]
  }
  const volumes: Volume[] = []
  for (let n = 1; ; n++) {
    const s = await stat(volumeName(base, n)).catch(() => undefined)
    if (s == null) break
    volumes.push({ path: volumeName(base, n), size: s.size })
  }
  if (volumes.length === 0) throw badRequest(`no bundle at ${path} (nor volumes ${volumeName(base, 1)}, ...)`)
  return volumes
}

/** Files a bundle written to `base` could be: `base` itself and its volumes `base.NNN`. */
export async function bundleFiles (base: string): Promise<string[]> {
  const name = basename(base)
  const names = await readdir(dirname(base)).catch(() => [] as string[])
  return names.filter(n => n === name || (n.startsWith(`${name}.`) && /^\d{3,}$/.test(n.slice(name.length + 1)))).sort().map(n => join(dirname(base), n))
}

const WINDOW = 4 * 1024 * 1024

/** A copy of `bytes` in memory of its own. (Buffer.prototype.slice is a view, not a copy: a
 *  `.slice()` of a window's bytes changes when the window is refilled.) */
export const ownedCopy = (bytes: Uint8Array): Uint8Array => new Uint8Array(bytes)

/** A BytesReader (@ipld/car's decoder interface) over the volumes, by position: `seek` past a
 *  block costs no read, which is how a resumed or repeated import skips blobs it already holds.
 *  Bytes from `upTo` and `exactly` (and CIDs decoded from them) are views of reused windows,
 *  valid until the second refill after: what must live longer comes from `take`. */
export class VolumeReader {
  readonly #volumes: Volume[]
  readonly #handles = new Map<number, FileHandle>()
  readonly total: number
  #pos = 0
  #buf = new Uint8Array(0)
  #bufStart = 0
  // Two windows, used in turn and never freed: a fresh 4 MiB buffer per refill cost seconds of
  // GC per GiB (external-memory pressure), measured with --cpu-prof.
  readonly #windows = [Buffer.allocUnsafeSlow(WINDOW), Buffer.allocUnsafeSlow(WINDOW)]
  #turn = 0

  constructor (volumes: Volume[]) {
    this.#volumes = volumes
    this.total = volumes.reduce((n, v) => n + v.size, 0)
  }

  get pos (): number { return this.#pos }

  /** Appended to "truncated" errors of a split bundle. */
  get hint (): string {
    return this.#volumes.length > 1 || /\.\d{3}$/.test(this.#volumes[0].path) ? ' (is a volume missing?)' : ''
  }

  async upTo (length: number): Promise<Uint8Array> {
    await this.#fill(Math.min(length, this.total - this.#pos))
    const at = this.#pos - this.#bufStart
    return this.#buf.subarray(at, at + Math.min(length, this.total - this.#pos))
  }

  async exactly (length: number, seek = false): Promise<Uint8Array> {
    if (this.#pos + length > this.total) {
      throw integrityError(`bundle truncated: needs ${length} bytes at offset ${this.#pos} but ends at ${this.total}${this.hint}`)
    }
    await this.#fill(length)
    const at = this.#pos - this.#bufStart
    const out = this.#buf.subarray(at, at + length)
    if (seek) this.#pos += length
    return out
  }

  /** The next `length` bytes as an owned copy, consumed. */
  async take (length: number): Promise<Uint8Array> {
    return ownedCopy(await this.exactly(length, true))
  }

  seek (length: number): void { this.#pos += length }

  async close (): Promise<void> {
    for (const h of this.#handles.values()) await h.close()
    this.#handles.clear()
  }

  /** Makes the window hold `length` bytes from the current position. */
  async #fill (length: number): Promise<void> {
    const at = this.#pos - this.#bufStart
    if (at >= 0 && at + length <= this.#buf.byteLength) return
    const keep = at >= 0 && at < this.#buf.byteLength ? this.#buf.subarray(at) : new Uint8Array(0)
    const want = Math.min(Math.max(length, WINDOW), this.total - this.#pos)
    this.#turn = 1 - this.#turn
    const next = want <= WINDOW ? this.#windows[this.#turn].subarray(0, want) : new Uint8Array(want)
    next.set(keep, 0)
    await this.#readAt(this.#pos + keep.byteLength, next.subarray(keep.byteLength))
    this.#buf = next
    this.#bufStart = this.#pos
  }

  async #readAt (position: number, into: Uint8Array): Promise<void> {
    let done = 0
    let volStart = 0
    for (let i = 0; i < this.#volumes.length && done < into.byteLength; i++) {
      const v = this.#volumes[i]
      const p = position + done
      if (p < volStart + v.size) {
        const h = await this.#handle(i)
        const n = Math.min(into.byteLength - done, volStart + v.size - p)
        let got = 0
        while (got < n) {
          const { bytesRead } = await h.read(into, done + got, n - got, p - volStart + got)
          if (bytesRead === 0) throw integrityError(`bundle volume ${v.path} shrank while being read`)
          got += bytesRead
        }
        done += n
      }
      volStart += v.size
    }
  }

  async #handle (i: number): Promise<FileHandle> {
    let h = this.#handles.get(i)
    if (h == null) {
      // Only one volume open at a time: media may be swapped between them.
      for (const [j, other] of this.#handles) { await other.close(); this.#handles.delete(j) }
      h = await open(this.#volumes[i].path, 'r')
      this.#handles.set(i, h)
    }
    return h
  }
}

/** Writes a byte stream to `base`, or to volumes of at most `volumeSize` bytes. Each write has
 *  reached the file (not a stream buffer) when it resolves, so the caller may reuse its buffer.
 *  An existing file is never replaced unless `overwrite`. */
export class VolumeWriter {
  readonly #base: string
  readonly #volumeSize: number | undefined
  readonly #overwrite: boolean
  readonly paths: string[] = []
  #out: FileHandle | undefined
  #flush: EarlyFlush | undefined
  #inVolume = 0
  written = 0

  constructor (base: string, volumeSize?: number, opts: { overwrite?: boolean } = {}) {
    this.#base = base
    this.#volumeSize = volumeSize
    this.#overwrite = opts.overwrite === true
  }

  async write (bytes: Uint8Array): Promise<void> {
    let offset = 0
    while (offset < bytes.byteLength) {
      if (this.#out == null || (this.#volumeSize != null && this.#inVolume === this.#volumeSize)) await this.#next()
      const room = this.#volumeSize == null ? bytes.byteLength - offset : Math.min(this.#volumeSize - this.#inVolume, bytes.byteLength - offset)
      let done = 0
      while (done < room) {
        const { bytesWritten } = await (this.#out as FileHandle).write(bytes, offset + done, room - done)
        done += bytesWritten
      }
      offset += room
      this.#inVolume += room
      this.written += room
      this.#flush?.wrote(room)
    }
  }

  /** Writes several pieces back to back, in one writev where they fit the current volume (a
   *  section head and its chunk: one syscall instead of two). */
  async writev (pieces: Uint8Array[]): Promise<void> {
    const total = pieces.reduce((n, p) => n + p.byteLength, 0)
    if (this.#out == null || (this.#volumeSize != null && this.#inVolume + total > this.#volumeSize)) {
      for (const p of pieces) await this.write(p)
      return
    }
    let { bytesWritten: done } = await this.#out.writev(pieces)
    // A short writev (rare: signals, full disks report an error instead): the rest piece by piece.
    if (done < total) {
      let skip = done
      for (const p of pieces) {
        if (skip >= p.byteLength) { skip -= p.byteLength; continue }
        const rest = p.subarray(skip)
        skip = 0
        let off = 0
        while (off < rest.byteLength) off += (await this.#out.write(rest, off, rest.byteLength - off)).bytesWritten
        done += rest.byteLength
      }
    }
    this.#inVolume += total
    this.written += total
    this.#flush?.wrote(total)
  }

  async #next (): Promise<void> {
    await this.#finishVolume()
    const path = this.#volumeSize == null ? this.#base : volumeName(this.#base, this.paths.length + 1)
    try {
      this.#out = await open(path, this.#overwrite ? 'w' : 'wx')
    } catch (err: any) {
      if (err?.code === 'EEXIST') throw conflict(`${path} already exists: pass --force to overwrite it`)
      throw err
    }
    this.#flush = new EarlyFlush(this.#out)
    this.paths.push(path)
    this.#inVolume = 0
  }

  async #finishVolume (): Promise<void> {
    const out = this.#out
    if (out == null) return
    this.#out = undefined
    const flush = this.#flush
    this.#flush = undefined
    try { await flush?.settle(); await out.sync() } finally { await out.close() }
  }

  /** Fsyncs and closes the last volume (an empty bundle still gets its file). */
  async close (): Promise<void> {
    if (this.#out == null && this.paths.length === 0) await this.#next()
    await this.#finishVolume()
  }

  /** Closes without syncing (the caller removes the files). */
  async abandon (): Promise<void> {
    const out = this.#out
    this.#out = undefined
    await this.#flush?.settle()
    this.#flush = undefined
    await out?.close().catch(() => {})
  }
}
