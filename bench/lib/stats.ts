// Small numeric helpers for the benchmark reports.

export function median (xs: number[]): number {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

/** Milliseconds elapsed while fn runs. */
export async function timeMs<T> (fn: () => Promise<T>): Promise<{ ms: number, value: T }> {
  const t0 = process.hrtime.bigint()
  const value = await fn()
  return { ms: Number(process.hrtime.bigint() - t0) / 1e6, value }
}

export function fmt (n: number, digits = 2): string {
  return Number.isFinite(n) ? n.toFixed(digits) : String(n)
}

export function ratio (a: number, b: number): string {
  return b === 0 ? 'n/a' : (a / b).toFixed(3)
}

export function mib (bytes: number): string { return `${(bytes / 1024 / 1024).toFixed(1)} MiB` }

/** Prints an aligned table: first row is the header. */
export function table (rows: string[][]): void {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map(r => (r[i] ?? '').length)))
  for (const [n, r] of rows.entries()) {
    console.log(r.map((c, i) => i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)).join('  '))
    if (n === 0) console.log(widths.map(w => '-'.repeat(w)).join('  '))
  }
}

export function log (msg: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`)
}
