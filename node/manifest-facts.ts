// What the blob collector and bundle selection need of a stored manifest envelope (the format is
// mesh/manifest.ts's): the blobs it names and whether it replaced its version. Stored envelopes
// were verified when received or signed here, so this only decodes.
import * as dagCbor from '@ipld/dag-cbor'
import type { ManifestFacts } from '../store/current-manifests.ts'

export function manifestFacts (envelope: Uint8Array): ManifestFacts {
  const { payload } = dagCbor.decode<{ payload: Uint8Array }>(envelope)
  const m = dagCbor.decode<{ files?: Array<{ cid: string }>, replace?: boolean }>(payload)
  return { cids: (m.files ?? []).map(f => f.cid), replace: m.replace === true }
}
