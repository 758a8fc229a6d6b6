// Tokens from /v2/token carry exactly the granted (image, actions), expire in minutes, and work
// only on the OCI API (issue 17, item 5).
import test from 'ava'
import { akmesh, startTestNode } from './helpers/node.ts'
import { basic, errorCode, oci, pushImage } from './helpers/oci-http.ts'

const CONFIG = `
repositories:
  - name: docker
    format: oci
  - name: private
    format: oci
    anonymousRead: false
  - name: files
    format: generic
    anonymousRead: false
  - name: npm
    format: npm
`

interface TokenBody { token: string, access_token: string, expires_in: number, issued_at: string }

test('a token carries only the scope granted: no push on a pull token, no other image, no other format', async t => {
  const node = await startTestNode(t, { config: CONFIG })
  const alice = await akmesh(['user', 'add', 'alice', '--password', 'password1', '--scope', 'read,write', '--repo', '*', '--data', node.dataDir])
  t.is(alice.code, 0, alice.stderr)
  const reader = await akmesh(['user', 'add', 'reader', '--password', 'password1', '--scope', 'read', '--repo', 'private', '--data', node.dataDir])
  t.is(reader.code, 0, reader.stderr)
  const app = await pushImage(node, 'private/team/app', 'v1')
  await pushImage(node, 'private/team/other', 'v1')

  const tokenFor = async (scope: string, auth: string | null): Promise<TokenBody> => {
    const res = await oci(node, 'GET', `/v2/token?service=akmesh&${scope.split(' ').map(s => `scope=${encodeURIComponent(s)}`).join('&')}`, { auth })
    t.is(res.status, 200)
    return await res.json() as TokenBody
  }
  const bearer = (b: TokenBody) => `Bearer ${b.token}`

  const pull = await tokenFor('repository:private/team/app:pull', basic('alice', 'password1'))
  t.is(pull.expires_in, 300, 'short-lived')
  t.true(Math.abs(Date.parse(pull.issued_at) - Date.now()) < 10 * 60_000)
  t.is((await oci(node, 'GET', '/v2/private/team/app/manifests/v1', { auth: bearer(pull) })).status, 200)
  t.is((await oci(node, 'HEAD', `/v2/private/team/app/blobs/${app.config}`, { auth: bearer(pull) })).status, 200)

  const push = await oci(node, 'POST', '/v2/private/team/app/blobs/uploads/', { auth: bearer(pull) })
  t.is(push.status, 401, 'a pull token cannot push the same image')
  t.is(await errorCode(push), 'UNAUTHORIZED')
  t.regex(push.headers.get('www-authenticate') ?? '', /scope="repository:private\/team\/app:pull,push",error="insufficient_scope"/)
  const del = await oci(node, 'DELETE', `/v2/private/team/app/manifests/${app.digest}`, { auth: bearer(pull) })
  t.is(del.status, 401)
  t.regex(del.headers.get('www-authenticate') ?? '', /scope="repository:private\/team\/app:delete"/, 'a delete asks for the delete action')
  t.is((await oci(node, 'GET', '/v2/private/team/other/manifests/v1', { auth: bearer(pull) })).status, 401, 'nor pull another image')
  t.is((await oci(node, 'GET', '/v2/private/team/other/tags/list', { auth: bearer(pull) })).status, 401)
  t.is((await oci(node, 'POST', `/v2/private/team/other/blobs/uploads/?mount=${app.config}&from=private/team/app`, { auth: bearer(pull) })).status, 401)

  // Even a token granted push is no credential outside the OCI API.
  const full = await tokenFor('repository:private/team/app:pull,push,delete', basic('alice', 'password1'))
  const gen = await fetch(`${node.url}/files/secret.txt`, { method: 'PUT', body: 'x', headers: { Authorization: bearer(full) } })
  t.is(gen.status, 401, 'no write into a generic repository')
  t.is((await fetch(`${node.url}/files/`, { headers: { Authorization: bearer(full) } })).status, 401)
  const npm = await fetch(`${node.url}/npm/-/whoami`, { headers: { Authorization: bearer(full) } })
  t.is(npm.status, 401, 'npm does not accept it either')
  t.is((await fetch(`${node.url}/-/mesh/status`, { headers: { Authorization: bearer(full) } })).status, 401)
  // ...and in the OCI API it does what it was granted.
  t.is((await oci(node, 'POST', '/v2/private/team/app/blobs/uploads/', { auth: bearer(full) })).status, 202)
  // A mount needs pull on the source: granted for app, not for other.
  const mounting = await tokenFor('repository:private/team/new:pull,push repository:private/team/app:pull', basic('alice', 'password1'))
  t.is((await oci(node, 'POST', `/v2/private/team/new/blobs/uploads/?mount=${app.config}&from=private/team/app`, { auth: bearer(mounting) })).status, 201)
  t.is((await oci(node, 'POST', `/v2/private/team/new/blobs/uploads/?mount=${app.config}&from=private/team/other`, { auth: bearer(mounting) })).status, 202, 'not mounted: falls back to an upload')

  // The grant is the intersection of what was asked and what the user holds.
  const readerToken = await tokenFor('repository:private/team/app:pull,push', basic('reader', 'password1'))
  const claims = JSON.parse(Buffer.from(readerToken.token.split('.')[1], 'base64url').toString()) as { access: unknown }
  t.deepEqual(claims.access, [{ type: 'repository', name: 'private/team/app', actions: ['pull'] }])
  t.is((await oci(node, 'POST', '/v2/private/team/app/blobs/uploads/', { auth: bearer(readerToken) })).status, 401)

  // Anonymous: pull on a public repository, nothing on a private one.
  const anon = await tokenFor('repository:docker/lib/x:pull,push repository:private/team/app:pull', null)
  const anonClaims = JSON.parse(Buffer.from(anon.token.split('.')[1], 'base64url').toString()) as { sub: unknown, access: unknown }
  t.is(anonClaims.sub, null)
  t.deepEqual(anonClaims.access, [{ type: 'repository', name: 'docker/lib/x', actions: ['pull'] }])
  t.is((await oci(node, 'POST', '/v2/docker/lib/x/blobs/uploads/', { auth: bearer(anon) })).status, 401)
  t.is((await oci(node, 'GET', '/v2/private/team/app/manifests/v1', { auth: bearer(anon) })).status, 401)

  // The catalog: a token granted registry:catalog:* lists what its user may read.
  const catalogToken = await tokenFor('registry:catalog:*', basic('reader', 'password1'))
  const catalog = await oci(node, 'GET', '/v2/_catalog', { auth: bearer(catalogToken) })
  t.is(catalog.status, 200)
  t.deepEqual(((await catalog.json()) as { repositories: string[] }).repositories, ['private/team/app', 'private/team/other'])
  t.is((await oci(node, 'GET', '/v2/_catalog', { auth: bearer(pull) })).status, 401, 'a token without the catalog grant is asked to get one')

  // A tampered token (widened claims, old signature) is refused.
  const [prefix, , mac] = pull.token.split('.')
  const widened = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(pull.token.split('.')[1], 'base64url').toString()), access: [{ type: 'repository', name: 'private/team/app', actions: ['pull', 'push'] }] })).toString('base64url')
  t.is((await oci(node, 'POST', '/v2/private/team/app/blobs/uploads/', { auth: `Bearer ${prefix}.${widened}.${mac}` })).status, 401)
})
