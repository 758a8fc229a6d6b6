// A user-space TCP proxy on 127.0.0.1 that caps the bandwidth of each direction (this kernel has
// no netem, and tbf on loopback would slow every test): puts a mesh link at a known speed so a
// test can act "in the middle of a transfer" without depending on machine speed. libp2p's Noise
// handshake authenticates the peer ID end to end, so dialing `/ip4/127.0.0.1/tcp/<proxy>/p2p/<id>`
// reaches the real node.
import { createServer, connect, type Server, type Socket } from 'node:net'
import type { ExecutionContext } from 'ava'

export interface ThrottleProxy {
  port: number
  /** Bytes forwarded so far, target → client and client → target. */
  down (): number
  up (): number
  close (): Promise<void>
}

/** A free TCP port on 127.0.0.1 (bound, read, released: a tiny race, fine for tests). */
export async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  await new Promise<void>(resolve => server.close(() => resolve()))
  return port
}

/** Copies `from` to `to` at most `bytesPerSecond`, pausing `from` while it waits (backpressure). */
function pace (from: Socket, to: Socket, bytesPerSecond: number, count: (n: number) => void): void {
  let nextFree = Date.now()
  from.on('data', (piece: Buffer) => {
    const now = Date.now()
    const start = Math.max(now, nextFree)
    nextFree = start + (piece.byteLength / bytesPerSecond) * 1000
    const wait = nextFree - now
    const send = () => { count(piece.byteLength); if (!to.destroyed) to.write(piece) }
    if (wait < 2) { send(); return }
    from.pause()
    setTimeout(() => { send(); if (!from.destroyed) from.resume() }, wait)
  })
  from.on('end', () => { setTimeout(() => { to.end() }, Math.max(0, nextFree - Date.now()) + 1) })
}

/** Listens on an ephemeral 127.0.0.1 port and forwards every connection to `target` (a port on
 *  127.0.0.1, read again for each connection so the target may restart), capping each direction
 *  of each connection at `bytesPerSecond`. */
export async function throttleProxy (t: ExecutionContext, target: () => number, bytesPerSecond: number): Promise<ThrottleProxy> {
  let down = 0
  let up = 0
  const sockets = new Set<Socket>()
  const server: Server = createServer((client) => {
    const upstream = connect(target(), '127.0.0.1')
    sockets.add(client)
    sockets.add(upstream)
    const closeBoth = () => { client.destroy(); upstream.destroy(); sockets.delete(client); sockets.delete(upstream) }
    client.on('error', closeBoth).on('close', closeBoth)
    upstream.on('error', closeBoth).on('close', closeBoth)
    pace(upstream, client, bytesPerSecond, (n) => { down += n })
    pace(client, upstream, bytesPerSecond, (n) => { up += n })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const proxy: ThrottleProxy = {
    port: (server.address() as { port: number }).port,
    down: () => down,
    up: () => up,
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>(resolve => server.close(() => resolve()))
    }
  }
  t.teardown(async () => { await proxy.close() })
  return proxy
}

/** `/ip4/127.0.0.1/tcp/<node port>/p2p/<id>` → the same peer through `port`. */
export const viaPort = (meshAddr: string, port: number): string => meshAddr.replace(/\/tcp\/\d+\//, `/tcp/${port}/`)
