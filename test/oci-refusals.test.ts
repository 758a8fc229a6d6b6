// OCI requests the registry refuses must leave nothing behind: a refused PATCH (bad or
// contradicted Content-Range, over the size limit, another image's session) appends none of its
// bytes, a manifest pushed under a Content-Type that is not a manifest type is refused, and
// upload sessions nobody touches expire (limits.uploadIdleSeconds) with their temp files.
import test, { type ExecutionContext } from 'ava'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { startTestNode, waitFor, type TestNode } from './helpers/node.ts'
import { digestOf, errorCode, oci, pushBlob } from './helpers/oci-http.ts'
import { deterministicBytes, rawRequest } from './helpers/streams.ts'

const LIMIT = 1024 * 1024
const IDLE_SECONDS = 5
const cleanups: Array<() => unknown> = []
const fileScope = { teardown: (fn: () => unknown) => { cleanups.push(fn) } } as unknown as ExecutionContext
let shared: Promise<TestNode> | undefined
const sharedNode = async () => await (shared ??= startTestNode(fileScope, { config: `limits: { uploadBytes: ${LIMIT}, uploadIdleSeconds: ${IDLE_SECONDS} }\n` }))
test.after.always(async () => { for (const fn of cleanups.reverse()) await fn() })

async function begin (node: TestNode, image: string): Promise<string> {
  const r = await oci(node, 'POST', `/v2/docker/${image}/blobs/uploads/`)
  if (r.status !== 202) throw new Error(`start: ${r.status}`)
  return new URL(r.headers.get('location') as string, node.url).pathname
}

/** Bytes the upload holds, from its status (Range "0-<last>", "0-0" when empty). */
async function received (node: TestNode, session: string): Promise<number> {
  const r = await oci(node, 'GET', session)
  if (r.status !== 204) throw new Error(`status: ${r.status}`)
  const last = Number(/^0-(\d+)$/.exec(r.headers.get('range') ?? '')?.[1])
  return last === 0 ? 0 : last + 1 // every test's accepted chunks are longer than one byte
}

/** A PATCH whose body goes chunked (no Content-Length), so the server learns its size only by reading it. */
async function patchStreamed (node: TestNode, session: string, body: Buffer, headers: Record<string, string> = {}) {
  return await rawRequest('PATCH', node.url + session, {
    headers: { Authorization: `Bearer ${node.adminToken}`, 'Content-Type': 'application/octet-stream', ...headers },
    body: Readable.from([body])
  })
}

const code = (body: Buffer) => (JSON.parse(body.toString()) as { errors: Array<{ code: string }> }).errors[0]?.code

test.serial('a PATCH refused for its Content-Range appends nothing, and the upload finishes with the right bytes', async t => {
  const node = await sharedNode()
  const first = deterministicBytes(1000, 'range-1')
  const second = deterministicBytes(500, 'range-2')
  const session = await begin(node, 'ranges')
  t.is((await oci(node, 'PATCH', session, { body: first, headers: { 'Content-Range': '0-999' } })).status, 202)

  const gap = await oci(node, 'PATCH', session, { body: second, headers: { 'Content-Range': '1001-1500' } })
  t.is(gap.status, 416)
  t.is(await errorCode(gap), 'BLOB_UPLOAD_INVALID')
  const malformed = await oci(node, 'PATCH', session, { body: second, headers: { 'Content-Range': 'bytes=x-y' } })
  t.is(malformed.status, 416)
  await malformed.body?.cancel()
  const lengthDisagrees = await oci(node, 'PATCH', session, { body: second, headers: { 'Content-Range': '1000-1999' } })
  t.is(lengthDisagrees.status, 400)
  t.is(await errorCode(lengthDisagrees), 'SIZE_INVALID')
  // The server learns only by reading that the body is shorter than its Content-Range says.
  const contradicted = await patchStreamed(node, session, second, { 'Content-Range': '1000-1999' })
  t.is(contradicted.status, 400, contradicted.body.toString())
  t.is(code(contradicted.body), 'SIZE_INVALID')
  t.is(contradicted.headers.range, '0-999', 'the refused chunk is not part of the upload')
  t.is(await received(node, session), 1000)

  t.is((await oci(node, 'PATCH', session, { body: second, headers: { 'Content-Range': '1000-1499' } })).status, 202)
  const whole = Buffer.concat([first, second])
  const done = await oci(node, 'PUT', `${session}?digest=${digestOf(whole)}`)
  t.is(done.status, 201, await done.text())
  const back = await oci(node, 'GET', `/v2/docker/ranges/blobs/${digestOf(whole)}`)
  t.true(Buffer.from(await back.arrayBuffer()).equals(whole))
})

