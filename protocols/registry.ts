// Every format the node can serve. Adding a format: one folder, one line here.
import type { FormatHandler } from './format.ts'
import { npmFormat } from './npm/index.ts'
import { genericFormat } from './generic/index.ts'
import { ociFormat } from './oci/index.ts'
import { pypiFormat } from './pypi/index.ts'

export const FORMATS: readonly FormatHandler[] = [npmFormat, genericFormat, ociFormat, pypiFormat]

export const formatByName = (name: string): FormatHandler | undefined => FORMATS.find(f => f.name === name)
