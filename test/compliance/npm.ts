// npm as npm 11 shapes its requests: publish is one JSON PUT with the tarball base64 in
// _attachments (libnpmpublish), reads are packuments, version documents and tarballs.
import { makeTarball, publishBody } from '../helpers/npm-client.ts'
import type { FormatFixture } from './fixture.ts'
import { npmError } from './fixture.ts'
import type { App } from './harness.ts'

const JSON_TYPE = { 'Content-Type': 'application/json' }

async function publishRequest (app: App, name: string, version: string): Promise<{ body: string, tgz: Buffer }> {
  const tgz = await makeTarball(app.root, { name, version, description: `compliance sample ${name}` })
  return { body: JSON.stringify(publishBody(name, version, tgz)), tgz }
}

export const npmFixture: FormatFixture = {
  format: 'npm',

  async publish (app, repo, id) {
    const name = `compliance-${id}`
    const version = '1.0.0'
    const { body, tgz } = await publishRequest(app, name, version)
    const admin = `Bearer ${app.tokens.admin}`
    const r = await app.send('PUT', `/${repo}/${name}`, { body, headers: JSON_TYPE, auth: admin })
    if (r.status !== 201) throw new Error(`npm publish: ${r.status} ${r.text}`)
    const doc = await app.send('GET', `/${repo}/${name}?write=true`, { auth: admin })
    const rev = String(JSON.parse(doc.text)._rev)
    const filename = `${name}-${version}.tgz`
    return {
      name, version, files: [filename],
      downloads: [{ path: `/${repo}/${name}/-/${filename}`, bytes: tgz }],
      documents: [`/${repo}/${name}`, `/${repo}/${name}/${version}`, `/${repo}/${name}/latest`, `/${repo}/-/package/${name}/dist-tags`],
      extra: { rev, filename }
    }
  },

  async writeRoutes (app, repo, p, id) {
    const other = await publishRequest(app, `compliance-${id}`, '1.0.0')
    const { rev, filename } = p.extra
    const doc = JSON.parse((await app.send('GET', `/${repo}/${p.name}?write=true`, { auth: `Bearer ${app.tokens.admin}` })).text)
    const deprecated = { ...doc, versions: { [p.version]: { ...doc.versions[p.version], deprecated: 'compliance' } } }
    return [
      { method: 'PUT', path: `/${repo}/compliance-${id}`, body: other.body, headers: JSON_TYPE },
      { method: 'PUT', path: `/${repo}/${p.name}`, body: JSON.stringify(deprecated), headers: JSON_TYPE },
      { method: 'PUT', path: `/${repo}/${p.name}/-rev/${rev}`, body: JSON.stringify({ ...doc, versions: {} }), headers: JSON_TYPE },
      { method: 'DELETE', path: `/${repo}/${p.name}/-/${filename}/-rev/${rev}` },
      { method: 'DELETE', path: `/${repo}/${p.name}/-rev/${rev}` },
      { method: 'PUT', path: `/${repo}/-/package/${p.name}/dist-tags/beta`, body: JSON.stringify(p.version), headers: JSON_TYPE },
      { method: 'DELETE', path: `/${repo}/-/package/${p.name}/dist-tags/latest` },
      // The document a write is based on is for writers only.
      { method: 'GET', path: `/${repo}/${p.name}?write=true` }
    ]
  },

  traversalTargets: (repo, p) => [
    { method: 'GET', path: `/${repo}/{}` },
    { method: 'GET', path: `/${repo}/@scope/{}` },
    { method: 'GET', path: `/${repo}/${p.name}/{}` },
    { method: 'GET', path: `/${repo}/${p.name}/-/{}` },
    { method: 'GET', path: `/${repo}/-/package/{}/dist-tags` },
    { method: 'PUT', path: `/${repo}/{}`, body: '{"name":"probe","versions":{}}', headers: JSON_TYPE },
    { method: 'PUT', path: `/${repo}/-/package/${p.name}/dist-tags/{}`, body: JSON.stringify(p.version), headers: JSON_TYPE },
    { method: 'DELETE', path: `/${repo}/${p.name}/-/{}/-rev/${p.extra.rev}` }
  ],

  missing: (repo) => `/${repo}/compliance-no-such-package`,
  errorShape: npmError,

  async oversized (repo, limits) {
    // Padding inside the attachment, as a too-large tarball would be: the limit is on the JSON.
    const body = JSON.stringify({ name: 'compliance-oversized', _attachments: { 'x.tgz': { data: 'A'.repeat(limits.metadataBytes) } } })
    return { method: 'PUT', path: `/${repo}/compliance-oversized`, body, headers: JSON_TYPE }
  },

  async truncated (app, repo, _p, id) {
    const { body } = await publishRequest(app, `compliance-${id}`, '1.0.0')
    return [
      { method: 'PUT', path: `/${repo}/compliance-${id}`, body, headers: JSON_TYPE },
      { method: 'PUT', path: `/${repo}/-/package/compliance-${id}/dist-tags/beta`, body: JSON.stringify('1.0.0'), headers: JSON_TYPE }
    ]
  }
}
