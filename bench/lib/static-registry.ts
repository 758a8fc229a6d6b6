// A floor for npm install: nginx serving pre-rendered abbreviated packuments and tarballs from
// files (gzip level 1, keep-alive, sendfile), so an install against it costs npm's own work
// plus the least any server can do. The documents are akmesh's own (same bytes npm parses),
// with tarball URLs pointing at nginx.
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { startNginx } from './nginx.ts'
import { escapeName, pool } from './npm-publish.ts'
import { tempDir } from './proc.ts'
import type { Registry } from './types.ts'

const ABBREVIATED = 'application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*'

/** Copies every package of `names` from `source` (an npm registry URL) into files nginx serves. */
export async function startStaticRegistry (source: string, names: string[]): Promise<Registry> {
  const root = tempDir('static-registry')
  chmodSync(root, 0o755) // nginx's workers run as another user (nobody) when started by root
  const nginx = await startNginx(root, {
    gzip: true,
    // npm asks /<name> (scoped: /@scope%2fname, which nginx decodes to /@scope/name); the
    // documents are files pk/<name>.json, tarballs live under /t/.
    server: '    location /t/ { }\n    location / { default_type application/json; try_files /pk$uri.json =404; }\n'
  })
  const base = `${nginx.url}/t/`
  // Asked by another host name than npm uses: akmesh keys its rendered packuments by base URL, so
  // the copy leaves the documents npm will ask for unrendered (a cold install stays cold).
  source = source.replace('//127.0.0.1:', '//localhost:')
  await pool(names, 8, async (name) => {
    const res = await fetch(`${source}${escapeName(name)}`, { headers: { accept: ABBREVIATED } })
    if (!res.ok) throw new Error(`static registry: GET ${name} from ${source} -> ${res.status}`)
    const doc = await res.json() as { versions: Record<string, { dist: { tarball: string } }> }
    for (const v of Object.values(doc.versions)) {
      const from = v.dist.tarball
      if (!from.startsWith(source)) throw new Error(`static registry: tarball URL ${from} is not under ${source}`)
      const rel = from.slice(source.length)
      const tgz = await fetch(from)
      if (!tgz.ok) throw new Error(`static registry: GET ${from} -> ${tgz.status}`)
      const file = join(root, 't', rel)
      mkdirSync(dirname(file), { recursive: true })
      writeFileSync(file, Buffer.from(await tgz.arrayBuffer()))
      v.dist.tarball = `${base}${rel}`
    }
    const file = join(root, 'pk', `${name}.json`)
    mkdirSync(dirname(file), { recursive: true })
    writeFileSync(file, JSON.stringify(doc))
  })
  return { name: 'nginx-static', registry: `${nginx.url}/`, token: '', stop: nginx.stop }
}
