// Every format the node can serve. Adding a format: one folder, one line here and one in
// catalog.ts (what config validation knows of it without loading it).
import type { FormatHandler } from './format.ts'
import { FORMAT_CATALOG } from './catalog.ts'
import { npmFormat } from './npm/index.ts'
import { genericFormat } from './generic/index.ts'
import { ociFormat } from './oci/index.ts'
import { pypiFormat } from './pypi/index.ts'

export const FORMATS: readonly FormatHandler[] = [npmFormat, genericFormat, ociFormat, pypiFormat]

// The catalog must describe exactly these handlers: a config it accepted must be one they serve.
for (const f of FORMATS) {
  const facts = FORMAT_CATALOG.find(c => c.name === f.name)
  if (facts == null || facts.remote !== (f.remote != null) || facts.virtual !== (f.virtual === true)) {
    throw new Error(`protocols/catalog.ts does not describe format "${f.name}" as its handler is (remote: ${f.remote != null}, virtual: ${f.virtual === true})`)
  }
}
if (FORMAT_CATALOG.length !== FORMATS.length) throw new Error('protocols/catalog.ts lists a format protocols/registry.ts does not have')

export const formatByName = (name: string): FormatHandler | undefined => FORMATS.find(f => f.name === name)
