// What went wrong, in words, whatever was thrown: libp2p 3 streams reject with their close or
// abort *event* (an Event with `error` and `local`), not an Error, so `err.message` is undefined.

export function describeError (err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code
    const text = err.message !== '' ? err.message : err.name
    return typeof code === 'string' && !text.includes(code) ? `${text} (${code})` : text
  }
  if (typeof Event !== 'undefined' && err instanceof Event) {
    const { error, local } = err as Event & { error?: unknown, local?: boolean }
    if (error != null) return describeError(error)
    return `the stream was ${err.type === 'abort' ? 'aborted' : 'closed'} ${local === true ? 'locally' : 'by the remote peer'}`
  }
  if (typeof err === 'object' && err !== null && 'message' in err && typeof err.message === 'string') return err.message
  return String(err)
}
