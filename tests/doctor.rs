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

/// Run the binary with `args` and kill -9 it the moment `caught()` says it is half-way,
/// as a power cut or the OOM killer would. The poll is a tight loop, not a sleep: the
/// work takes far longer than one look.
fn kill_half_way(dir: &Path, args: &[&str], caught: impl Fn() -> bool) {
    let mut child = cli(dir)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if caught() {
            child.kill().unwrap();
            child.wait().unwrap();
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("{args:?} ended ({status}) before it could be interrupted");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{args:?} never got there"
        );
        std::thread::yield_now();
    }
}

fn names_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn what_killed_work_leaves_is_reported_then_removed_at_start_and_pre_restore_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let backups = data.join("backups");
    assert!(
        cli(tmp.path())
            .args(["migrate", "run"])
            .status()
            .unwrap()
            .success()
    );
    let file = tmp.path().join("in.jsonl");
    let body = "words to index and extract ".repeat(80);
    let lines: String = (0..3000)
        .map(|i| {
            format!("{{\"external_id\":\"e{i}\",\"title\":\"Article {i}\",\"body\":\"{body} {i}\",\"status\":\"published\"}}\n")
        })
        .collect();
    std::fs::write(&file, lines).unwrap();
    let out = cli(tmp.path())
        .args(["articles", "import", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = cli(tmp.path()).args(["index", "rebuild"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = cli(tmp.path()).args(["backup"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let archive = names_in(&backups)
        .into_iter()
        .find(|n| n.ends_with(".tar.zst"))
        .unwrap();
    let live_db = std::fs::read(data.join("appliance.db")).unwrap();

    // Killed half-way: a restore while extracting, a rebuild while building, a
    // verification while checking.
    kill_half_way(tmp.path(), &["restore", &archive], || {
        names_in(tmp.path())
            .iter()
            .any(|n| n.starts_with(".data.restore-"))
    });
    kill_half_way(tmp.path(), &["index", "rebuild"], || {
        data.join("index.rebuild").is_dir()
    });
    kill_half_way(tmp.path(), &["backup", "verify", &archive], || {
        names_in(&data).iter().any(|n| n.starts_with(".verify-"))
    });
    assert_eq!(std::fs::read(data.join("appliance.db")).unwrap(), live_db);

    let (_, report) = doctor(tmp.path(), &backups);
    let found = line(&report, "leftovers");
    assert!(found.starts_with("WARN"), "{report}");
    for kind in ["restore_staging", "index_rebuild", "verify_scratch"] {
        assert!(found.contains(kind), "{kind} not reported: {found}");
    }
    // A dry run names them and removes nothing.
    let out = cli(tmp.path()).args(["cleanup"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("leftovers.restore_staging"),
        "{}",
        stdout(&out)
    );
    assert!(
        names_in(tmp.path())
            .iter()
            .any(|n| n.starts_with(".data.restore-"))
    );

    // A restore that completes keeps the replaced directory aside: never a leftover.
    let out = cli(tmp.path())
        .args(["restore", &archive])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let aside = names_in(tmp.path())
        .into_iter()
        .find(|n| n.starts_with("data.pre-restore-"))
        .expect("the replaced data directory is kept");

    // The next start removes what is left; the live data and the kept directory stay.
    let mut server = common::start_server(tmp.path());
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let left: Vec<String> = names_in(tmp.path())
        .into_iter()
        .filter(|n| n.starts_with(".data.restore-"))
        .chain(
            names_in(&data)
                .into_iter()
                .filter(|n| n.starts_with("index.") || n.starts_with(".verify-")),
        )
        .chain(
            names_in(&backups)
                .into_iter()
                .filter(|n| n.starts_with(".verify-")),
        )
        .collect();
    assert!(left.is_empty(), "left after the start: {left:?}");
    assert!(tmp.path().join(&aside).join("appliance.db").is_file());
    assert!(data.join("index").is_dir() && data.join("appliance.db").is_file());
    let (_, report) = doctor(tmp.path(), &backups);
    assert!(line(&report, "leftovers").starts_with("ok"), "{report}");
    let kept = line(&report, "pre_restore");
    assert!(kept.starts_with("ok") && kept.contains(&aside), "{kept}");
}
