// Repository membership of blobs: a blob's bytes are stored once, but a format that serves
// blobs by digest (OCI) answers only for the (repository, name) pairs the blob was pushed or
// mounted into, so read access to one image never exposes another's layers.
import type { DB } from './db.ts'

export class BlobLinks {
  readonly #s

  constructor (db: DB) {
    this.#s = {
      link: db.prepare('INSERT OR IGNORE INTO blob_links (repo, name, cid, created_at) VALUES (?, ?, ?, ?)'),
      unlink: db.prepare('DELETE FROM blob_links WHERE repo = ? AND name = ? AND cid = ?'),
      has: db.prepare<[string, string, string], { one: number }>('SELECT 1 AS one FROM blob_links WHERE repo = ? AND name = ? AND cid = ?')
    }
  }

  link (repo: string, name: string, cid: string): void {
    this.#s.link.run(repo, name, cid, Date.now())
  }

  /** False if the blob was not linked there. */
  unlink (repo: string, name: string, cid: string): boolean {
    return this.#s.unlink.run(repo, name, cid).changes > 0
  }

  has (repo: string, name: string, cid: string): boolean {
    return this.#s.has.get(repo, name, cid) != null
  }
}
