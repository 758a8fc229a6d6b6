import { pino, type Logger } from 'pino'

/** JSON lines on stdout; one child logger per component. */
export function createLogger (level: string): Logger {
  return pino({ level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime })
}
