// File names beyond Latin-1 (Chinese, Cyrillic, emoji, an RTL override) through generic upload,
// listing, download and HEAD on one node, and through the mesh to a second: every header that
// carries the name is percent-encoded (Location: RFC 3986; Content-Disposition: RFC 8187), the
// upload is acknowledged exactly when it is published, and the peer serves the same bytes.
import test from 'ava'
import { connectedTo, identity } from './helpers/mesh.ts'
import { startTestNode, waitFor } from './helpers/node.ts'
import { rawRequest } from './helpers/streams.ts'

const NAMES = ['中文/文件.txt', 'Кириллица.bin', '📦 emoji🎉.tar.gz', 'evil\u202Egnp.exe', 'café (1).txt']
const encode = (path: string) => path.split('/').map(encodeURIComponent).join('/')
const bytesOf = (name: string) => Buffer.from(`content of ${name}\n`.repeat(100))

/** The name a client recovers from Content-Disposition's RFC 8187 parameter. */
function dispositionName (header: string | undefined): string | undefined {
  const m = /filename\*=UTF-8''([^;\s]+)/.exec(header ?? '')
  return m == null ? undefined : decodeURIComponent(m[1])
}

test('names beyond Latin-1: upload, listing, download, HEAD, and the same bytes from a peer', async t => {
  const a = await identity(t)
  const b = await identity(t)
  const nodeA = await startTestNode(t, { dataDir: a.dataDir, peering: { allow: [b.peerId] } })
  const nodeB = await startTestNode(t, { dataDir: b.dataDir, peering: { allow: [a.peerId], bootstrap: [nodeA.meshAddr] } })
  await waitFor(async () => await connectedTo(nodeB, a.peerId) && await connectedTo(nodeA, b.peerId), 'A and B connected')
  const auth = { Authorization: `Bearer ${nodeA.adminToken}` }

  for (const name of NAMES) {
    const url = `${nodeA.url}/files/intl/${encode(name)}`
    const put = await fetch(url, { method: 'PUT', headers: auth, body: bytesOf(name) })
    const text = await put.text()
    t.is(put.status, 201, `${name}: ${text}`)
    t.is(put.headers.get('location'), url, `${name}: Location is the percent-encoded URL`)
    const body = JSON.parse(text)
    t.is(body.path, `intl/${name}`)
    t.is(body.downloadUri, url)
    // A repeated upload replaces (200), so the first answer was not a half-acknowledged publish.
    const again = await fetch(url, { method: 'PUT', headers: auth, body: bytesOf(name) })
    t.is(again.status, 200, name)
    await again.body?.cancel()
  }

  const listing = await (await fetch(`${nodeA.url}/files/intl/`)).json() as { files: string[] }
  t.deepEqual([...listing.files].sort(), NAMES.map(n => `intl/${n}`).sort())

  for (const name of NAMES) {
    const url = `${nodeA.url}/files/intl/${encode(name)}`
    const get = await rawRequest('GET', url)
    t.is(get.status, 200, name)
    t.true(get.body.equals(bytesOf(name)), name)
    const disposition = get.headers['content-disposition']
    t.regex(disposition ?? '', /^attachment; filename="[\x20-\x7e]+"; filename\*=UTF-8''[\x21-\x7e]+$/, `${name}: ${disposition}`)
    t.is(dispositionName(disposition), name.split('/').pop())
    const head = await rawRequest('HEAD', url)
    t.is(head.status, 200, name)
    t.is(head.headers['content-length'], String(bytesOf(name).length))
    t.is(head.headers['content-disposition'], disposition)
    t.is(head.headers.etag, get.headers.etag)
  }

  // B learns every name from A's signed manifests and fetches the bytes from A on demand.
  await waitFor(async () => {
    const r = await fetch(`${nodeB.url}/files/intl/`)
    return r.status === 200 && ((await r.json()) as { files: string[] }).files.length === NAMES.length
  }, 'B to list every name')
  for (const name of NAMES) {
    const fromB = await rawRequest('GET', `${nodeB.url}/files/intl/${encode(name)}`)
    t.is(fromB.status, 200, name)
    t.true(fromB.body.equals(bytesOf(name)), `${name}: B serves the same bytes`)
    t.is(dispositionName(fromB.headers['content-disposition']), name.split('/').pop())
  }
})
