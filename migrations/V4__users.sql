-- Users, roles, sessions, API tokens, password-reset links and the audit log.
-- Secrets are never stored: passwords as argon2id PHC strings, session ids, API tokens
-- and reset links as the hex SHA-256 of a 256-bit random value. Times are RFC 3339 UTC
-- with milliseconds (text order is time order).

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    email         TEXT NOT NULL COLLATE NOCASE UNIQUE,
    display_name  TEXT NOT NULL DEFAULT '',
    role          TEXT NOT NULL CHECK (role IN ('admin', 'editor', 'viewer')),
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    password_hash TEXT,                         -- NULL until a password is set
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    last_login_at TEXT
);

CREATE TABLE sessions (
    id_hash      TEXT PRIMARY KEY,              -- sha256 of the cookie value
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token   TEXT NOT NULL,                 -- echoed by the client in X-CSRF-Token
    created_at   TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    expires_at   TEXT NOT NULL,                 -- absolute timeout
    ip           TEXT,
    user_agent   TEXT
) WITHOUT ROWID;
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL CHECK (role IN ('admin', 'editor', 'viewer')),
    prefix       TEXT NOT NULL UNIQUE,          -- public part, shown in listings
    secret_hash  TEXT NOT NULL,                 -- sha256 of the whole token
    created_by   INTEGER REFERENCES users (id) ON DELETE SET NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT,
    last_used_at TEXT,
    revoked_at   TEXT
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

CREATE TABLE password_resets (
    token_hash TEXT PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at    TEXT
) WITHOUT ROWID;
CREATE INDEX password_resets_user ON password_resets (user_id);

-- Security-relevant events. Never holds a password, a hash or a token.
CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY,
    at         TEXT NOT NULL,
    actor_id   INTEGER,                         -- users.id, NULL for anonymous or the CLI
    actor      TEXT NOT NULL,                   -- email, "cli:<user>", "system" or "anonymous"
    action     TEXT NOT NULL,                   -- e.g. auth.login, user.role_change
    target     TEXT,                            -- what it acted on (email, token prefix, archive)
    outcome    TEXT NOT NULL CHECK (outcome IN ('success', 'failure', 'denied')),
    ip         TEXT,
    request_id TEXT,
    details    TEXT                             -- JSON object
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_action ON audit_log (action, id);
