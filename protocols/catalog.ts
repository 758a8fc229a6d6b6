// Every format's name and capabilities, without loading its code: validating the config needs
// only these, and loading every format's routes and parsers (~150 modules) cost CLI commands such
// as `akmesh export` ~0.2 s of start-up. protocols/registry.ts checks, when it loads, that this
// list and the handlers agree.
export interface FormatFacts { name: string, remote: boolean, virtual: boolean }

export const FORMAT_CATALOG: readonly FormatFacts[] = [
  { name: 'npm', remote: true, virtual: true },
  { name: 'generic', remote: true, virtual: true },
  { name: 'oci', remote: true, virtual: true },
  { name: 'pypi', remote: true, virtual: true }
]
