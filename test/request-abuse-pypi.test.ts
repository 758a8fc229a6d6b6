// Broken PyPI uploads over raw sockets, in every state of the upload (refused before the file part
// is read, ignored part, file being stored, still in the fields): bodies that stop short of their
// Content-Length, multipart bodies without their closing boundary, clients that vanish. After
// each the node process is alive and answers; nothing half-uploaded is visible.
import test, { type ExecutionContext } from 'ava'
import { startTestNode, type TestNode } from './helpers/node.ts'
import { makeWheel, upload, uploadForm, type Dist } from './helpers/pypi-dists.ts'
import { assertServing, sendBroken, waitForRequestLog, type BrokenRequest } from './helpers/raw-http.ts'

const cleanups: Array<() => unknown> = []
const fileScope = { teardown: (fn: () => unknown) => { cleanups.push(fn) } } as unknown as ExecutionContext
let shared: Promise<TestNode> | undefined
const sharedNode = async () => await (shared ??= startTestNode(fileScope))
test.after.always(async () => { for (const fn of cleanups.reverse()) await fn() })

const basic = (token: string) => `Basic ${Buffer.from(`__token__:${token}`).toString('base64')}`

/** The form as bytes on the wire, with its Content-Type (boundary included). */
async function serialize (form: FormData): Promise<{ bytes: Buffer, type: string }> {
  const r = new Response(form)
  return { bytes: Buffer.from(await r.arrayBuffer()), type: r.headers.get('content-type') as string }
}

interface State {
  what: string
  form: (dist: Dist, name: string) => Promise<FormData>
  before?: (node: TestNode, dist: Dist, name: string) => Promise<void>
}

const STATES: State[] = [
  { what: 'fields after the file (refused before it is read)', form: async (d, n) => await uploadForm(d, n, '1.0', {}, { contentFirst: true }) },
  { what: 'a missing field', form: async (d, n) => await uploadForm(d, n, '1.0', { filetype: null }) },
  {
    what: 'an unexpected file part before the content',
    form: async (d, n) => {
      const f = new FormData()
      f.append('other', new Blob([d.bytes]), 'other.bin')
      for (const [k, v] of await uploadForm(d, n, '1.0')) f.append(k, v)
      return f
    }
  },
  {
    what: 'a file that exists already',
    form: async (d, n) => await uploadForm(d, n, '1.0'),
    before: async (node, d, n) => {
      const r = await upload(node, await uploadForm(d, n, '1.0'))
      if (r.status !== 200) throw new Error(`first upload: ${r.status}`)
    }
  },
  { what: 'a valid upload being stored', form: async (d, n) => await uploadForm(d, n, '1.0') }
]

const ENDINGS: Array<BrokenRequest['ending']> = ['lie', 'disconnect', 'chunked']

let probes = 0
async function probe (t: ExecutionContext, node: TestNode, req: BrokenRequest, what: string): Promise<number | undefined> {
  const id = `pypi-${++probes}`
  const reply = await sendBroken(node, req, id)
  await waitForRequestLog(node, id)
  await assertServing(node)
  t.pass(what)
  return reply.status
}

for (const state of STATES) {
  test.serial(`${state.what}: truncated, unterminated and disconnected bodies leave the node serving`, async t => {
    const node = await sharedNode()
    const name = `abuse-${STATES.indexOf(state)}`
    const dist = await makeWheel(name, '1.0')
    const form = await state.form(dist, name)
    await state.before?.(node, dist, name)
    const { bytes, type } = await serialize(form)
    const headers = { Authorization: basic(node.adminToken), 'Content-Type': type }
    const fileAt = bytes.indexOf(dist.bytes.subarray(0, 32))
    t.true(fileAt > 0)
    const cuts: Array<[string, number]> = [
      ['in the middle of the file part', fileAt + (dist.bytes.length >> 1)],
      ['without the closing boundary', bytes.lastIndexOf(Buffer.from('\r\n--'))],
      ['in the fields', Math.min(fileAt, bytes.length) >> 1]
    ]
    for (const [where, cut] of cuts) {
      for (const ending of ENDINGS) {
        const status = await probe(t, node, { method: 'POST', path: '/pypi/', headers, body: bytes.subarray(0, cut), ending }, `${where}, ${ending}`)
        // A complete HTTP body that is not a complete form is answered with a 4xx.
        if (ending === 'chunked') t.true(status != null && status >= 400 && status < 500, `${where}, chunked: ${status}`)
      }
    }
    // The whole form still works afterwards (or is refused for its own reason, as before).
    const r = await fetch(`${node.url}/pypi/`, { method: 'POST', headers, body: bytes })
    if (state.what.startsWith('a valid')) t.is(r.status, 200)
    else t.true(r.status >= 400 && r.status < 500, `whole form: ${r.status}`)
    await r.body?.cancel()
  })
}
