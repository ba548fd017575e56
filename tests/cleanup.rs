//! `appliance cleanup`: the dry run changes nothing and counts what would go; `--apply`
//! takes a backup, removes exactly what is past retention, reports (and on request
//! removes) orphans and duplicates planted by sabotage, vacuums with the server stopped
//! and skips VACUUM beside a running one; the scheduled safe part runs inside `serve`.

mod common;

use std::time::Duration;

use common::{cli, poll, spawn_in, stderr, stdout};
use rusqlite::Connection;
use serde_json::{Value, json};

const OLD: &str = "2000-01-01T00:00:00.000Z";

fn one(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

async fn prepare(data: &std::path::Path) -> (i64, i64) {
    let app = spawn_in(data, |_| {}).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..4 {
        let (s, v) = app
            .post("/api/articles", json!({"title": format!("Clean {i}"), "body": "b", "status": "published", "tags": ["t"]}))
            .await;
        assert_eq!(s, 201, "{v}");
        ids.push(v["id"].as_i64().unwrap());
    }
    for id in &ids[..3] {
        let res = app
            .client
            .delete(app.url(&format!("/api/articles/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204);
    }
    app.stop().await.unwrap();
    let conn = Connection::open(data.join("appliance.db")).unwrap();
    // Two soft deletes are old, one is recent; plus expired/old identity rows, an old
    // audit entry and a stale error group.
    conn.execute_batch(&format!(
        "UPDATE articles SET deleted_at = '{OLD}' WHERE id IN ({}, {});
         INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, last_seen_at, expires_at)
           VALUES ('dead', 1, 'c', '{OLD}', '{OLD}', '{OLD}');
         UPDATE api_tokens SET revoked_at = '{OLD}' WHERE id = 1;
         INSERT INTO password_resets (token_hash, user_id, created_at, expires_at) VALUES ('r', 1, '{OLD}', '{OLD}');
         INSERT INTO audit_log (at, actor, action, outcome) VALUES ('{OLD}', 'x', 'auth.login', 'success');
         INSERT INTO error_groups (fingerprint, category, severity, component, operation, message, count, first_seen, last_seen)
           VALUES ('f', 'system', 'low', 'c', 'o', 'm', 1, '{OLD}', '{OLD}');",
        ids[0], ids[1]
    ))
    .unwrap();
    // Sabotage: a tag whose article is gone, and (after rebuilding `articles` without its
    // UNIQUE constraint, as a damaged or hand-edited schema might be) a duplicate slug.
    conn.execute_batch(&format!(
        "PRAGMA foreign_keys = OFF;
         INSERT INTO article_tags (tag, article_id) VALUES ('ghost', 999999);
         CREATE TABLE articles_loose (
             id INTEGER PRIMARY KEY AUTOINCREMENT, external_id TEXT UNIQUE,
             slug TEXT NOT NULL, title TEXT NOT NULL, body TEXT NOT NULL, category TEXT,
             tags TEXT NOT NULL DEFAULT '[]', status TEXT NOT NULL, created_at TEXT NOT NULL,
             updated_at TEXT NOT NULL, published_at TEXT, deleted_at TEXT) STRICT;
         INSERT INTO articles_loose SELECT * FROM articles;
         DROP TABLE articles;
         ALTER TABLE articles_loose RENAME TO articles;
         INSERT INTO articles (id, slug, title, body, tags, status, created_at, updated_at)
           SELECT 1000, slug, title, body, tags, status, created_at, updated_at FROM articles WHERE id = {};",
        ids[3]
    ))
    .unwrap();
    (ids[2], ids[3])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_counts_apply_removes_past_retention_and_flags_decide_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (recent_deleted, kept) = prepare(&data).await;
    let db = data.join("appliance.db");
    let run = |args: &[&str]| {
        let root = tmp.path().to_path_buf();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        std::thread::spawn(move || {
            cli(&root)
                .env("APPLIANCE__CLEANUP__VACUUM_MIN_FREE_RATIO", "0.0")
                .env("APPLIANCE__CLEANUP__VACUUM_MIN_FREE_BYTES", "0")
                .args(&args)
                .output()
                .unwrap()
        })
        .join()
        .unwrap()
    };
    let counts = || {
        let c = Connection::open(&db).unwrap();
        (
            one(&c, "SELECT count(*) FROM articles"),
            one(&c, "SELECT count(*) FROM sessions"),
            one(&c, "SELECT count(*) FROM audit_log"),
        )
    };
    let before = counts();

    // Dry run: counted, nothing changed.
    let out = run(&["cleanup", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let tasks: Vec<Value> = serde_json::from_str(&stdout(&out)).unwrap();
    let task =
        |tasks: &[Value], name: &str| tasks.iter().find(|t| t["task"] == name).cloned().unwrap();
    for (name, n) in [
        ("deleted_articles", 2),
        ("sessions", 1),
        ("tokens", 1),
        ("reset_links", 1),
        ("audit", 1),
        ("errors", 1),
        ("orphans.article_tags", 1),
        ("duplicates.articles.slug", 1),
    ] {
        let t = task(&tasks, name);
        assert_eq!(t["count"], n, "{name}: {t}");
        assert_eq!(t["applied"], false);
    }
    assert_eq!(counts(), before, "a dry run changes nothing");
    let out = run(&["cleanup"]);
    assert!(
        stdout(&out).contains("dry run: nothing changed"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("would remove        2  deleted_articles"),
        "{}",
        stdout(&out)
    );

    // Apply: a backup first, then exactly the retention tasks; findings stay.
    let out = run(&["cleanup", "--apply", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let tasks: Vec<Value> =
        serde_json::from_str(&stdout(&out)).expect("stdout is one JSON document");
    assert_eq!(task(&tasks, "deleted_articles")["applied"], true);
    assert_eq!(task(&tasks, "orphans.article_tags")["applied"], false);
    assert_eq!(task(&tasks, "duplicates.articles.slug")["applied"], false);
    assert_eq!(
        task(&tasks, "vacuum")["applied"],
        true,
        "server stopped: vacuumed"
    );
    let archives = std::fs::read_dir(data.join("backups"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with("-manual.tar.zst")
        })
        .count();
    assert_eq!(archives, 1, "a backup was taken first");
    let c = Connection::open(&db).unwrap();
    assert_eq!(
        one(
            &c,
            "SELECT count(*) FROM articles WHERE deleted_at IS NOT NULL"
        ),
        1
    );
    assert_eq!(
        one(
            &c,
            &format!("SELECT count(*) FROM articles WHERE id = {recent_deleted}")
        ),
        1,
        "recent soft delete kept"
    );
    assert_eq!(
        one(&c, "SELECT count(*) FROM sessions WHERE id_hash = 'dead'"),
        0
    );
    assert_eq!(
        one(
            &c,
            "SELECT count(*) FROM api_tokens WHERE revoked_at IS NOT NULL"
        ),
        0
    );
    assert_eq!(one(&c, "SELECT count(*) FROM password_resets"), 0);
    assert_eq!(
        one(
            &c,
            &format!("SELECT count(*) FROM audit_log WHERE at = '{OLD}'")
        ),
        0
    );
    assert_eq!(one(&c, "SELECT count(*) FROM error_groups"), 0);
    assert_eq!(
        one(
            &c,
            "SELECT count(*) FROM article_tags WHERE article_id = 999999"
        ),
        1
    );
    assert_eq!(one(&c, "PRAGMA freelist_count"), 0);
    assert_eq!(
        one(
            &c,
            "SELECT count(*) FROM audit_log WHERE action = 'cleanup.run' AND actor LIKE 'cli:%'"
        ),
        1
    );
    drop(c);

    // The flags remove the findings; the oldest duplicate stays.
    let out = run(&["cleanup", "--apply", "--fix-orphans", "--remove-duplicates"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let c = Connection::open(&db).unwrap();
    assert_eq!(
        one(
            &c,
            "SELECT count(*) FROM article_tags WHERE article_id = 999999"
        ),
        0
    );
    assert_eq!(one(&c, "SELECT count(*) FROM articles WHERE id = 1000"), 0);
    assert_eq!(
        one(
            &c,
            &format!("SELECT count(*) FROM articles WHERE id = {kept}")
        ),
        1
    );
    drop(c);

    // The purges reached the search index through the outbox.
    let app = spawn_in(&data, |_| {}).await.unwrap();
    let v = poll(Duration::from_secs(20), || {
        let (_, v) = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(app.get_json("/api/admin/index/verify"))
        });
        (v["consistent"] == true).then_some(v)
    });
    assert!(v.is_some(), "index consistent after the purges");
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_safe_part_runs_on_schedule_and_vacuum_waits_for_a_stopped_server() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // Every second (6-field cron with seconds).
    let app = spawn_in(&data, |c| c.cleanup.schedule = "* * * * * *".into())
        .await
        .unwrap();
    let db = app.db_path();
    Connection::open(&db)
        .unwrap()
        .execute_batch(&format!(
            "INSERT INTO audit_log (at, actor, action, outcome) VALUES ('{OLD}', 'x', 'auth.login', 'success');"
        ))
        .unwrap();
    let done = poll(Duration::from_secs(20), || {
        let c = Connection::open(&db).ok()?;
        let old = one(
            &c,
            &format!("SELECT count(*) FROM audit_log WHERE at = '{OLD}'"),
        );
        let runs = one(
            &c,
            "SELECT count(*) FROM audit_log WHERE action = 'cleanup.run' AND actor = 'system'",
        );
        (old == 0 && runs > 0).then_some(())
    });
    assert!(
        done.is_some(),
        "the scheduled cleanup removed the old audit entry"
    );

    // Beside the running server: applied, but VACUUM is left for a stopped server.
    let root = tmp.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        cli(&root)
            .env("APPLIANCE__CLEANUP__VACUUM_MIN_FREE_RATIO", "0.0")
            .env("APPLIANCE__CLEANUP__VACUUM_MIN_FREE_BYTES", "0")
            .args(["cleanup", "--apply"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("skipped: the server is running"),
        "{}",
        stdout(&out)
    );
    let (s, _) = app.get_json("/readyz").await;
    assert_eq!(s, 200, "the server is unharmed");
    app.stop().await.unwrap();
}
