// Manifest gossip: one gossipsub topic per mesh. Every envelope this node signs or newly applies
// is published; a received one is verified and applied inside the topic validator, so gossipsub
// forwards only what verified (Reject penalises the sender, Ignore drops duplicates quietly).
// Message ids are the SHA-256 of the envelope (StrictNoSign, see mesh/libp2p.ts): the same
// manifest published by two nodes is one message, so re-publishing never loops. Revocations
// (mesh/revocations.ts) share the topic: the receiver tells them apart by their payload type.
import { TopicValidatorResult } from '@libp2p/gossipsub'
import type { PeerId } from '@libp2p/interface'
import type { Logger } from 'pino'
import type { MeshLibp2p } from './libp2p.ts'
import type { ManifestReceiver } from './replication.ts'
import { describeError } from './errors.ts'

export const manifestTopic = (mesh: string): string => `akmesh/${mesh}/manifests/1`

export interface GossipInit {
  libp2p: MeshLibp2p
  mesh: string
  receiver: ManifestReceiver
  log: Logger
  /** Gossip relayed by a peer that is not a member is dropped unread. */
  isMember?: (peer: string) => boolean
}

export class ManifestGossip {
  readonly topic: string
  readonly #i: GossipInit
  readonly #log: Logger

  constructor (init: GossipInit) {
    this.#i = init
    this.topic = manifestTopic(init.mesh)
    this.#log = init.log.child({ component: 'mesh:gossip' })
  }

  start (): void {
    const pubsub = this.#i.libp2p.services.pubsub
    pubsub.topicValidators.set(this.topic, async (from: PeerId, msg) => await this.#validate(from, msg.data))
    pubsub.subscribe(this.topic)
  }

  stop (): void {
    const pubsub = this.#i.libp2p.services.pubsub
    pubsub.topicValidators.delete(this.topic)
    try { pubsub.unsubscribe(this.topic) } catch {}
  }

  /** Publishes an envelope; a duplicate (already seen) is not an error. */
  publish (envelope: Uint8Array): void {
    this.#i.libp2p.services.pubsub.publish(this.topic, envelope).catch((err: any) => {
      this.#log.warn({ error: describeError(err) }, 'publishing a manifest failed')
    })
  }

  async #validate (from: PeerId, data: Uint8Array): Promise<TopicValidatorResult> {
    if (this.#i.isMember?.(from.toString()) === false) return TopicValidatorResult.Reject
    const r = await this.#i.receiver.receive(data, { via: 'gossip', peer: from.toString() })
    if (r === 'rejected') return TopicValidatorResult.Reject
    return r === 'new' ? TopicValidatorResult.Accept : TopicValidatorResult.Ignore
  }
}
