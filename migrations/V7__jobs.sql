-- V7: long operations (index rebuild, backup, archive verification) run as background
-- jobs that outlive the request that started them. One row per job: what, who, when,
-- and how it ended, readable after a restart (src/db/jobs.rs). A job still `running`
-- when a server starts was cut short by the previous one's end: it becomes
-- `interrupted`.
CREATE TABLE jobs (
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('running', 'succeeded', 'failed', 'interrupted')),
    actor       TEXT NOT NULL,
    target      TEXT,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    result      TEXT,                           -- JSON
    error       TEXT
);
CREATE INDEX jobs_kind ON jobs (kind, id);
