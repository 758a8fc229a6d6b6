// The body of POST /-/mesh/import: manifest envelopes, each prefixed by its length (4 bytes, big
// endian). Binary, so envelopes travel exactly as signed, without base64's third more.
import { badRequest, tooLarge } from '../../store/errors.ts'

export function encodeFrames (envelopes: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(envelopes.reduce((n, e) => n + 4 + e.byteLength, 0))
  const view = new DataView(out.buffer)
  let at = 0
  for (const e of envelopes) {
    view.setUint32(at, e.byteLength)
    out.set(e, at + 4)
    at += 4 + e.byteLength
  }
  return out
}

/** Reads frames from a request body; refuses a frame over `maxFrame` or a body over `maxTotal`. */
export async function readFrames (body: AsyncIterable<Uint8Array>, limits: { maxFrame: number, maxTotal: number }): Promise<Uint8Array[]> {
  const pieces: Buffer[] = []
  let total = 0
  for await (const piece of body) {
    total += piece.byteLength
    if (total > limits.maxTotal) throw tooLarge(`import body exceeds ${limits.maxTotal} bytes`)
    pieces.push(Buffer.from(piece))
  }
  const all = Buffer.concat(pieces)
  const frames: Uint8Array[] = []
  let at = 0
  while (at < all.byteLength) {
    if (at + 4 > all.byteLength) throw badRequest('import body: truncated frame length')
    const n = all.readUInt32BE(at)
    if (n > limits.maxFrame) throw tooLarge(`import body: a frame of ${n} bytes exceeds ${limits.maxFrame}`)
    if (at + 4 + n > all.byteLength) throw badRequest('import body: truncated frame')
    frames.push(new Uint8Array(all.subarray(at + 4, at + 4 + n)))
    at += 4 + n
  }
  return frames
}
