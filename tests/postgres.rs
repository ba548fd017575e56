//! PostgreSQL in and out through the real binary against a real PostgreSQL 15 (Debian's
//! postgresql-15; `scripts/test.sh` provides it and sets APPLIANCE_TEST_PG_BIN): each
//! test starts its own throwaway cluster (initdb in a temp directory, 127.0.0.1 on a
//! free port, TLS with a test CA, run as `nobody` when the tests run as root) and stops
//! it at the end.
//!
//! - import: a seeds-like `articles` table imported with a mapping query, times kept;
//!   a dry run writes nothing; a rerun changes nothing; a change at the source updates
//!   one; bad rows named by key; bad columns refused before anything is written; a wrong
//!   password or port is one clear line.
//! - export: articles, users, tokens, audit entries and backups history copied and
//!   verified, with proper types; a second run refused without --replace, identical
//!   with it; a row changed in PostgreSQL caught by --verify-only.
//! - TLS: sslmode=require over TLS (the server refuses plain connections), verify-full
//!   refused for a certificate the system does not trust, accepted with the CA given,
//!   refused for a name the certificate does not carry, where verify-ca passes.

mod common;

use std::path::Path;
use std::process::Output;

use common::{cli, stderr, stdout};

use common::pg::{Cluster, PASSWORD};

fn appliance(dir: &Path, args: &[&str]) -> Output {
    cli(dir)
        .env_remove("PGPASSWORD")
        .args(args)
        .output()
        .expect("run appliance")
}

fn migrated() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let o = appliance(dir.path(), &["migrate", "run"]);
    assert!(o.status.success(), "{}", stderr(&o));
    dir
}

