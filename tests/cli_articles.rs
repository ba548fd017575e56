//! `appliance articles import|export` and `appliance index verify|rebuild` through the real
//! binary: line-numbered errors, skip and abort, idempotent re-import, export round trip,
//! offline rebuild, refusal while a server runs, and drift detection.

mod common;

use common::{cli, start_server, stderr, stdout};

fn run(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    cli(dir).args(args).output().expect("run appliance")
}

#[test]
fn import_reports_bad_lines_is_idempotent_and_exports_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    assert!(run(dir.path(), &["migrate", "run"]).status.success());
    let file = dir.path().join("in.jsonl");
    std::fs::write(
        &file,
        concat!(
            "{\"external_id\":\"e1\",\"title\":\"First\",\"body\":\"one\",\"status\":\"published\"}\n",
            "{\"external_id\":\"e2\",\"title\":\"\",\"body\":\"bad title\"}\n",
            "not json\n",
            "\n",
            "{\"external_id\":\"e3\",\"title\":\"Third\",\"body\":\"three\",\"colour\":1}\n",
            "{\"external_id\":\"e4\",\"title\":\"Fourth\",\"body\":\"four\"}\n",
        ),
    )
    .unwrap();
    let out = run(dir.path(), &["articles", "import", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("line 2: title:"), "{err}");
    assert!(err.contains("line 3: not JSON"), "{err}");
    assert!(err.contains("line 5: colour: unknown field"), "{err}");
    assert!(
        stdout(&out)
            .contains("imported 2 articles (2 created, 0 updated), 0 unchanged, 3 bad lines"),
        "{}",
        stdout(&out)
    );

    // Again: nothing changed, nothing written, no duplicates.
    let out = run(dir.path(), &["articles", "import", file.to_str().unwrap()]);
    assert!(
        stdout(&out).contains("(0 created, 0 updated), 2 unchanged"),
        "{}",
        stdout(&out)
    );

    // Abort mode stops at line 2 with a non-zero exit.
    let out = run(
        dir.path(),
        &[
            "articles",
            "import",
            "--on-error",
            "abort",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("line 2:"), "{}", stderr(&out));
    assert!(stderr(&out).contains("aborted"), "{}", stderr(&out));

    // Export, then import the export into a fresh directory: same articles.
    let export = dir.path().join("out.jsonl");
    let out = run(
        dir.path(),
        &["articles", "export", "--output", export.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&export).unwrap();
    assert_eq!(text.lines().count(), 2);
    let to_stdout = run(dir.path(), &["articles", "export"]);
    assert_eq!(stdout(&to_stdout), text);

    let other = tempfile::tempdir().unwrap();
    assert!(run(other.path(), &["migrate", "run"]).status.success());
    let out = run(
        other.path(),
        &["articles", "import", export.to_str().unwrap()],
    );
    assert!(
        stdout(&out).contains("imported 2 articles (2 created"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );

    // Offline: the outbox holds the imports; verify accounts for them, rebuild applies them.
    let out = run(other.path(), &["index", "rebuild"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("index rebuilt: 1 documents"),
        "{}",
        stdout(&out)
    );
    let out = run(other.path(), &["index", "verify"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
}

#[test]
fn import_needs_a_migrated_database() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x.jsonl"), "").unwrap();
    let out = run(dir.path(), &["articles", "import", "x.jsonl"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("migrate run"), "{}", stderr(&out));
}

#[test]
fn verify_finds_drift_and_rebuild_refuses_while_serving() {
    let dir = tempfile::tempdir().unwrap();
    assert!(run(dir.path(), &["migrate", "run"]).status.success());
    let file = dir.path().join("in.jsonl");
    let lines: String = (0..20)
        .map(|i| format!("{{\"title\":\"Doc {i}\",\"body\":\"b\",\"status\":\"published\"}}\n"))
        .collect();
    std::fs::write(&file, lines).unwrap();
    assert!(
        run(dir.path(), &["articles", "import", "in.jsonl"])
            .status
            .success()
    );
    assert!(run(dir.path(), &["index", "rebuild"]).status.success());
    assert!(run(dir.path(), &["index", "verify"]).status.success());

    // Sabotage: delete rows behind the outbox's back.
    let conn = rusqlite::Connection::open(dir.path().join("data/appliance.db")).unwrap();
    conn.execute("DELETE FROM articles WHERE id IN (3, 7)", [])
        .unwrap();
    drop(conn);
    let out = run(dir.path(), &["index", "verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("in the index but not published in the database: [3, 7]"),
        "{}",
        stdout(&out)
    );
    assert!(stderr(&out).contains("index rebuild"), "{}", stderr(&out));
    let out = run(dir.path(), &["index", "verify", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["not_in_database"], serde_json::json!([3, 7]));

    // While a server runs, the offline rebuild is refused with the way to do it online.
    let mut server = start_server(dir.path());
    let out = run(dir.path(), &["index", "rebuild"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("POST /api/admin/index/rebuild"),
        "{}",
        stderr(&out)
    );
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    assert!(run(dir.path(), &["index", "rebuild"]).status.success());
    assert!(run(dir.path(), &["index", "verify"]).status.success());
}
