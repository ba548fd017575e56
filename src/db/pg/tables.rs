//! The mirror schema: every table that moves to PostgreSQL, its columns with their
//! PostgreSQL types, keys, constraints and indexes. What does not move: `sessions`
//! (signed-in browsers; everyone signs in again), `search_outbox` (the indexer's queue)
//! and `auth_epoch` (a cache counter), and the search index (rebuilt from the data).

/// How a column is stored on each side, and so how it is copied and compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// INTEGER ↔ `bigint`.
    Int,
    /// TEXT ↔ `text`.
    Text,
    /// RFC 3339 text ↔ `timestamptz` (milliseconds).
    Time,
    /// 0/1 ↔ `boolean`.
    Bool,
    /// A JSON array of strings ↔ `text[]`.
    TextArray,
    /// JSON text ↔ `jsonb`.
    Json,
}

impl Kind {
    fn pg_type(self) -> &'static str {
        match self {
            Kind::Int => "bigint",
            Kind::Text => "text",
            Kind::Time => "timestamptz",
            Kind::Bool => "boolean",
            Kind::TextArray => "text[]",
            Kind::Json => "jsonb",
        }
    }
}

#[derive(Debug)]
pub(super) struct Column {
    pub name: &'static str,
    pub kind: Kind,
    pub not_null: bool,
}

#[derive(Debug)]
pub(super) struct Table {
    pub name: &'static str,
    pub columns: &'static [Column],
    /// The primary key: the order rows are copied and compared in.
    pub key: &'static [&'static str],
    /// Table constraints after the columns; `{s}` is the schema.
    pub constraints: &'static [&'static str],
    /// Created after the rows are in; `{s}` is the schema.
    pub indexes: &'static [&'static str],
}

const fn col(name: &'static str, kind: Kind) -> Column {
    Column {
        name,
        kind,
        not_null: true,
    }
}

const fn null(name: &'static str, kind: Kind) -> Column {
    Column {
        name,
        kind,
        not_null: false,
    }
}

use Kind::{Bool, Int, Json, Text, TextArray, Time};

/// In an order that satisfies the foreign keys.
pub(super) const TABLES: &[Table] = &[
    Table {
        name: "app_meta",
        columns: &[
            col("key", Text),
            col("value", Text),
            col("updated_at", Time),
        ],
        key: &["key"],
        constraints: &["PRIMARY KEY (key)"],
        indexes: &[],
    },
    Table {
        name: "users",
        columns: &[
            col("id", Int),
            col("email", Text),
            col("display_name", Text),
            col("role", Text),
            col("disabled", Bool),
            null("password_hash", Text),
            col("created_at", Time),
            col("updated_at", Time),
            null("last_login_at", Time),
        ],
        key: &["id"],
        constraints: &[
            "PRIMARY KEY (id)",
            "CHECK (role IN ('admin', 'editor', 'viewer'))",
        ],
        indexes: &["CREATE UNIQUE INDEX users_email ON {s}.users (lower(email))"],
    },
    Table {
        name: "articles",
        columns: &[
            col("id", Int),
            null("external_id", Text),
            col("slug", Text),
            col("title", Text),
            col("body", Text),
            null("category", Text),
            col("tags", TextArray),
            col("status", Text),
            col("created_at", Time),
            col("updated_at", Time),
            null("published_at", Time),
            null("deleted_at", Time),
        ],
        key: &["id"],
        constraints: &[
            "PRIMARY KEY (id)",
            "UNIQUE (external_id)",
            "UNIQUE (slug)",
            "CHECK (status IN ('draft', 'published'))",
        ],
        indexes: &[
            "CREATE INDEX articles_by_category ON {s}.articles (category, id)",
            "CREATE INDEX articles_by_status ON {s}.articles (status, id)",
            "CREATE INDEX articles_by_updated ON {s}.articles (updated_at, id)",
            "CREATE INDEX articles_by_tags ON {s}.articles USING gin (tags)",
        ],
    },
    Table {
        name: "article_tags",
        columns: &[col("tag", Text), col("article_id", Int)],
        key: &["tag", "article_id"],
        constraints: &[
            "PRIMARY KEY (tag, article_id)",
            "FOREIGN KEY (article_id) REFERENCES {s}.articles (id) ON DELETE CASCADE",
        ],
        indexes: &["CREATE INDEX article_tags_by_article ON {s}.article_tags (article_id)"],
    },
    Table {
        name: "api_tokens",
        columns: &[
            col("id", Int),
            col("user_id", Int),
            col("name", Text),
            col("role", Text),
            col("prefix", Text),
            col("secret_hash", Text),
            null("created_by", Int),
            col("created_at", Time),
            null("expires_at", Time),
            null("last_used_at", Time),
            null("revoked_at", Time),
        ],
        key: &["id"],
        constraints: &[
            "PRIMARY KEY (id)",
            "UNIQUE (prefix)",
            "FOREIGN KEY (user_id) REFERENCES {s}.users (id) ON DELETE CASCADE",
            "FOREIGN KEY (created_by) REFERENCES {s}.users (id) ON DELETE SET NULL",
            "CHECK (role IN ('admin', 'editor', 'viewer'))",
        ],
        indexes: &["CREATE INDEX api_tokens_user ON {s}.api_tokens (user_id)"],
    },
    Table {
        name: "password_resets",
        columns: &[
            col("token_hash", Text),
            col("user_id", Int),
            col("created_at", Time),
            col("expires_at", Time),
            null("used_at", Time),
        ],
        key: &["token_hash"],
        constraints: &[
            "PRIMARY KEY (token_hash)",
            "FOREIGN KEY (user_id) REFERENCES {s}.users (id) ON DELETE CASCADE",
        ],
        indexes: &["CREATE INDEX password_resets_user ON {s}.password_resets (user_id)"],
    },
    Table {
        name: "audit_log",
        columns: &[
            col("id", Int),
            col("at", Time),
            // No foreign key: an entry outlives the user it names.
            null("actor_id", Int),
            col("actor", Text),
            col("action", Text),
            null("target", Text),
            col("outcome", Text),
            null("ip", Text),
            null("request_id", Text),
            null("details", Json),
        ],
        key: &["id"],
        constraints: &[
            "PRIMARY KEY (id)",
            "CHECK (outcome IN ('success', 'failure', 'denied'))",
        ],
        indexes: &[
            "CREATE INDEX audit_log_at ON {s}.audit_log (at)",
            "CREATE INDEX audit_log_action ON {s}.audit_log (action, id)",
            "CREATE INDEX audit_log_target ON {s}.audit_log (target)",
        ],
    },
    Table {
        name: "error_groups",
        columns: &[
            col("fingerprint", Text),
            col("category", Text),
            col("severity", Text),
            col("component", Text),
            col("operation", Text),
            col("message", Text),
            col("count", Int),
            col("first_seen", Time),
            col("last_seen", Time),
            null("last_request_id", Text),
        ],
        key: &["fingerprint"],
        constraints: &["PRIMARY KEY (fingerprint)"],
        indexes: &["CREATE INDEX error_groups_last_seen ON {s}.error_groups (last_seen)"],
    },
    Table {
        name: "backup_runs",
        columns: &[
            col("id", Int),
            col("name", Text),
            col("trigger", Text),
            col("started_at", Time),
            col("duration_ms", Int),
            null("size_bytes", Int),
            null("source_bytes", Int),
            col("ok", Bool),
            null("error", Text),
        ],
        key: &["id"],
        constraints: &["PRIMARY KEY (id)"],
        indexes: &["CREATE INDEX backup_runs_started ON {s}.backup_runs (started_at)"],
    },
    Table {
        name: "backup_verifications",
        columns: &[
            col("name", Text),
            col("verified_at", Time),
            col("ok", Bool),
            null("error", Text),
        ],
        key: &["name"],
        constraints: &["PRIMARY KEY (name)"],
        indexes: &[],
    },
    Table {
        name: "jobs",
        columns: &[
            col("id", Int),
            col("kind", Text),
            col("state", Text),
            col("actor", Text),
            null("target", Text),
            col("started_at", Time),
            null("finished_at", Time),
            null("result", Json),
            null("error", Text),
        ],
        key: &["id"],
        constraints: &[
            "PRIMARY KEY (id)",
            "CHECK (state IN ('running', 'succeeded', 'failed', 'interrupted'))",
        ],
        indexes: &["CREATE INDEX jobs_kind ON {s}.jobs (kind, id)"],
    },
];

