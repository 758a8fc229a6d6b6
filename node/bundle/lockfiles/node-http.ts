// Requests to the running node a lockfile is resolved through, as its clients make them (the
// remote or virtual repository fetches and caches what is missing on the way).
export interface NodeAt { url: string, token?: string }

export async function nodeGet (node: NodeAt, pathOrUrl: string, headers: Record<string, string>, signal?: AbortSignal): Promise<Response> {
  const url = new URL(pathOrUrl, node.url)
  // Credentials go to the node only, never to a URL on another origin a document named.
  const auth = node.token != null && url.origin === new URL(node.url).origin ? { authorization: `Bearer ${node.token}` } : {}
  return await fetch(url, { headers: { ...headers, ...auth }, signal })
}

/** A failure of the node or its upstream (not an answer about the entry): the export stops. */
export async function nodeFailure (res: Response, what: string): Promise<Error> {
  const text = await res.text().catch(() => '')
  let message = text.slice(0, 500)
  try { message = (JSON.parse(text) as { error?: string }).error ?? message } catch {}
  return new Error(`${what}: the node answered ${res.status}${message !== '' ? ` (${message})` : ''}`)
}

/** Reads a body through the given hashes (no buffering of the whole file). */
export async function hashBody (res: Response, algorithms: string[]): Promise<Record<string, Buffer>> {
  const { createHash } = await import('node:crypto')
  const hashes = algorithms.map(a => createHash(a))
  if (res.body != null) for await (const piece of res.body) for (const h of hashes) h.update(piece)
  return Object.fromEntries(algorithms.map((a, i) => [a, hashes[i].digest()]))
}
