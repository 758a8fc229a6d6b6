// Generic files as curl and Artifactory-style clients send them: PUT the bytes, GET them back.
import type { FormatFixture } from './fixture.ts'
import { jsonError } from './fixture.ts'

/** Bytes that name their artifact, long enough for ranges. */
export const sampleBytes = (label: string, size = 4096) =>
  Buffer.from(Array.from({ length: size }, (_, i) => (i * 31 + label.length * 7 + label.charCodeAt(i % label.length)) % 256))

export const genericFixture: FormatFixture = {
  format: 'generic',

  async publish (app, repo, id) {
    const name = `compliance/${id}/sample.bin`
    const bytes = sampleBytes(`${repo}/${name}`)
    const r = await app.send('PUT', `/${repo}/${name}`, {
      body: bytes, headers: { 'Content-Type': 'application/octet-stream' }, auth: `Bearer ${app.tokens.admin}`
    })
    if (r.status !== 201) throw new Error(`generic PUT: ${r.status} ${r.text}`)
    return {
      name, version: '', files: ['sample.bin'],
      downloads: [{ path: `/${repo}/${name}`, bytes }],
      documents: [`/${repo}/compliance/${id}/`],
      extra: {}
    }
  },

  async writeRoutes (_app, repo, p, id) {
    return [
      { method: 'PUT', path: `/${repo}/compliance/${id}/new.bin`, body: 'new file', headers: { 'Content-Type': 'application/octet-stream' } },
      { method: 'PUT', path: `/${repo}/${p.name}`, body: 'replacement', headers: { 'Content-Type': 'application/octet-stream' } },
      { method: 'DELETE', path: `/${repo}/${p.name}` }
    ]
  },

  traversalTargets: (repo) => [
    { method: 'GET', path: `/${repo}/{}` },
    { method: 'GET', path: `/${repo}/dir/{}` },
    { method: 'GET', path: `/${repo}/{}/` },
    { method: 'PUT', path: `/${repo}/dir/{}`, body: 'probe' },
    { method: 'DELETE', path: `/${repo}/{}` }
  ],

  missing: (repo) => `/${repo}/compliance/no-such-file.bin`,
  errorShape: jsonError,

  async oversized (repo, limits) {
    return { method: 'PUT', path: `/${repo}/compliance/oversized.bin`, body: sampleBytes('big', limits.uploadBytes + 1) }
  },

  async truncated (_app, repo, _p, id) {
    return [{ method: 'PUT', path: `/${repo}/compliance/${id}/truncated.bin`, body: sampleBytes('truncated', 256 * 1024) }]
  }
}
