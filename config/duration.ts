// Durations in the config (30s, 15m, 6h, 1d), validated to milliseconds.
import { z } from 'zod'

export const MAX_TIMER_MS = 2 ** 31 - 1 // Node timers cannot wait longer (a longer one fires at once)
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }
const DURATION = 'a duration such as 30s, 15m, 6h or 1d'

/** A duration (30s, 15m, 6h, 1d) in milliseconds; with `off`, also `off` (null). */
export const duration = (opts: { off?: boolean, min?: number, max?: number } = {}) => {
  const want = opts.off === true ? `off or ${DURATION}` : DURATION
  return z.string({ error: `expected ${want}` }).transform((v, ctx): number | null => {
    if (opts.off === true && v.trim() === 'off') return null
    const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/.exec(v.trim())
    const ms = m == null ? NaN : Math.round(Number(m[1]) * UNIT_MS[m[2]])
    if (!(ms >= (opts.min ?? 0) && ms <= (opts.max ?? Infinity))) {
      ctx.addIssue({ code: 'custom', message: `expected ${want}${opts.max != null ? ` (1s to ${Math.floor(opts.max / UNIT_MS.d)}d)` : ''}, got ${JSON.stringify(v)}` })
      return z.NEVER
    }
    return ms
  })
}

/** A duration that cannot be `off`, typed as a number. */
export const millis = (opts: { min?: number, max?: number } = {}) => duration(opts).transform(v => v as number)