/// The live articles as the JSON-lines export has them, by external_id.
fn exported(dir: &Path) -> Vec<serde_json::Value> {
    let o = appliance(dir, &["articles", "export"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut v: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    v.sort_by_key(|a| a["external_id"].as_str().unwrap_or("").to_string());
    v
}

const SEEDS: &str = "
CREATE TABLE articles (
    id serial PRIMARY KEY,
    title text,
    content text NOT NULL,
    category text,
    published_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO articles (title, content, category, published_at, created_at) VALUES
 ('Growth mindset', E'## Effort\\n\\nPraise the *process*.', 'learning', '2024-03-01 10:00:00.123456+00', '2024-02-01 09:00:00+00'),
 ('Feedback that lands', 'Be specific, kind and timely.', 'mentoring', '2024-03-02 11:30:00+02', '2024-02-02 09:00:00+00'),
 ('A draft idea', 'Not yet published.', NULL, NULL, '2024-02-03 09:00:00+00'),
 ('', 'A row without a title.', 'broken', NULL, '2024-02-04 09:00:00+00'),
 ('Spaced repetition', 'Review at growing intervals.', 'learning', '2024-03-05 08:00:00+00', '2024-02-05 09:00:00+00');
";

const QUERY: &str = "SELECT id AS external_id, title, content AS body, category, published_at, created_at, created_at AS updated_at FROM articles ORDER BY id";

#[test]
fn import_from_a_seeds_like_table_is_checked_idempotent_and_keeps_times() {
    let pg = Cluster::start(false);
    pg.psql("postgres", "CREATE DATABASE seeds");
    pg.psql("seeds", SEEDS);
    let dir = migrated();
    let d = dir.path();
    let url = pg.url("seeds", "?sslmode=disable");
    let import = |extra: &[&str]| {
        let mut args = vec![
            "articles",
            "import",
            "--from-postgres",
            &url,
            "--query",
            QUERY,
        ];
        args.extend_from_slice(extra);
        appliance(d, &args)
    };

    // A dry run reads and checks everything and writes nothing.
    let o = import(&["--dry-run"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("would create 4, update 0, leave 0 unchanged; 1 bad rows"),
        "{}",
        stdout(&o)
    );
    assert!(
        stderr(&o).contains("row 4: external_id `4`: title"),
        "{}",
        stderr(&o)
    );
    assert!(exported(d).is_empty(), "a dry run wrote articles");

    // The import: the bad row named by its key, the rest written with their times.
    let o = import(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("imported 4 articles (4 created, 0 updated), 0 unchanged, 1 bad rows"),
        "{}",
        stdout(&o)
    );
    assert!(!stderr(&o).contains(PASSWORD) && !stdout(&o).contains(PASSWORD));
    let got = exported(d);
    assert_eq!(got.len(), 4);
    let first = &got[0];
    assert_eq!(first["external_id"], "1");
    assert_eq!(first["title"], "Growth mindset");
    assert_eq!(first["body"], "## Effort\n\nPraise the *process*.");
    assert_eq!(first["category"], "learning");
    assert_eq!(first["status"], "published");
    assert_eq!(first["published_at"], "2024-03-01T10:00:00.123Z");
    assert_eq!(first["created_at"], "2024-02-01T09:00:00.000Z");
    assert_eq!(first["updated_at"], "2024-02-01T09:00:00.000Z");
    assert_eq!(
        got[1]["published_at"], "2024-03-02T09:30:00.000Z",
        "offsets become UTC"
    );
    assert_eq!(got[2]["status"], "draft", "no published_at: a draft");
    assert!(got[2]["published_at"].is_null());

    // A rerun changes nothing; a change at the source updates that one article.
    let o = import(&[]);
    assert!(
        stdout(&o).contains("(0 created, 0 updated), 4 unchanged, 1 bad rows"),
        "{}",
        stdout(&o)
    );
    assert_eq!(exported(d), got, "a rerun changed articles");
    pg.psql(
        "seeds",
        "UPDATE articles SET title = 'Feedback that lands well' WHERE id = 2",
    );
    let o = import(&["--dry-run"]);
    assert!(
        stdout(&o).contains("would create 0, update 1, leave 3 unchanged"),
        "{}",
        stdout(&o)
    );
    let o = import(&[]);
    assert!(
        stdout(&o).contains("(0 created, 1 updated), 3 unchanged"),
        "{}",
        stdout(&o)
    );
    let now = exported(d);
    assert_eq!(now[1]["title"], "Feedback that lands well");
    assert_eq!(now[0], got[0]);

    // --on-error abort stops at the bad row: the rows before it are written.
    let dir2 = migrated();
    let mut args = vec![
        "articles",
        "import",
        "--from-postgres",
        &url,
        "--query",
        QUERY,
    ];
    args.extend_from_slice(&["--on-error", "abort", "--batch", "2"]);
    let o = appliance(dir2.path(), &args);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("aborted at row 4"), "{}", stderr(&o));
    assert_eq!(exported(dir2.path()).len(), 3);

    // Columns that do not map: every problem named at once, nothing written.
    let o = appliance(
        d,
        &[
            "articles",
            "import",
            "--from-postgres",
            &url,
            "--query",
            "SELECT id AS external_id, title, content, category FROM articles",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    let last = e.trim().lines().last().unwrap_or("");
    assert!(
        last.contains("unknown column content") && last.contains("missing required column body"),
        "{e}"
    );
    let o = appliance(
        d,
        &[
            "articles",
            "import",
            "--from-postgres",
            &url,
            "--query",
            "SELECT nonsense FROM",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("the query is not valid"),
        "{}",
        stderr(&o)
    );

    // A wrong password, a closed port: one clear line each, no password shown.
    let wrong = url.replace(PASSWORD, "not-the-password");
    let o = appliance(
        d,
        &[
            "articles",
            "import",
            "--from-postgres",
            &wrong,
            "--query",
            QUERY,
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("cannot connect to PostgreSQL at postgres@127.0.0.1:"),
        "{e}"
    );
    assert!(e.contains("password authentication failed"), "{e}");
    assert!(
        !e.contains("not-the-password") && e.trim().lines().count() == 1,
        "{e}"
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let o = appliance(
        d,
        &[
            "articles",
            "import",
            "--from-postgres",
            &format!("postgres://postgres@127.0.0.1:{closed}/seeds?sslmode=disable"),
            "--query",
            QUERY,
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("cannot connect to PostgreSQL"),
        "{}",
        stderr(&o)
    );

    // The password from a file, and from PGPASSWORD, when the URL has none.
    let bare = format!(
        "postgres://postgres@127.0.0.1:{}/seeds?sslmode=disable",
        pg.port
    );
    let pw = d.join("pg-password");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    let o = appliance(
        d,
        &[
            "articles",
            "import",
            "--from-postgres",
            &bare,
            "--query",
            QUERY,
            "--dry-run",
            "--password-file",
            pw.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = cli(d)
        .env("PGPASSWORD", PASSWORD)
        .args([
            "articles",
            "import",
            "--from-postgres",
            &bare,
            "--query",
            QUERY,
            "--dry-run",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("leave 4 unchanged"), "{}", stdout(&o));
}

/// A data directory with articles (tags, quotes, newlines, a soft delete), a user, a
/// token, audit entries and a backup.
fn populated() -> tempfile::TempDir {
    let dir = migrated();
    let d = dir.path();
    let mut lines = String::new();
    for i in 0..150 {
        let a = serde_json::json!({
            "external_id": format!("ext-{i}"),
            "title": format!("Article {i}: \"quotes\", commas, and ünïcode"),
            "body": format!("Line one of {i}\nline \\two\\ with, a \"quote\"\n\n- a list"),
            "category": if i % 3 == 0 { serde_json::Value::Null } else { "cat".into() },
            "tags": if i % 2 == 0 { serde_json::json!(["a", "b c", "d\"e"]) } else { serde_json::json!([]) },
            "status": if i % 4 == 0 { "draft" } else { "published" },
        });
        lines.push_str(&a.to_string());
        lines.push('\n');
    }
    let file = d.join("in.jsonl");
    std::fs::write(&file, lines).unwrap();
    for args in [
        vec!["articles", "import", file.to_str().unwrap()],
        vec![
            "user",
            "create",
            "--email",
            "admin@example.org",
            "--role",
            "admin",
        ],
        vec![
            "token",
            "create",
            "--email",
            "admin@example.org",
            "--name",
            "ci",
        ],
        vec!["backup"],
    ] {
        let o = appliance(d, &args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    }
    dir
}

#[test]
fn export_copies_every_table_verified_refuses_a_full_schema_and_catches_drift() {
    let pg = Cluster::start(false);
    pg.psql("postgres", "CREATE DATABASE target");
    let dir = populated();
    let d = dir.path();
    let url = pg.url("target", "?sslmode=disable");
    let export = |extra: &[&str]| {
        let mut args = vec!["export", "postgres", "--url", &url];
        args.extend_from_slice(extra);
        appliance(d, &args)
    };
    let o = export(&[]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("into schema appliance at postgres@127.0.0.1:"),
        "{out}"
    );
    assert!(out.contains("not moved: sessions"), "{out}");
    assert!(out.contains("counts and checksums match"), "{out}");
    assert!(!out.contains(PASSWORD) && !stderr(&o).contains(PASSWORD));
    let checksums = |out: &str| -> Vec<String> {
        out.lines()
            .filter(|l| l.contains("sha256"))
            .map(str::to_string)
            .collect()
    };
    let first = checksums(&out);
    assert_eq!(first.len(), 11, "{out}");

    // Every row, with proper types.
    let q = |sql: &str| pg.psql("target", sql);
    assert_eq!(q("SELECT count(*) FROM appliance.articles"), "150");
    assert_eq!(q("SELECT count(*) FROM appliance.article_tags"), "225");
    assert_eq!(q("SELECT count(*) FROM appliance.users"), "1");
    assert_eq!(q("SELECT count(*) FROM appliance.api_tokens"), "1");
    assert!(
        q("SELECT count(*) FROM appliance.audit_log")
            .parse::<u32>()
            .unwrap()
            >= 3
    );
    assert_eq!(
        q("SELECT count(*) FROM appliance.backup_runs WHERE ok"),
        "1"
    );
    assert_eq!(
        q("SELECT tags[2] || '|' || tags[3] FROM appliance.articles WHERE external_id = 'ext-0'"),
        "b c|d\"e"
    );
    assert_eq!(
        q("SELECT body FROM appliance.articles WHERE external_id = 'ext-1'"),
        "Line one of 1\nline \\two\\ with, a \"quote\"\n\n- a list"
    );
    assert_eq!(
        q("SELECT string_agg(column_name || ':' || data_type, ',' ORDER BY column_name) FROM information_schema.columns
           WHERE table_schema = 'appliance' AND table_name = 'articles' AND column_name IN ('created_at', 'id', 'tags')"),
        "created_at:timestamp with time zone,id:bigint,tags:ARRAY"
    );
    assert_eq!(
        q(
            "SELECT data_type FROM information_schema.columns WHERE table_schema = 'appliance'
           AND table_name = 'audit_log' AND column_name = 'details'"
        ),
        "jsonb"
    );
    assert_eq!(
        q("SELECT count(*) FROM information_schema.table_constraints WHERE table_schema = 'appliance'
           AND constraint_type = 'FOREIGN KEY'"),
        "4"
    );
    assert_eq!(
        q(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = 'appliance' AND indexname = 'articles_by_tags'"
        ),
        "1"
    );

    // A second run without --replace is refused and changes nothing.
    let o = export(&[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("already has 11 tables"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("--replace"), "{}", stderr(&o));
    assert_eq!(q("SELECT count(*) FROM appliance.articles"), "150");

    // With --replace: the same rows, the same checksums (but for the audit log, which
    // now holds the first export's entry, and the refusal's does not count).
    let o = export(&["--replace"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let second = checksums(&stdout(&o));
    let but_audit = |c: &[String]| -> Vec<String> {
        c.iter()
            .filter(|l| !l.contains("audit_log"))
            .cloned()
            .collect()
    };
    assert_eq!(but_audit(&second), but_audit(&first));
    assert_ne!(second, first, "the audit log has the export's entry");

    // --verify-only: clean right after an export (it carries its own audit entry), then
    // a row changed in PostgreSQL is caught by its key.
    let o = export(&["--verify-only"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(checksums(&stdout(&o)), second);
    q("UPDATE appliance.articles SET title = 'changed' WHERE id = 7");
    let o = export(&["--verify-only"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("table articles differs at id=7"), "{e}");
    q("DELETE FROM appliance.article_tags WHERE article_id = 7");
    q("DELETE FROM appliance.articles WHERE id = 7");
    let o = export(&["--verify-only"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("differs at"), "{}", stderr(&o));

    // Beside a running server (which keeps its lock and its writer): the export reads a
    // snapshot and needs neither.
    let mut server = common::start_server(d);
    let o = export(&["--schema", "live"]);
    let _ = rustix::process::kill_process(
        rustix::process::Pid::from_child(&server.child),
        rustix::process::Signal::TERM,
    );
    let _ = common::exit_within(&mut server.child, std::time::Duration::from_secs(30));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(q("SELECT count(*) FROM live.articles"), "150");

    // A row PostgreSQL refuses (a tag of an article that does not exist, written behind
    // SQLite's foreign keys): the export fails naming it, and leaves nothing behind.
    {
        let conn = rusqlite::Connection::open(d.join("data/appliance.db")).unwrap();
        conn.execute_batch(
            "PRAGMA foreign_keys = OFF; INSERT INTO article_tags (tag, article_id) VALUES ('orphan', 999999);",
        )
        .unwrap();
    }
    let o = export(&["--schema", "broken"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("foreign key") && e.contains("article_tags"),
        "{e}"
    );
    assert_eq!(
        q("SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'broken'"),
        "0"
    );

    // A schema name that is not one is refused before connecting.
    let o = export(&["--schema", "Robert'); DROP"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("is not a valid name"), "{}", stderr(&o));
}

#[test]
fn tls_require_works_and_verify_full_refuses_an_untrusted_certificate() {
    let pg = Cluster::start(true);
    pg.psql("postgres", "CREATE DATABASE seeds");
    pg.psql("seeds", SEEDS);
    let dir = migrated();
    let d = dir.path();
    let ca = pg.dir.path().join("ca.crt");
    let dry = |url: &str| {
        appliance(
            d,
            &[
                "articles",
                "import",
                "--from-postgres",
                url,
                "--query",
                QUERY,
                "--dry-run",
            ],
        )
    };
    // The server takes host connections only over TLS.
    let o = dry(&pg.url("seeds", "?sslmode=disable"));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no encryption"), "{}", stderr(&o));
    for mode in ["require", "prefer"] {
        let o = dry(&pg.url("seeds", &format!("?sslmode={mode}")));
        assert!(o.status.success(), "sslmode={mode}: {}", stderr(&o));
        assert!(stdout(&o).contains("would create 4"), "{}", stdout(&o));
    }
    // verify-full against the system's CA store: the test CA is not in it.
    let o = dry(&pg.url("seeds", "?sslmode=verify-full"));
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("cannot connect to PostgreSQL") && e.contains("UnknownIssuer"),
        "{e}"
    );
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    // With the CA given and the certificate's own name: accepted.
    let by_name = format!(
        "postgres://postgres:{PASSWORD}@localhost:{}/seeds?sslmode=verify-full&sslrootcert={}",
        pg.port,
        ca.display()
    );
    let o = dry(&by_name);
    assert!(o.status.success(), "{}", stderr(&o));
    // By address the name does not match: verify-full refuses, verify-ca accepts.
    let by_ip = pg.url(
        "seeds",
        &format!("?sslmode=verify-full&sslrootcert={}", ca.display()),
    );
    let o = dry(&by_ip);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("not valid for name \"127.0.0.1\""),
        "{}",
        stderr(&o)
    );
    let o = dry(&by_ip.replace("verify-full", "verify-ca"));
    assert!(o.status.success(), "{}", stderr(&o));
    // An sslmode libpq does not have is named.
    let o = dry(&pg.url("seeds", "?sslmode=always"));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("sslmode `always`"), "{}", stderr(&o));
}
