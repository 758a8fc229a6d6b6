// SQLite metadata: WAL, foreign keys, and forward-only schema migrations recorded in user_version.
import Database from 'better-sqlite3'

// Each entry moves the schema from version i to i+1. Never edit a released migration; append.
const MIGRATIONS: string[] = [
  `
  CREATE TABLE blobs (
    cid TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    sha512 TEXT NOT NULL,
    sha1 TEXT NOT NULL,
    md5 TEXT,
    chunk_size INTEGER NOT NULL,
    created_at INTEGER NOT NULL
  );
  CREATE INDEX blobs_sha256 ON blobs (sha256);
  CREATE TABLE chunks (
    cid TEXT NOT NULL REFERENCES blobs (cid) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (cid, idx)
  ) WITHOUT ROWID;
  CREATE TABLE repositories (
    name TEXT PRIMARY KEY,
    format TEXT NOT NULL,
    created_at INTEGER NOT NULL
  );
  CREATE TABLE artifacts (
    id INTEGER PRIMARY KEY,
    repo TEXT NOT NULL REFERENCES repositories (name),
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    metadata TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (repo, name, version)
  );
  CREATE TABLE files (
    artifact_id INTEGER NOT NULL REFERENCES artifacts (id) ON DELETE CASCADE,
    filename TEXT NOT NULL,
    cid TEXT NOT NULL REFERENCES blobs (cid),
    PRIMARY KEY (artifact_id, filename)
  );
  CREATE INDEX files_cid ON files (cid);
  CREATE INDEX files_filename ON files (filename);
  CREATE TABLE tags (
    repo TEXT NOT NULL,
    name TEXT NOT NULL,
    tag TEXT NOT NULL,
    version TEXT NOT NULL,
    PRIMARY KEY (repo, name, tag)
  );
  -- Versions that existed once: immutable formats refuse to publish them again.
  CREATE TABLE tombstones (
    repo TEXT NOT NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    deleted_at INTEGER NOT NULL,
    PRIMARY KEY (repo, name, version)
  );
  -- Append-only log of every change, in commit order: what the mesh will sign and replicate.
  CREATE TABLE changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    repo TEXT NOT NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    detail TEXT NOT NULL,
    at INTEGER NOT NULL
  );
  CREATE TABLE users (
    name TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    scopes TEXT NOT NULL,
    repos TEXT NOT NULL,
    created_at INTEGER NOT NULL
  );
  CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL,
    description TEXT NOT NULL,
    scopes TEXT NOT NULL,
    repos TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER
  );
  `,
  `
  -- Which blobs each (repository, name) may serve. OCI scopes blob reads, deletes and mounts to
  -- the image names a blob was pushed or mounted into, while the bytes are stored once.
  CREATE TABLE blob_links (
    repo TEXT NOT NULL,
    name TEXT NOT NULL,
    cid TEXT NOT NULL REFERENCES blobs (cid),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (repo, name, cid)
  ) WITHOUT ROWID;
  CREATE INDEX blob_links_cid ON blob_links (cid);
  `
]

export type DB = Database.Database

export function openDatabase (file: string): DB {
  const db = new Database(file)
  db.pragma('journal_mode = WAL')
  db.pragma('synchronous = FULL') // an acknowledged publish survives power loss, not just a crash
  db.pragma('foreign_keys = ON')
  db.pragma('busy_timeout = 5000') // the CLI may open the same file while the node runs
  migrate(db)
  return db
}

function migrate (db: DB): void {
  const current = db.pragma('user_version', { simple: true }) as number
  if (current > MIGRATIONS.length) {
    throw new Error(`database schema version ${current} is newer than this akmesh (${MIGRATIONS.length}); upgrade akmesh`)
  }
  for (let v = current; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v])
      db.pragma(`user_version = ${v + 1}`)
    }).immediate()
  }
}