test.serial('a PATCH over the size limit appends nothing, declared or streamed; the upload still finishes', async t => {
  const node = await sharedNode()
  const kept = deterministicBytes(600_000, 'limit-1')
  const over = deterministicBytes(600_000, 'limit-2')
  const session = await begin(node, 'limits')
  t.is((await oci(node, 'PATCH', session, { body: kept })).status, 202)

  const declared = await oci(node, 'PATCH', session, { body: over })
  t.is(declared.status, 413)
  t.is(await errorCode(declared), 'SIZE_INVALID')
  t.is(await received(node, session), kept.length)
  const streamed = await patchStreamed(node, session, over)
  t.is(streamed.status, 413, streamed.body.toString())
  t.is(code(streamed.body), 'SIZE_INVALID')
  t.is(await received(node, session), kept.length, 'the part of the chunk that fitted was not kept either')

  // The running digests were rewound with the file: the upload commits to exactly `kept`.
  const done = await oci(node, 'PUT', `${session}?digest=${digestOf(kept)}`)
  t.is(done.status, 201, await done.text())
})

test.serial('a PATCH on another image\'s session is refused and appends nothing', async t => {
  const node = await sharedNode()
  const session = await begin(node, 'owner')
  t.is((await oci(node, 'PATCH', session, { body: 'abc' })).status, 202)
  const id = session.split('/').pop() as string
  const foreign = await oci(node, 'PATCH', `/v2/docker/intruder/blobs/uploads/${id}`, { body: 'xyz' })
  t.is(foreign.status, 404)
  t.is(await errorCode(foreign), 'BLOB_UPLOAD_UNKNOWN')
  const done = await oci(node, 'PUT', `${session}?digest=${digestOf('abc')}`)
  t.is(done.status, 201, await done.text())
})

test.serial('a manifest is refused under a Content-Type that is not a manifest media type', async t => {
  const node = await sharedNode()
  const config = await pushBlob(node, 'docker/typed', '{}')
  const layer = await pushBlob(node, 'docker/typed', 'layer')
  const manifest = JSON.stringify({
    schemaVersion: 2,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config, size: 2 },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layer, size: 5 }]
  })
  for (const type of ['text/plain', 'application/json', 'application/octet-stream']) {
    const r = await oci(node, 'PUT', '/v2/docker/typed/manifests/v1', { body: manifest, headers: { 'Content-Type': type } })
    t.is(r.status, 400, type)
    t.is(await errorCode(r), 'MANIFEST_INVALID', type)
  }
  t.is((await oci(node, 'GET', '/v2/docker/typed/manifests/v1')).status, 404)
  const ok = await oci(node, 'PUT', '/v2/docker/typed/manifests/v1', { body: manifest, headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json; charset=utf-8' } })
  t.is(ok.status, 201, await ok.text())
})

test.serial('an upload session left idle expires, with its temp file', async t => {
  const node = await sharedNode()
  const tmp = join(node.dataDir, 'tmp')
  const session = await begin(node, 'idle')
  t.is((await oci(node, 'PATCH', session, { body: 'some bytes' })).status, 202)
  const id = session.split('/').pop() as string
  await waitFor(async () => (await oci(node, 'GET', session)).status === 404, 'the idle session to expire', 60_000)
  const late = await oci(node, 'PATCH', session, { body: 'more' })
  t.is(late.status, 404)
  t.is(await errorCode(late), 'BLOB_UPLOAD_UNKNOWN')
  const finish = await oci(node, 'PUT', `${session}?digest=${digestOf('some bytes')}`)
  t.is(await errorCode(finish), 'BLOB_UPLOAD_UNKNOWN')
  // The tests of this file run one after another and finish their other sessions: tmp/ empties.
  await waitFor(async () => (await readdir(tmp)).length === 0, 'its temp file to go')
  t.pass(id)
})
