// The baseline of bench/upload.ts: a plain Node script that reads a file in 1 MiB blocks and
// hashes it with the given digests (one thread, no HTTP, no disk writes). BLAKE3 is the native
// binding akmesh uses; "blake3" means the whole-file hash plus the per-MiB chunk table.
//
//   node bench/lib/hash-file.ts <file> blake3,sha256[,sha512,sha1,md5]
// Prints one JSON line: { ms, digests: { name: hex } }.
import { createHash, type Hash } from 'node:crypto'
import { openSync, readSync, closeSync } from 'node:fs'
import { createRequire } from 'node:module'

const [file, list] = process.argv.slice(2)
if (file == null || list == null) { console.error('usage: hash-file.ts <file> <digests>'); process.exit(2) }
const names = list.split(',')
const native = createRequire(import.meta.url)('@napi-rs/blake-hash') as {
  Blake3Hasher: new () => { update (b: Buffer): unknown, digestBuffer (): Buffer }
}
const start = performance.now()
const sha: Array<[string, Hash]> = names.filter(n => n !== 'blake3').map(n => [n, createHash(n)])
const whole = names.includes('blake3') ? new native.Blake3Hasher() : undefined
const chunks: Buffer[] = []
const buf = Buffer.allocUnsafeSlow(1024 * 1024)
const fd = openSync(file, 'r')
for (;;) {
  const n = readSync(fd, buf, 0, buf.length, null)
  if (n === 0) break
  const block = n === buf.length ? buf : buf.subarray(0, n)
  for (const [, h] of sha) h.update(block)
  if (whole != null) {
    whole.update(block)
    const chunk = new native.Blake3Hasher()
    chunk.update(block)
    chunks.push(chunk.digestBuffer())
  }
}
closeSync(fd)
const digests = Object.fromEntries(sha.map(([n, h]) => [n, h.digest('hex')]))
if (whole != null) digests.blake3 = whole.digestBuffer().toString('hex')
console.log(JSON.stringify({ ms: performance.now() - start, digests }))
