// Which artifacts this node's remote repositories are getting right now, and how far along: still
// asking the mesh, or fetching from upstream. A peer's lookup (mesh/lookup.ts) reads it: a node
// fetching what a peer asks for makes the peer wait for that fetch instead of fetching too, and
// of two nodes both still asking, one (the lower peer ID) goes upstream and the other waits, so
// sites installing the same tree at the same time still fetch each blob once per mesh.
export type ContentPhase = 'looking' | Promise<void>

export class ContentProgress {
  readonly #phases = new Map<string, ContentPhase>()

  /** Marks (repo, name, version) as being looked up or fetched; returns a function that clears
   *  the mark (only if it is still this one). */
  mark (repo: string, name: string, version: string, phase: ContentPhase): () => void {
    const key = JSON.stringify([repo, name, version])
    this.#phases.set(key, phase)
    return () => { if (this.#phases.get(key) === phase) this.#phases.delete(key) }
  }

  /** 'looking' while the mesh is asked, the fetch (settles when it ends) while upstream is. */
  phase (repo: string, name: string, version: string): ContentPhase | undefined {
    return this.#phases.get(JSON.stringify([repo, name, version]))
  }
}
