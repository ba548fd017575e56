-- Error tracking: unexpected errors (5xx answers, failed background jobs and backups,
-- panics) grouped by fingerprint. Messages are stored with personal data removed.
CREATE TABLE error_groups (
    fingerprint     TEXT PRIMARY KEY,          -- hex, from category|component|operation|normalised message
    category        TEXT NOT NULL CHECK (category IN ('database', 'validation', 'authentication', 'network', 'business_logic', 'system')),
    severity        TEXT NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    component       TEXT NOT NULL,             -- http, indexer, backup, scheduler, …
    operation       TEXT NOT NULL,             -- e.g. "POST /api/articles", "backup.create"
    message         TEXT NOT NULL,             -- the latest occurrence, scrubbed
    count           INTEGER NOT NULL,
    first_seen      TEXT NOT NULL,
    last_seen       TEXT NOT NULL,
    last_request_id TEXT
) WITHOUT ROWID;
CREATE INDEX error_groups_last_seen ON error_groups (last_seen);
