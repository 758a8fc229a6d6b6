// The shared archive reader (protocols/shared/archive.ts), in process: every limit on tar, tar.gz,
// tar.zst and zip, from bytes in memory, a file and the store; extraction; malformed archives.
import test from 'ava'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { DEFAULT_ARCHIVE_LIMITS, inspectArchive, type ArchiveLimits, type ArchiveSource } from '../protocols/shared/archive.ts'
import { openDatabase } from '../store/db.ts'
import { FileBlobStore } from '../store/blobs.ts'
import { lieAboutSize, manyFiles, tarBytes, tgzBytes, tzstBytes, zipBytes } from './helpers/archives.ts'
import { makeTempDir } from './helpers/node.ts'

const MiB = 1024 * 1024
const limits = (l: Partial<ArchiveLimits> = {}): ArchiveLimits => ({ ...DEFAULT_ARCHIVE_LIMITS, ...l })
const pkg = { path: 'package/package.json', text: '{"name":"a","version":"1.0.0"}' }
const isPackageJson = (e: { path: string }) => e.path === 'package/package.json'

test('a regular tar.gz, tar, tar.zst and zip: counts, sizes and the selected entry', async t => {
  const entries = [pkg, { path: 'package/dir', type: 'Directory' as const }, { path: 'package/index.js', text: 'module.exports = 1\n' }]
  for (const [format, bytes] of [['tar.gz', await tgzBytes(entries)], ['tar', await tarBytes(entries)], ['tar.zst', await tzstBytes(entries)]] as const) {
    const s = await inspectArchive({ bytes }, { format, limits: limits(), label: 'tarball', select: isPackageJson })
    t.is(s.entries, 3, format)
    t.is(s.files, 2, format)
    t.is(s.unpackedBytes, pkg.text.length + 19, format)
    t.deepEqual(s.extracted.map(e => [e.path, e.bytes.toString()]), [[pkg.path, pkg.text]], format)
  }
  const zip = await zipBytes({ 'a/METADATA': 'Name: a\n', 'a/x.py': 'X = 1\n', 'a/': '' })
  const s = await inspectArchive({ bytes: zip }, { format: 'zip', limits: limits(), label: 'wheel', select: e => e.path === 'a/METADATA' })
  t.is(s.files, 2)
  t.deepEqual(s.extracted.map(e => e.bytes.toString()), ['Name: a\n'])
})

test('tar.gz limits: one entry over entryBytes, total over unpackedBytes, ratio, entry count, extract size', async t => {
  const cases: Array<[string, Parameters<typeof tgzBytes>[0], Partial<ArchiveLimits>, RegExp]> = [
    ['one huge entry', [pkg, { path: 'package/big.bin', size: 40 * MiB }], { entryBytes: 32 * MiB }, /over the limit of 33554432 bytes per entry \(limits\.archive\.entryBytes\)/],
    ['total', [pkg, { path: 'package/a.bin', size: 10 * MiB }, { path: 'package/b.bin', size: 10 * MiB }], { unpackedBytes: 16 * MiB, ratio: 1e9 }, /unpacks to more than the limit of 16777216 bytes \(limits\.archive\.unpackedBytes\)/],
    ['ratio', [pkg, { path: 'package/zeros.bin', size: 20 * MiB }], { ratio: 100 }, /exceeds the limit of 100:1 on the compression ratio \(limits\.archive\.ratio\)/],
    ['entries', [pkg, ...manyFiles('package/many', 600)], { entries: 500 }, /exceeds the limit of 500 entries \(limits\.archive\.entries\)/],
    ['extract', [{ path: 'package/package.json', size: 2 * MiB }], { extractBytes: MiB }, /"package\/package\.json" is over the limit of 1048576 bytes for files the registry reads \(limits\.archive\.extractBytes\)/]
  ]
  for (const [what, entries, l, message] of cases) {
    const bytes = await tgzBytes(entries)
    const err = await t.throwsAsync(inspectArchive({ bytes }, { format: 'tar.gz', limits: limits(l), label: 'tarball', select: isPackageJson }), undefined, what)
    t.is((err as any)?.code, 'TooLarge', what)
    t.regex(err?.message ?? '', message, what)
    t.regex(err?.message ?? '', /^tarball /, what)
  }
})

test('a gzip bomb stops early: the decompressed stream is capped even past the tar end marker', async t => {
  // A valid tiny tar followed by 100 MiB of zeros: tar ignores them, the budget does not.
  const { createGzip } = await import('node:zlib')
  const head = await tarBytes([pkg])
  const tail = async function * () { yield head; for (let i = 0; i < 100; i++) yield Buffer.alloc(MiB) }
  const pieces: Buffer[] = []
  for await (const p of Readable.from(tail()).pipe(createGzip({ level: 1 }))) pieces.push(p)
  const err = await t.throwsAsync(inspectArchive({ bytes: Buffer.concat(pieces) }, { format: 'tar.gz', limits: limits({ unpackedBytes: 32 * MiB, ratio: 1e9 }), label: 'tarball' }))
  t.regex(err?.message ?? '', /limits\.archive\.unpackedBytes/)
})

