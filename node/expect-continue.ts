// "Expect: 100-continue" answered lazily. Node sends "100 Continue" as soon as such a request
// arrives, before any handler has looked at it, so a client told to go ahead sends its whole
// body only to read a 413 or 401 afterwards (curl and pip then report a broken pipe, not the
// message). Instead the request runs through the app as usual and "100 Continue" goes out only
// when a handler starts reading the body: a handler that refuses first answers at once, and the
// client never sends a byte of it. https://www.rfc-editor.org/rfc/rfc9110#section-10.1.1
import type { IncomingMessage, RequestListener, Server, ServerResponse } from 'node:http'

export function continueWhenRead (server: Server, handle: RequestListener): void {
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    // Answered without its body, the connection cannot carry a next request: the client may or
    // may not send the body after all, and the two cases cannot be told apart.
    res.setHeader('Connection', 'close')
    let continued = false
    const read = req._read
    // Every way of consuming a Readable (pipe, iteration, 'data', read()) goes through _read.
    req._read = function (size: number) {
      if (!continued && !res.headersSent) {
        continued = true
        res.removeHeader('Connection')
        res.writeContinue()
      }
      read.call(this, size)
    }
    handle(req, res)
  })
}
