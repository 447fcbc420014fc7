-- embedgate schema, SQLite. Timestamps are Unix milliseconds; flags are
-- integers 0/1; lists and maps are JSON text. Ids are AUTOINCREMENT: an id is
-- never reused, so nothing that names a deleted row (a session cookie names
-- its user) can ever name a new one.

CREATE TABLE settings (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    document TEXT NOT NULL
);

CREATE TABLE admin_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

CREATE TABLE clients (
    client_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    secret TEXT,
    previous_secret TEXT,
    previous_valid_until INTEGER,
    public_key_pem TEXT,
    jwks_url TEXT,
    allowed_origins TEXT NOT NULL,
    allowed_teams TEXT NOT NULL,
    allow_internal_users INTEGER NOT NULL,
    status TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE account_types (
    name TEXT PRIMARY KEY,
    permissions TEXT NOT NULL,
    builtin INTEGER NOT NULL DEFAULT 0
);

INSERT INTO account_types (name, permissions, builtin) VALUES
    ('Viewer', '["view"]', 1),
    ('Explorer', '["view","explore","export"]', 1),
    ('Creator', '["view","explore","export","edit"]', 1);

CREATE TABLE teams (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    visibility TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    email TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    first_name TEXT,
    last_name TEXT,
    account_type TEXT NOT NULL REFERENCES account_types(name),
    attributes TEXT NOT NULL,
    client_id TEXT,
    session_epoch INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    last_seen_at INTEGER
);

CREATE TABLE memberships (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    team_id INTEGER NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, team_id)
);
CREATE INDEX memberships_by_team ON memberships (team_id);

CREATE TABLE workspaces (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    parent_id INTEGER REFERENCES workspaces(id),
    created_at INTEGER NOT NULL
);

CREATE TABLE workbooks (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    workspace_id INTEGER REFERENCES workspaces(id),
    source TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE workbook_tags (
    workbook_id TEXT NOT NULL REFERENCES workbooks(id) ON DELETE CASCADE,
    tag TEXT NOT NULL,
    source TEXT NOT NULL,
    PRIMARY KEY (workbook_id, tag)
);

CREATE TABLE grants (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    team_id INTEGER NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    workbook_id TEXT REFERENCES workbooks(id) ON DELETE CASCADE,
    workspace_id INTEGER REFERENCES workspaces(id) ON DELETE CASCADE,
    level TEXT NOT NULL,
    tag TEXT,
    -- one grant per team, target and version
    target_key TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (team_id, target_key),
    CHECK ((workbook_id IS NULL) <> (workspace_id IS NULL))
);

CREATE TABLE used_jtis (
    client_id TEXT NOT NULL,
    jti TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX used_jtis_by_expiry ON used_jtis (expires_at);

CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    event TEXT NOT NULL,
    request_id TEXT,
    client_id TEXT,
    email TEXT,
    workbook TEXT,
    outcome TEXT NOT NULL,
    code TEXT,
    remote_addr TEXT,
    note TEXT
);
CREATE INDEX audit_by_at ON audit (at);
CREATE INDEX audit_by_email ON audit (email);
