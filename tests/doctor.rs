//! `appliance doctor` on real data directories: all ok, then sabotage — a dropped index,
//! an extra table, an article written behind the outbox's back, a world-readable
//! database — each reported on its line with the right exit code; and beside a running
//! server, read-only.

mod common;

use std::path::Path;

use common::{cli, stderr, stdout};

fn doctor(dir: &Path, backups: &Path) -> (i32, String) {
    let out = cli(dir)
        .env("APPLIANCE__BACKUP__DIR", backups)
        .args(["doctor"])
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), stdout(&out))
}

fn line<'a>(report: &'a str, check: &str) -> &'a str {
    report
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(check))
        .unwrap_or_else(|| panic!("no {check} line in\n{report}"))
}

#[test]
fn healthy_then_each_sabotage_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let backups = tempfile::tempdir().unwrap();
    let (code, report) = doctor(tmp.path(), backups.path());
    assert_eq!(code, 2, "no database is a failure:\n{report}");
    assert!(line(&report, "database").starts_with("FAIL"), "{report}");

    let out = cli(tmp.path()).args(["migrate", "run"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = cli(tmp.path())
        .env("APPLIANCE__BACKUP__DIR", backups.path())
        .args(["backup", "--verify"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // The index is created by the server's first start.
    let mut server = common::start_server(tmp.path());
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    let (code, report) = doctor(tmp.path(), backups.path());
    assert_eq!(code, 0, "{report}");
    for check in [
        "config",
        "permissions",
        "disk",
        "integrity",
        "foreign_keys",
        "migrations",
        "schema",
        "wal",
        "search_index",
        "backups",
    ] {
        assert!(line(&report, check).starts_with("ok"), "{check}:\n{report}");
    }
    let out = cli(tmp.path())
        .env("APPLIANCE__BACKUP__DIR", backups.path())
        .args(["doctor", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["level"], "ok");

    let db = tmp.path().join("data/appliance.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("DROP INDEX articles_by_status; CREATE TABLE notes (x TEXT);")
        .unwrap();
    // Published, but written behind the outbox's back: the index never hears of it.
    conn.execute(
        "INSERT INTO articles (slug, title, body, status, created_at, updated_at)
         VALUES ('hidden', 'Hidden', 'b', 'published', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
        [],
    )
    .unwrap();
    drop(conn);
    let (code, report) = doctor(tmp.path(), backups.path());
    assert_eq!(code, 2, "{report}");
    let schema = line(&report, "schema");
    assert!(schema.starts_with("FAIL"), "{report}");
    assert!(
        schema.contains("missing index articles_by_status"),
        "{schema}"
    );
    assert!(schema.contains("extra table notes"), "{schema}");
    let index = line(&report, "search_index");
    assert!(
        index.starts_with("FAIL") && index.contains("1 missing from the index"),
        "{index}"
    );
    assert!(line(&report, "integrity").starts_with("ok"), "{report}");

    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (_, report) = doctor(tmp.path(), backups.path());
    let perms = line(&report, "permissions");
    assert!(
        perms.starts_with("WARN") && perms.contains("readable by other users"),
        "{perms}"
    );
}

#[test]
fn works_beside_a_running_server_and_warns_about_backups_on_the_data_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let server = common::start_server(tmp.path());
    let out = cli(tmp.path()).args(["doctor"]).output().unwrap();
    let report = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "warnings only:\n{report}{}",
        stderr(&out)
    );
    assert!(
        line(&report, "config").contains("backups are kept on the data disk"),
        "{report}"
    );
    assert!(
        line(&report, "backups").contains("no backup yet"),
        "{report}"
    );
    assert!(line(&report, "integrity").starts_with("ok"), "{report}");
    assert_eq!(
        common::http_get(&server.addr, "/readyz").map(|r| r.0),
        Some(200),
        "the server is unaffected"
    );
    let mut server = server;
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}
