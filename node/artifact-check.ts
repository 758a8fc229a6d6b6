// The one validator of changes made elsewhere (gossip, catch-up, bundles): each format's own
// rules (FormatHandler.validateArtifact), the same code its routes run on local publishes.
import { formatByName } from '../protocols/registry.ts'
import { badRequest } from '../store/errors.ts'
import type { RemoteChange } from '../store/changes.ts'

/** Throws BadRequest, naming the rule, unless `change` is valid in `format`. */
export function checkReplicatedArtifact (format: string, change: RemoteChange): void {
  const handler = formatByName(format)
  if (handler == null) throw badRequest(`unknown format "${format}"`)
  handler.validateArtifact?.(change)
}