impl Table {
    /// `CREATE TABLE` in schema `s` (already quoted).
    pub fn create(&self, s: &str) -> String {
        let mut parts: Vec<String> = self
            .columns
            .iter()
            .map(|c| {
                format!(
                    "{} {}{}",
                    quote(c.name),
                    c.kind.pg_type(),
                    if c.not_null { " NOT NULL" } else { "" }
                )
            })
            .collect();
        parts.extend(self.constraints.iter().map(|c| c.replace("{s}", s)));
        format!("CREATE TABLE {s}.{} ({})", self.name, parts.join(", "))
    }

    pub fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|c| quote(c.name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Every column in SQLite, in key order.
    pub fn sqlite_select(&self) -> String {
        format!(
            "SELECT {} FROM {} ORDER BY {}",
            self.column_list(),
            self.name,
            self.key.join(", ")
        )
    }

    /// Every column in PostgreSQL as the text [`super::export`] compares, in the same
    /// key order as SQLite's (text keys in byte order, as SQLite's BINARY collation).
    pub fn pg_select(&self, s: &str) -> String {
        let cols = self
            .columns
            .iter()
            .map(|c| {
                let n = quote(c.name);
                match c.kind {
                    Kind::Int => format!("{n}::text"),
                    Kind::Text => n,
                    Kind::Time => format!(
                        "to_char({n} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
                    ),
                    Kind::Bool => format!("CASE {n} WHEN true THEN 't' WHEN false THEN 'f' END"),
                    Kind::TextArray => format!("array_to_json({n})::text"),
                    Kind::Json => format!("{n}::text"),
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        let order = self
            .key
            .iter()
            .map(|k| {
                let text = self
                    .columns
                    .iter()
                    .any(|c| c.name == *k && c.kind == Kind::Text);
                // Qualified: the output columns carry the same names.
                if text {
                    format!("t.{} COLLATE \"C\"", quote(k))
                } else {
                    format!("t.{}", quote(k))
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        format!("SELECT {cols} FROM {s}.{} AS t ORDER BY {order}", self.name)
    }
}

fn quote(name: &str) -> String {
    format!("\"{name}\"")
}
