// Users and bearer tokens. Secrets are never stored: tokens as sha256 (they are long random
// strings), passwords as scrypt.
import { createHash, randomBytes, scrypt as scryptCb, timingSafeEqual } from 'node:crypto'
import { promisify } from 'node:util'
import type { DB } from './db.ts'
import { conflict, notFound } from './errors.ts'

const scrypt = promisify(scryptCb) as (pw: string, salt: Buffer, len: number) => Promise<Buffer>

export const SCOPES = ['read', 'write', 'admin'] as const
export type Scope = typeof SCOPES[number]

/** Who a request acts as. `repos` lists the repositories the grant covers; '*' means all. */
export interface Principal {
  name: string
  scopes: Scope[]
  repos: string[]
  tokenId?: string
}

export interface TokenInfo extends Principal {
  id: string
  description: string
  createdAt: number
  lastUsedAt: number | null
}

const TOKEN_PREFIX = 'akm_'
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex')

export class Accounts {
  readonly #s

  constructor (db: DB) {
    this.#s = {
      insertToken: db.prepare('INSERT INTO tokens (id, hash, owner, description, scopes, repos, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)'),
      tokenByHash: db.prepare<[string], any>('SELECT * FROM tokens WHERE hash = ?'),
      touch: db.prepare('UPDATE tokens SET last_used_at = ? WHERE id = ?'),
      tokens: db.prepare<[], any>('SELECT * FROM tokens ORDER BY created_at'),
      revoke: db.prepare('DELETE FROM tokens WHERE id = ?'),
      count: db.prepare<[], { n: number }>('SELECT COUNT(*) AS n FROM tokens'),
      user: db.prepare<[string], any>('SELECT * FROM users WHERE name = ?'),
      insertUser: db.prepare('INSERT INTO users (name, password_hash, scopes, repos, created_at) VALUES (?, ?, ?, ?, ?)'),
      users: db.prepare<[], any>('SELECT name, scopes, repos, created_at FROM users ORDER BY name')
    }
  }

  tokenCount (): number { return this.#s.count.get()?.n ?? 0 }

  /** Creates a token and returns its secret: the only time the secret exists outside the client. */
  createToken (p: { owner: string, description?: string, scopes: Scope[], repos: string[] }): { id: string, token: string } {
    const id = randomBytes(6).toString('hex')
    const token = TOKEN_PREFIX + randomBytes(32).toString('base64url')
    this.#s.insertToken.run(id, sha256(token), p.owner, p.description ?? '', JSON.stringify(p.scopes), JSON.stringify(p.repos), Date.now())
    return { id, token }
  }

  resolveToken (token: string): Principal | undefined {
    const row = this.#s.tokenByHash.get(sha256(token))
    if (row == null) return undefined
    // last_used is informational; coarse updates keep reads from turning into writes.
    if (row.last_used_at == null || Date.now() - row.last_used_at > 60_000) this.#s.touch.run(Date.now(), row.id)
    return { name: row.owner, scopes: JSON.parse(row.scopes), repos: JSON.parse(row.repos), tokenId: row.id }
  }

  listTokens (): TokenInfo[] {
    return this.#s.tokens.all().map((r: any) => ({
      id: r.id, name: r.owner, description: r.description, scopes: JSON.parse(r.scopes), repos: JSON.parse(r.repos),
      createdAt: r.created_at, lastUsedAt: r.last_used_at
    }))
  }

  revokeToken (id: string): void {
    if (this.#s.revoke.run(id).changes === 0) throw notFound(`no token with id ${id}`)
  }

  async addUser (name: string, password: string, scopes: Scope[], repos: string[]): Promise<void> {
    if (this.#s.user.get(name) != null) throw conflict(`user ${name} already exists`)
    const salt = randomBytes(16)
    const hash = await scrypt(password, salt, 32)
    this.#s.insertUser.run(name, `scrypt$${salt.toString('hex')}$${hash.toString('hex')}`, JSON.stringify(scopes), JSON.stringify(repos), Date.now())
  }

  hasUser (name: string): boolean { return this.#s.user.get(name) != null }

  /** The user's grant if the password is right, else undefined. */
  async checkPassword (name: string, password: string): Promise<Principal | undefined> {
    const row = this.#s.user.get(name)
    if (row == null) return undefined
    const [, saltHex, hashHex] = String(row.password_hash).split('$')
    const got = await scrypt(password, Buffer.from(saltHex, 'hex'), 32)
    if (!timingSafeEqual(got, Buffer.from(hashHex, 'hex'))) return undefined
    return { name, scopes: JSON.parse(row.scopes), repos: JSON.parse(row.repos) }
  }

  listUsers (): Array<{ name: string, scopes: Scope[], repos: string[] }> {
    return this.#s.users.all().map((r: any) => ({ name: r.name, scopes: JSON.parse(r.scopes), repos: JSON.parse(r.repos) }))
  }
}

/** admin implies write implies read. */
export function grants (p: Principal, scope: Scope, repo: string): boolean {
  const rank = { read: 0, write: 1, admin: 2 }
  const best = Math.max(...p.scopes.map(s => rank[s]), -1)
  return best >= rank[scope] && (p.repos.includes('*') || p.repos.includes(repo))
}
