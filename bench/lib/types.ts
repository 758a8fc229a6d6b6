// Shared shapes.

/** An npm registry under test. */
export interface Registry {
  name: string
  /** npm registry URL, with a trailing slash. */
  registry: string
  /** Bearer token allowed to publish. */
  token: string
  stop (): Promise<void>
}
