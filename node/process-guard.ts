// The last line of defence for "no request may crash the node": an exception that escapes to the
// process is survivable only if it is the failure of one client's connection or request body
// (a stream that errored with nobody listening, after the client hung up or sent a broken body).
// Such an error is thrown from Node's own event dispatch, so no code of ours was interrupted
// half-way and no state is inconsistent: it is logged and the node keeps serving. The request it
// belonged to is already answered or gone (every handler answers its own stream failures). Any
// other uncaught exception is a bug whose effects are unknown: logged, and the process exits.
import type { Logger } from 'pino'

/** Errors of a socket or a stream fed by one: the peer's doing, confined to that connection. */
const CONNECTION_CODES = new Set([
  'ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ETIMEDOUT',
  'ERR_STREAM_PREMATURE_CLOSE', 'ERR_STREAM_DESTROYED', 'ERR_STREAM_WRITE_AFTER_END',
  'ERR_STREAM_UNABLE_TO_PIPE', 'HPE_INVALID_EOF_STATE'
])

/** busboy's errors for a body that is not well-formed multipart (it gives them no code). */
const MALFORMED_BODY = /^(Unexpected end of (form|file)|Malformed (part header|urlencoded form)|Part terminated early)/

export function isRequestStreamError (err: unknown): boolean {
  if (!(err instanceof Error)) return false
  const code = (err as NodeJS.ErrnoException).code
  if (code != null && CONNECTION_CODES.has(code)) return true
  return err.message === 'aborted' || MALFORMED_BODY.test(err.message)
}

/** Installs the policy; returns the function that removes it (node shutdown). */
export function guardProcess (log: Logger): () => void {
  const onException = (err: Error): void => {
    if (isRequestStreamError(err)) {
      log.warn({ error: err.message, code: (err as NodeJS.ErrnoException).code, stack: err.stack }, 'a request stream failed with nobody listening; the node keeps serving')
      return
    }
    log.fatal({ err }, 'uncaught exception')
    process.exit(1)
  }
  process.on('uncaughtException', onException)
  return () => { process.off('uncaughtException', onException) }
}
