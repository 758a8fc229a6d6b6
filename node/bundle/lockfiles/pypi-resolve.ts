// A Python requirement through the node's PyPI repository (remote or virtual): the project's
// Simple API page (PEP 691 JSON), then each file of the pinned version whose sha256 the lockfile
// allows, and its PEP 658 metadata file when the page announces one, as pip asks for them. The
// node caches them verified against its upstream's index; the bytes are checked again here
// against the lockfile's hashes, which `pip install --require-hashes` checks on the far side.
import { normalVersion, splitDistFilename } from '../../../protocols/pypi/names.ts'
import { JSON_TYPE } from '../../../protocols/pypi/simple-render.ts'
import { hashBody, nodeFailure, nodeGet, type NodeAt } from './node-http.ts'
import type { LockfileProblem, PypiEntry, ResolvedArtifact } from './types.ts'

interface PageFile { filename: string, url: string, hashes?: { sha256?: string }, 'core-metadata'?: unknown, 'dist-info-metadata'?: unknown }

export async function resolvePypi (node: NodeAt, repo: string, e: PypiEntry, signal?: AbortSignal): Promise<ResolvedArtifact | LockfileProblem> {
  const what = `${e.where}`
  const version = normalVersion(e.version)
  if (version == null) return { where: e.where, problem: 'unsupported', message: `${what}: ${e.version} is not a PEP 440 version` }
  const pageUrl = `/${encodeURIComponent(repo)}/simple/${encodeURIComponent(e.project)}/`
  const res = await nodeGet(node, pageUrl, { accept: JSON_TYPE }, signal)
  if (res.status === 404) { await res.body?.cancel(); return { where: e.where, problem: 'missing', message: `${what}: ${repo} and its upstream have no project ${e.project}` } }
  if (res.status !== 200) throw await nodeFailure(res, `${what}: the index page of ${e.project}`)
  const page = await res.json() as { files?: PageFile[] }
  const ofVersion = (page.files ?? []).filter(f => {
    const dist = splitDistFilename(f.filename, e.project)
    return dist != null && normalVersion(dist.version) === version
  })
  if (ofVersion.length === 0) return { where: e.where, problem: 'missing', message: `${what}: ${repo} and its upstream have no files of ${e.project} ${e.version}` }
  const allowed = new Set(e.sha256)
  const chosen = ofVersion.filter(f => f.hashes?.sha256 != null && allowed.has(f.hashes.sha256.toLowerCase()))
  if (chosen.length === 0) {
    return {
      where: e.where,
      problem: 'integrity',
      message: `${what}: integrity mismatch: none of the ${ofVersion.length} file(s) of ${e.project} ${e.version} on the index (${ofVersion.map(f => `${f.filename} sha256:${f.hashes?.sha256 ?? '?'}`).join(', ')}) has a sha256 the lockfile pins`
    }
  }
  for (const f of chosen) {
    const file = await nodeGet(node, new URL(f.url, new URL(pageUrl, node.url)).toString(), {}, signal)
    if (file.status !== 200) throw await nodeFailure(file, `${what}: ${f.filename}`)
    const sha256 = (await hashBody(file, ['sha256'])).sha256.toString('hex')
    if (!allowed.has(sha256)) return { where: e.where, problem: 'integrity', message: `${what}: integrity mismatch: ${f.filename} served with sha256 ${sha256}, which the lockfile does not pin` }
    const announced = f['core-metadata'] ?? f['dist-info-metadata']
    if (announced != null && announced !== false) {
      const meta = await nodeGet(node, new URL(f.url + '.metadata', new URL(pageUrl, node.url)).toString(), {}, signal)
      if (meta.status !== 200) throw await nodeFailure(meta, `${what}: ${f.filename}.metadata`)
      await meta.arrayBuffer() // read whole: the node caches it as it streams
    }
  }
  return { name: e.project, version }
}
