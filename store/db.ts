// SQLite metadata: WAL, foreign keys, and forward-only schema migrations recorded in user_version.
import Database from 'better-sqlite3'

// Each entry moves the schema from version i to i+1. Never edit a released migration; append.
export const MIGRATIONS: readonly string[] = [
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
  `,
  `
  -- The mesh. Each change row says where it happened (origin NULL: this node; else the peer ID
  -- of the origin and its seq there) and carries the resulting state of what it changed
  -- (detail: files, metadata, tag), enough to rebuild its manifest and to re-fold a package.
  ALTER TABLE changes ADD COLUMN origin TEXT;
  ALTER TABLE changes ADD COLUMN origin_seq INTEGER;
  CREATE UNIQUE INDEX changes_origin ON changes (origin, origin_seq) WHERE origin IS NOT NULL;
  CREATE INDEX changes_package ON changes (repo, name);
  -- Rows from before the mesh lack that state: they are kept as history, neither signed nor
  -- folded, and replaced by a baseline of what exists now (signed like any local change).
  UPDATE changes SET origin = 'pre-mesh', origin_seq = seq;
  INSERT INTO changes (kind, repo, name, version, detail, at)
    SELECT 'delete', t.repo, t.name, t.version, '{}', t.deleted_at FROM tombstones t
    WHERE NOT EXISTS (SELECT 1 FROM artifacts a WHERE a.repo = t.repo AND a.name = t.name AND a.version = t.version)
    ORDER BY t.deleted_at;
  INSERT INTO changes (kind, repo, name, version, detail, at)
    SELECT 'publish', a.repo, a.name, a.version, json_object(
      -- json(): SQLite >= 3.45 drops the JSON subtype of a subquery's result, which would embed
      -- the array as a string.
      'files', json((SELECT json_group_array(json_object('filename', f.filename, 'cid', f.cid))
                FROM (SELECT filename, cid FROM files WHERE artifact_id = a.id ORDER BY filename) f)),
      'metadata', json(a.metadata)), a.updated_at
    FROM artifacts a ORDER BY a.updated_at, a.id;
  INSERT INTO changes (kind, repo, name, version, detail, at)
    SELECT 'tag', repo, name, version, json_object('tag', tag), CAST(unixepoch('subsec') * 1000 AS INTEGER)
    FROM tags ORDER BY repo, name, tag;
  -- Blobs known from a manifest whose bytes are not here yet (present = 0): files may name them
  -- (the mesh fetches them later), but the store neither serves nor lists them.
  ALTER TABLE blobs ADD COLUMN present INTEGER NOT NULL DEFAULT 1;
  -- BLAKE3 of the concatenated chunk hashes (hex), as signed in manifests.
  ALTER TABLE blobs ADD COLUMN chunk_root TEXT;
  -- Every manifest this node holds, its own and others', for catch-up and forwarding.
  CREATE TABLE manifests (
    origin TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    repo TEXT NOT NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    envelope BLOB NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (origin, seq)
  ) WITHOUT ROWID;
  -- Manifests that lost a conflict (same immutable version, different files, another origin).
  CREATE TABLE conflicts (
    loser_origin TEXT NOT NULL,
    loser_seq INTEGER NOT NULL,
    repo TEXT NOT NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    winner_origin TEXT NOT NULL,
    winner_seq INTEGER NOT NULL,
    detected_at INTEGER NOT NULL,
    PRIMARY KEY (loser_origin, loser_seq)
  );
  `,
  `
  -- Each manifest names its origin's previous seq, so holes are visible (store/manifests.ts).
  -- Rows from before: the previous seq held stands in.
  ALTER TABLE manifests ADD COLUMN prev INTEGER NOT NULL DEFAULT 0;
  UPDATE manifests SET prev = COALESCE(
    (SELECT MAX(p.seq) FROM manifests p WHERE p.origin = manifests.origin AND p.seq < manifests.seq), 0);
  CREATE INDEX manifests_prev ON manifests (origin, prev);
  -- Per origin, the contiguous watermark: every manifest up to seq is held.
  CREATE TABLE manifest_origins (
    origin TEXT PRIMARY KEY,
    seq INTEGER NOT NULL
  ) WITHOUT ROWID;
  INSERT INTO manifest_origins (origin, seq) SELECT origin, MAX(seq) FROM manifests GROUP BY origin;
  `,
  `
  -- Equivocation evidence: every envelope seen for an (origin, seq) that has more than one. The
  -- manifest log holds the one with the lowest hash (store/apply.ts).
  CREATE TABLE equivocations (
    origin TEXT NOT NULL,
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    envelope BLOB NOT NULL,
    detected_at INTEGER NOT NULL,
    PRIMARY KEY (origin, seq, hash)
  ) WITHOUT ROWID;
  `,
  `
  -- When each cached blob (of a remote repository's artifact) was last served here: the order in
  -- which quota eviction and cache prune drop bytes (store/cache-use.ts). Local to this node,
  -- never replicated; written in batches, not per request.
  CREATE TABLE cache_use (
    cid TEXT PRIMARY KEY,
    used_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  `,
  `
  -- The manifests of one artifact version, for a peer's lookup (mesh/lookup.ts).
  CREATE INDEX manifests_version ON manifests (repo, name, version);
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
