-- V6: a counter that moves whenever anything an API token's verification depends on
-- changes: a token revoked, re-scoped or deleted (not its last_used_at, which every use
-- touches), a user changed or deleted. A server remembers the tokens it verified only
-- while the counter stands still (src/db/auth_epoch.rs); triggers count every change,
-- whichever process or tool makes it.
CREATE TABLE auth_epoch (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  INTEGER NOT NULL
) STRICT;
INSERT INTO auth_epoch (id, n) VALUES (1, 0);

CREATE TRIGGER api_tokens_auth_epoch_update
AFTER UPDATE OF id, user_id, name, role, prefix, secret_hash, created_by, created_at, expires_at, revoked_at
ON api_tokens
BEGIN
    UPDATE auth_epoch SET n = n + 1 WHERE id = 1;
END;

CREATE TRIGGER api_tokens_auth_epoch_delete AFTER DELETE ON api_tokens
BEGIN
    UPDATE auth_epoch SET n = n + 1 WHERE id = 1;
END;

CREATE TRIGGER users_auth_epoch_update AFTER UPDATE ON users
BEGIN
    UPDATE auth_epoch SET n = n + 1 WHERE id = 1;
END;

CREATE TRIGGER users_auth_epoch_delete AFTER DELETE ON users
BEGIN
    UPDATE auth_epoch SET n = n + 1 WHERE id = 1;
END;
