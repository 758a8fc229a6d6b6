// A one-line progress bar on stderr (bytes, rate, ETA), redrawn at most 5 times a second, only on
// a terminal: logs and tests get the summary line the command prints at the end instead.
import bytes from 'bytes'

const fmt = (n: number): string => bytes.format(n, { decimalPlaces: 1, unitSeparator: ' ' }) ?? String(n)

export class Progress {
  readonly #label: string
  readonly #total: number
  readonly #out: NodeJS.WriteStream | undefined
  readonly #started = performance.now()
  #done = 0
  #drawn = performance.now() // first draw after 200 ms: an instant rate says nothing

  constructor (label: string, total: number, opts: { enabled?: boolean } = {}) {
    this.#label = label
    this.#total = total
    const enabled = opts.enabled ?? process.stderr.isTTY === true
    this.#out = enabled ? process.stderr : undefined
  }

  get done (): number { return this.#done }
  /** Seconds since the start. */
  get elapsed (): number { return (performance.now() - this.#started) / 1000 }

  add (n: number): void {
    this.#done += n
    const now = performance.now()
    if (this.#out != null && now - this.#drawn > 200) { this.#drawn = now; this.#draw() }
  }

  #draw (): void {
    const rate = this.#done / Math.max(this.elapsed, 1e-3)
    const pct = this.#total > 0 ? Math.min(100, Math.floor(this.#done / this.#total * 100)) : 100
    const eta = rate > 0 ? Math.ceil((this.#total - this.#done) / rate) : 0
    const width = 24
    const bar = '#'.repeat(Math.round(pct / 100 * width)).padEnd(width, '.')
    this.#out?.write(`\r${this.#label} [${bar}] ${pct}% ${fmt(this.#done)}/${fmt(this.#total)} ${fmt(rate)}/s ETA ${eta}s\x1b[K`)
  }

  finish (): void {
    if (this.#out != null) { this.#draw(); this.#out.write('\n') }
  }

  /** "1.2 GB in 3.4 s (350 MB/s)" */
  summary (): string {
    return `${fmt(this.#done)} in ${this.elapsed.toFixed(1)} s (${fmt(this.#done / Math.max(this.elapsed, 1e-3))}/s)`
  }
}
