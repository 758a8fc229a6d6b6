// A PEP 503 / PEP 691 index served by a real nginx, the upstream of remote PyPI repository tests:
// JSON when Accept asks for it (as pip does), HTML otherwise, or HTML only for projects written
// that way (as pypiserver serves). Pages and files are written by the test, so it can also make
// the upstream lie (a wrong sha256, an error page where the index belongs).
import type { ExecutionContext } from 'ava'
import { startNginx, type Nginx } from './nginx.ts'
import { sha256, type Dist } from './pypi-dists.ts'

export const SIMPLE_JSON = 'application/vnd.pypi.simple.v1+json'

/** nginx picks index.json or index.html by Accept (a map: `if` in a location would lose its
 *  try_files); a project without index.json gets HTML. */
const NEGOTIATION_MAP = `map $http_accept $simple_index { default index.html; "~*application/vnd\\.pypi\\.simple\\.v1\\+json" index.json; }`
const NEGOTIATION = `
    location ^~ /simple/akm-plain/ { types { } default_type text/plain; try_files /simple/akm-plain/index.json =404; }
    location /simple/ {
      types { ${SIMPLE_JSON} json; text/html html; }
      try_files $uri$simple_index $uri/index.html =404;
    }`

export interface UpstreamFileSpec {
  dist: Dist
  yanked?: string
  requiresPython?: string
  /** Serve `<file>.metadata` and announce it (PEP 658). */
  metadata?: boolean
  /** Bytes served instead of the dist's (the index still names the dist's sha256). */
  servedBytes?: Buffer
}

export interface PypiUpstream {
  nginx: Nginx
  /** Writes a project's page(s) and files; `html: true` writes the HTML page only. */
  project (name: string, files: UpstreamFileSpec[], opts?: { html?: boolean }): Promise<void>
  /** GET requests nginx saw whose path contains `fragment`. */
  gets (fragment: string): Promise<number>
}

export async function startPypiUpstream (t: ExecutionContext): Promise<PypiUpstream> {
  const nginx = await startNginx(t, { http: NEGOTIATION_MAP, server: NEGOTIATION })
  const projects: string[] = []
  const writeList = async () => {
    await nginx.put('simple/index.json', JSON.stringify({ meta: { 'api-version': '1.1' }, projects: projects.map(name => ({ name })) }))
    await nginx.put('simple/index.html', `<!DOCTYPE html><html><body>${projects.map(p => `<a href="${p}/">${p}</a>`).join('\n')}</body></html>`)
  }
  return {
    nginx,
    gets: async (fragment) => (await nginx.log()).filter(l => l.startsWith('GET ') && l.includes(fragment)).length,
    async project (name, files, opts = {}) {
      for (const f of files) {
        await nginx.put(`files/${f.dist.filename}`, f.servedBytes ?? f.dist.bytes)
        if (f.metadata === true) await nginx.put(`files/${f.dist.filename}.metadata`, f.dist.metadata)
      }
      // Relative URLs, as pypiserver writes them: the proxy must resolve them against the page.
      const href = (f: UpstreamFileSpec) => `../../files/${f.dist.filename}`
      const json = {
        meta: { 'api-version': '1.1' },
        name,
        files: files.map(f => ({
          filename: f.dist.filename,
          url: href(f),
          hashes: { sha256: sha256(f.dist.bytes) },
          ...(f.requiresPython != null ? { 'requires-python': f.requiresPython } : {}),
          'core-metadata': f.metadata === true ? { sha256: sha256(f.dist.metadata) } : false,
          yanked: f.yanked ?? false,
          size: f.dist.bytes.length
        }))
      }
      const links = files.map(f => {
        let a = `<a href="${href(f)}#sha256=${sha256(f.dist.bytes)}"`
        if (f.requiresPython != null) a += ` data-requires-python="${f.requiresPython.replace(/</g, '&lt;').replace(/>/g, '&gt;')}"`
        if (f.metadata === true) a += ` data-dist-info-metadata="sha256=${sha256(f.dist.metadata)}"`
        if (f.yanked != null) a += ` data-yanked="${f.yanked}"`
        return `${a}>${f.dist.filename}</a><br/>`
      })
      if (opts.html !== true) await nginx.put(`simple/${name}/index.json`, JSON.stringify(json))
      await nginx.put(`simple/${name}/index.html`, `<!DOCTYPE html>\n<html><head><title>Links for ${name}</title></head><body>\n${links.join('\n')}\n</body></html>\n`)
      if (!projects.includes(name)) projects.push(name)
      await writeList()
    }
  }
}
