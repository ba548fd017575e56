-- Backup bookkeeping. The archives live on disk (backups dir); these rows say how each
-- attempt went (for /readyz, the API and `backup list`) and which archives were verified.

-- One row per attempt to create a backup, successful or not.
CREATE TABLE backup_runs (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL,                 -- archive file name
    trigger      TEXT NOT NULL,                 -- manual | api | scheduled
    started_at   TEXT NOT NULL,                 -- RFC 3339 UTC
    duration_ms  INTEGER NOT NULL,
    size_bytes   INTEGER,                       -- archive size (successful runs)
    source_bytes INTEGER,                       -- database + index bytes archived
    ok           INTEGER NOT NULL CHECK (ok IN (0, 1)),
    error        TEXT
);
CREATE INDEX backup_runs_started ON backup_runs (started_at);

-- The latest verification of each archive.
CREATE TABLE backup_verifications (
    name        TEXT PRIMARY KEY,
    verified_at TEXT NOT NULL,
    ok          INTEGER NOT NULL CHECK (ok IN (0, 1)),
    error       TEXT
);
