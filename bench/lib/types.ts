// Shared shapes.

/** An npm registry under test. */
export interface Registry {
  name: string
  /** npm registry URL, with a trailing slash. */
  registry: string
  /** Bearer token allowed to publish. */
  token: string
  /** The server's process id (for CPU accounting), where known. */
  pid?: number
  stop (): Promise<void>
}
