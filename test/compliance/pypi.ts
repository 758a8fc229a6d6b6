// PyPI as twine shapes an upload (multipart POST to the legacy API, Basic __token__) and as pip
// reads: the Simple API and /packages/ downloads.
import { makeWheel, uploadForm } from '../helpers/pypi-dists.ts'
import type { FormatFixture } from './fixture.ts'
import { pypiError } from './fixture.ts'
import type { Probe } from './harness.ts'

/** A multipart form as bytes and the Content-Type (with boundary) that goes with them. */
async function encodeForm (form: FormData): Promise<{ body: Buffer, headers: Record<string, string> }> {
  const req = new Request('http://127.0.0.1/', { method: 'POST', body: form })
  return { body: Buffer.from(await req.arrayBuffer()), headers: { 'Content-Type': req.headers.get('content-type') as string } }
}

async function uploadProbe (path: string, name: string, version: string, fields: Record<string, string | null> = {}, padding?: number): Promise<Probe> {
  const wheel = await makeWheel(name, version)
  if (padding != null) wheel.bytes = Buffer.concat([wheel.bytes, Buffer.alloc(padding)])
  const { body, headers } = await encodeForm(await uploadForm(wheel, name, version, fields))
  return { method: 'POST', path, body, headers }
}

export const pypiFixture: FormatFixture = {
  format: 'pypi',
  credentials: (token) => 'Basic ' + Buffer.from(`__token__:${token}`).toString('base64'),

  async publish (app, repo, id) {
    const name = `compliance-${id}`
    const wheel = await makeWheel(name, '1.0')
    const { body, headers } = await encodeForm(await uploadForm(wheel, name, '1.0'))
    const r = await app.send('POST', `/${repo}/`, { body, headers, auth: pypiFixture.credentials?.(app.tokens.admin) })
    if (r.status !== 200) throw new Error(`pypi upload: ${r.status} ${r.statusMessage} ${r.text}`)
    const metadata = wheel.filename + '.metadata'
    return {
      name, version: '1.0', files: [wheel.filename, metadata],
      downloads: [
        { path: `/${repo}/packages/${name}/${wheel.filename}`, bytes: wheel.bytes },
        { path: `/${repo}/packages/${name}/${metadata}`, bytes: Buffer.from(wheel.metadata) }
      ],
      documents: [`/${repo}/simple/`, `/${repo}/simple/${name}/`],
      extra: { filename: wheel.filename }
    }
  },

  async writeRoutes (_app, repo, p, id) {
    const form = { 'Content-Type': 'application/x-www-form-urlencoded' }
    return [
      await uploadProbe(`/${repo}/`, `compliance-${id}`, '1.0'),
      await uploadProbe(`/${repo}/legacy/`, `compliance-${id}`, '1.0'),
      await uploadProbe(`/${repo}/`, p.name, '2.0'),
      { method: 'POST', path: `/${repo}/-/yank/${p.name}/${p.version}`, body: 'reason=compliance', headers: form },
      { method: 'POST', path: `/${repo}/-/unyank/${p.name}/${p.version}`, body: '', headers: form }
    ]
  },

  traversalTargets: (repo, p) => [
    { method: 'GET', path: `/${repo}/simple/{}/` },
    { method: 'GET', path: `/${repo}/packages/{}/${p.extra.filename}` },
    { method: 'GET', path: `/${repo}/packages/${p.name}/{}` },
    { method: 'POST', path: `/${repo}/-/yank/{}/1.0` },
    { method: 'POST', path: `/${repo}/-/yank/${p.name}/{}` }
  ],

  missing: (repo) => `/${repo}/packages/compliance-none/compliance_none-1.0-py3-none-any.whl`,
  errorShape: pypiError,

  async oversized (repo, limits) {
    return await uploadProbe(`/${repo}/`, 'compliance-oversized', '1.0', {}, limits.uploadBytes)
  },

  // Every state an upload can be in when its body stops: accepted so far, refused before the
  // file part (a missing field, a file that exists), and the file part before the fields.
  async truncated (_app, repo, p, id) {
    const name = `compliance-${id}`
    const wheel = await makeWheel(name, '1.0')
    const contentFirst = await encodeForm(await uploadForm(wheel, name, '1.0', {}, { contentFirst: true }))
    return [
      await uploadProbe(`/${repo}/`, name, '1.0', {}, 256 * 1024),
      await uploadProbe(`/${repo}/`, name, '1.0', { version: null }, 256 * 1024),
      await uploadProbe(`/${repo}/`, p.name, p.version, {}, 0),
      { method: 'POST', path: `/${repo}/`, ...contentFirst }
    ]
  }
}
