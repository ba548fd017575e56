-- V1: facts about this installation. Later capabilities add their own migrations;
-- an applied migration is never edited (migrate validate refuses a changed checksum).
CREATE TABLE app_meta (
    key        TEXT PRIMARY KEY NOT NULL CHECK (length(key) BETWEEN 1 AND 100),
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;

-- A random id that stays with the data (and its backups), for telling installations apart.
INSERT INTO app_meta (key, value) VALUES
    ('instance_id', lower(hex(randomblob(16)))),
    ('created_at', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