test('malformed archives are BadRequest naming the archive; gzip hidden in a plain tar is refused', async t => {
  const bad: Array<[ArchiveSource, 'tar' | 'tar.gz' | 'zip', RegExp]> = [
    [{ bytes: Buffer.from('not an archive at all, not at all') }, 'tar.gz', /tarball is not a valid gzipped tar archive/],
    [{ bytes: (await tgzBytes([pkg])).subarray(0, 40) }, 'tar.gz', /not a valid gzipped tar archive/],
    [{ bytes: await tgzBytes([pkg]) }, 'tar', /not a valid tar archive: it holds gzip data/],
    [{ bytes: (await tarBytes([pkg, { path: 'package/b.js', text: 'x' }])).subarray(0, 1500) }, 'tar', /not a valid tar archive: truncated/],
    [{ bytes: (await tarBytes([pkg, { path: 'package/b.bin', size: 5000 }])).subarray(0, 3072) }, 'tar', /not a valid tar archive: .*Truncated input/],
    [{ bytes: Buffer.alloc(3000, 7) }, 'zip', /not a valid zip archive/]
  ]
  for (const [source, format, message] of bad) {
    const err = await t.throwsAsync(inspectArchive(source, { format, limits: limits(), label: 'tarball' }))
    t.is((err as any)?.code, 'BadRequest', err?.message)
    t.regex(err?.message ?? '', message)
  }
})

test('zip limits by declared sizes, before anything is inflated; a lying size is caught while inflating', async t => {
  const big = await zipBytes({ 'a/METADATA': 'Name: a\n', 'a/zeros.bin': 20 * MiB })
  const ratio = await t.throwsAsync(inspectArchive({ bytes: big }, { format: 'zip', limits: limits({ ratio: 100 }), label: 'wheel a.whl' }))
  t.regex(ratio?.message ?? '', /^wheel a\.whl entry "a\/zeros\.bin" exceeds the limit of 100:1 on the compression ratio/)
  const entry = await t.throwsAsync(inspectArchive({ bytes: big }, { format: 'zip', limits: limits({ entryBytes: 8 * MiB }), label: 'wheel' }))
  t.regex(entry?.message ?? '', /limits\.archive\.entryBytes/)

  const many = await zipBytes(Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`a/f${i}`, 'x'])))
  const count = await t.throwsAsync(inspectArchive({ bytes: many }, { format: 'zip', limits: limits({ entries: 100 }), label: 'wheel' }))
  t.regex(count?.message ?? '', /exceeds the limit of 100 entries \(limits\.archive\.entries\)/)

  const liar = lieAboutSize(await zipBytes({ 'a/METADATA': 4 * MiB }), 'a/METADATA', 1000)
  const lie = await t.throwsAsync(inspectArchive({ bytes: liar }, { format: 'zip', limits: limits(), label: 'wheel', select: () => true }))
  t.is((lie as any)?.code, 'TooLarge')
  t.regex(lie?.message ?? '', /"a\/METADATA" unpacks to more than the 1000 bytes its header declares/)
})

test('sources: a file path and a stored blob read like bytes in memory', async t => {
  const dir = await makeTempDir(t)
  const bytes = await tgzBytes([pkg, ...manyFiles('package/m', 10)])
  const path = join(dir, 'a.tgz')
  await writeFile(path, bytes)
  const db = openDatabase(join(dir, 'db.sqlite'))
  t.teardown(() => { db.close() })
  const store = await FileBlobStore.open(join(dir, 'data'), db)
  const blob = await store.put(Readable.from([bytes]))
  const zip = await zipBytes({ 'a/METADATA': 'Name: a\n' })
  const zipBlob = await store.put(Readable.from([zip]))
  for (const source of [{ path, size: bytes.length }, { store, cid: blob.cid, size: blob.size }]) {
    const s = await inspectArchive(source, { format: 'tar.gz', limits: limits(), label: 'tarball', select: isPackageJson })
    t.is(s.files, 11)
    t.is(s.extracted[0]?.bytes.toString(), pkg.text)
  }
  const z = await inspectArchive({ store, cid: zipBlob.cid, size: zipBlob.size }, { format: 'zip', limits: limits(), label: 'wheel', select: () => true })
  t.is(z.extracted[0]?.bytes.toString(), 'Name: a\n')
})

test('an aborted signal stops the read', async t => {
  const bytes = await tgzBytes([pkg, { path: 'package/z', size: 64 * MiB }])
  const ac = new AbortController()
  const p = inspectArchive({ bytes }, { format: 'tar.gz', limits: limits({ ratio: 1e9 }), label: 'tarball', signal: ac.signal })
  ac.abort(new Error('client gone'))
  await t.throwsAsync(p)
})
