// npm registry protocol (placeholder while it is written).
import type { FormatHandler } from '../format.ts'

export const npmFormat: FormatHandler = {
  name: 'npm',
  routes () {}
}
