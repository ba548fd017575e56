-- V2: the article knowledge base and the search outbox.
-- AUTOINCREMENT: ids and outbox sequence numbers are never reused after a purge, so an
-- index entry or a cursor can never point at a different article, and the index's
-- "applied up to seq N" payload stays meaningful.
CREATE TABLE articles (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    external_id  TEXT UNIQUE,
    slug         TEXT NOT NULL UNIQUE,
    title        TEXT NOT NULL,
    body         TEXT NOT NULL,
    category     TEXT,
    tags         TEXT NOT NULL DEFAULT '[]',   -- JSON array, mirrored in article_tags
    status       TEXT NOT NULL CHECK (status IN ('draft', 'published')),
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    published_at TEXT,
    deleted_at   TEXT
) STRICT;

-- Listing: newest first (id DESC) within the common filters.
CREATE INDEX articles_by_category ON articles (category, id);
CREATE INDEX articles_by_status ON articles (status, id);
CREATE INDEX articles_by_updated ON articles (updated_at, id);

CREATE TABLE article_tags (
    tag        TEXT NOT NULL,
    article_id INTEGER NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
    PRIMARY KEY (tag, article_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX article_tags_by_article ON article_tags (article_id);

-- Every article write adds a row here in the same transaction; the indexer applies them
-- to the search index, commits with the highest seq as payload, then deletes them.
CREATE TABLE search_outbox (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    article_id INTEGER NOT NULL,
    created_at TEXT NOT NULL
) STRICT;
