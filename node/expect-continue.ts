// "Expect: 100-continue" answered lazily. Node sends "100 Continue" as soon as such a request
// arrives, before any handler has looked at it, so a client told to go ahead sends its whole
// body only to read a 413 or 401 afterwards (curl and pip then report a broken pipe, not the
// message). Instead the request runs through the app as usual and "100 Continue" goes out only
// when a handler starts reading the body: a handler that refuses first answers at once, and the
// client never sends a byte of it. https://www.rfc-editor.org/rfc/rfc9110#section-10.1.1
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http'
import type Koa from 'koa'

/** The node's HTTP server for an app: lazy 100 Continue, and deadlines on headers only (large
 *  uploads and downloads can take long). The one place a server is made, for the node and tests. */
export function createHttpServer (app: Koa): Server {
  const handle = app.callback()
  const server = createServer(handle)
  continueWhenRead(server, handle)
  server.requestTimeout = 0
  server.headersTimeout = 60_000
  server.keepAliveTimeout = 65_000
  // A client that half-closes once its body is sent still wants the answer: without this Node
  // aborts every request of a connection as soon as the client's FIN arrives.
  ;(server as Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true
  return server
}

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
