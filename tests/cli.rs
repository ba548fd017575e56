//! The real `appliance` binary: configuration layering and every validation error path,
//! migrations (fresh, idempotent, divergent, newer, pre-migration copy), the corrupt
//! database refusal, the data-directory lock between processes, and SIGTERM.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{cli, http_get, poll, start_server, stderr, stdout, wal_size};

fn ok(cmd: &mut std::process::Command) -> String {
    let out = cmd.output().expect("run appliance");
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// Runs and expects failure with exit code 1 and a single `error: …` line on stderr.
fn fails(cmd: &mut std::process::Command) -> String {
    let out = cmd.output().expect("run appliance");
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    let err = stderr(&out);
    let last = err.lines().last().unwrap_or_default().to_string();
    assert!(last.starts_with("error: "), "{err}");
    last
}

#[test]
fn version_and_bare_groups_print_help() {
    let dir = tempfile::tempdir().unwrap();
    let v = ok(cli(dir.path()).arg("--version"));
    assert_eq!(v.trim(), format!("appliance {}", appliance::VERSION));
    for group in ["migrate", "config"] {
        let out = cli(dir.path()).arg(group).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{group}");
        let text = stdout(&out) + &stderr(&out);
        assert!(text.contains("Usage: appliance"), "{group}: {text}");
    }
}

#[test]
fn config_layers_defaults_file_env_flags() {
    let dir = tempfile::tempdir().unwrap();
    // Defaults.
    let out = ok(cli(dir.path()).args(["config", "print"]));
    assert!(out.contains("listen = \"127.0.0.1:8080\""), "{out}");
    assert!(out.contains("data_dir = \"./data\""), "{out}");
    // File beats defaults.
    let file = dir.path().join("a.toml");
    std::fs::write(
        &file,
        "data_dir = \"/srv/x\"\n[server]\nlisten = \"127.0.0.1:9000\"\n[database]\nreaders = 7\n",
    )
    .unwrap();
    let out = ok(cli(dir.path())
        .arg("--config")
        .arg(&file)
        .args(["config", "print"]));
    assert!(out.contains("listen = \"127.0.0.1:9000\""), "{out}");
    assert!(out.contains("readers = 7"), "{out}");
    // Env beats file.
    let out = ok(cli(dir.path())
        .arg("--config")
        .arg(&file)
        .env("APPLIANCE__SERVER__LISTEN", "127.0.0.1:9100")
        .env("APPLIANCE__DATA_DIR", "/srv/env")
        .args(["config", "print"]));
    assert!(out.contains("listen = \"127.0.0.1:9100\""), "{out}");
    assert!(out.contains("data_dir = \"/srv/env\""), "{out}");
    assert!(out.contains("readers = 7"), "file value kept: {out}");
    // Flags beat env.
    let out = ok(cli(dir.path())
        .arg("--config")
        .arg(&file)
        .env("APPLIANCE__DATA_DIR", "/srv/env")
        .args(["--data-dir", "/srv/flag", "config", "print"]));
    assert!(out.contains("data_dir = \"/srv/flag\""), "{out}");
    // check names its sources.
    let out = ok(cli(dir.path())
        .arg("--config")
        .arg(&file)
        .env("APPLIANCE__DATABASE__READERS", "2")
        .args(["config", "check"]));
    assert!(out.contains("configuration OK"), "{out}");
    assert!(
        out.contains("a.toml") && out.contains("APPLIANCE__DATABASE__READERS"),
        "{out}"
    );
}

#[test]
fn secrets_are_redacted_in_config_print() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(cli(dir.path())
        .env(
            "APPLIANCE__SENTRY__DSN",
            "https://secretkey123@sentry.invalid/42",
        )
        .args(["config", "print"]));
    assert!(!out.contains("secretkey123"), "{out}");
    assert!(out.contains("dsn = \"[redacted]\""), "{out}");
}

#[test]
fn config_errors_name_key_value_and_source() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    type Case<'a> = (Vec<(&'a str, &'a str)>, &'a str, Vec<&'a str>);
    let cases: Vec<Case> = vec![
        (vec![], "colour = \"red\"\n", vec!["colour", "bad.toml"]),
        (
            vec![],
            "[server]\nlisten = \"localhost\"\n",
            vec!["server.listen", "localhost", "IP:PORT"],
        ),
        (
            vec![],
            "[log]\nformat = \"xml\"\n",
            vec!["log.format", "xml", "text", "json"],
        ),
        (
            vec![],
            "[database]\nreaders = 0\n",
            vec!["database.readers", "0", "between 1 and 64"],
        ),
        (
            vec![],
            "[database]\nsynchronous = \"off\"\n",
            vec!["database.synchronous", "off", "normal", "full"],
        ),
        (
            vec![("APPLIANCE__DATABASE__READERS", "many")],
            "",
            vec!["database.readers", "many", "APPLIANCE__DATABASE__READERS"],
        ),
        (vec![("APPLIANCE__NOPE", "1")], "", vec!["nope"]),
    ];
    for (env, toml, expected) in cases {
        std::fs::write(&file, toml).unwrap();
        let mut cmd = cli(dir.path());
        cmd.arg("--config").arg(&file).args(["config", "check"]);
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let line = fails(&mut cmd);
        for word in expected {
            assert!(line.contains(word), "{toml:?} {env:?}: {line}");
        }
    }
    // A missing explicit file is an error, not silently the defaults.
    let line = fails(cli(dir.path()).args(["--config", "nowhere.toml", "config", "check"]));
    assert!(line.contains("nowhere.toml"), "{line}");
    // A bad --listen flag is named too.
    let line = fails(cli(dir.path()).args(["serve", "--listen", "8080"]));
    assert!(
        line.contains("server.listen") && line.contains("command line"),
        "{line}"
    );
}

#[test]
fn migrate_fresh_then_idempotent_then_divergence_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing yet: status lists pending without creating the database.
    let out = ok(cli(dir.path()).args(["migrate", "status"]));
    assert!(out.contains("pending") && out.contains("app_meta"), "{out}");
    assert!(!dir.path().join("data/appliance.db").exists());
    let out = ok(cli(dir.path()).args(["migrate", "run", "--dry-run"]));
    assert!(out.contains("would apply V1__app_meta"), "{out}");
    assert!(
        !dir.path().join("data/appliance.db").exists(),
        "dry run writes nothing"
    );

    let out = ok(cli(dir.path()).args(["migrate", "run"]));
    assert!(out.contains("applied V1__app_meta"), "{out}");
    let out = ok(cli(dir.path()).args(["migrate", "run"]));
    assert!(out.contains("nothing to apply"), "{out}");
    let out = ok(cli(dir.path()).args(["migrate", "validate"]));
    assert!(out.contains("migrations valid"), "{out}");
    let out = ok(cli(dir.path()).args(["migrate", "status", "--json"]));
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let latest = appliance::db::migrations::embedded().len();
    assert_eq!(doc["current_version"], latest);
    assert_eq!(doc["applied"][0]["name"], "app_meta");
    assert!(doc["applied"][0]["applied_on"].is_string());
    assert!(doc["applied"][0]["checksum"].is_string());

    // Sabotage: the applied migration's checksum no longer matches the binary's.
    let db = dir.path().join("data/appliance.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute(
        "UPDATE refinery_schema_history SET checksum = '42' WHERE version = 1",
        [],
    )
    .unwrap();
    drop(conn);
    let line = fails(cli(dir.path()).args(["migrate", "validate"]));
    assert!(
        line.contains("V1__app_meta was changed after it was applied"),
        "{line}"
    );
    let line = fails(cli(dir.path()).args(["serve", "--listen", "127.0.0.1:0"]));
    assert!(
        line.contains("V1__app_meta was changed after it was applied"),
        "{line}"
    );
    let line = fails(cli(dir.path()).args(["migrate", "run"]));
    assert!(line.contains("changed after it was applied"), "{line}");
}

#[test]
fn a_database_newer_than_the_binary_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    ok(cli(dir.path()).args(["migrate", "run"]));
    let conn = rusqlite::Connection::open(dir.path().join("data/appliance.db")).unwrap();
    conn.execute(
        "INSERT INTO refinery_schema_history (version, name, applied_on, checksum)
         VALUES (999, 'from_the_future', '2030-01-01T00:00:00Z', '1')",
        [],
    )
    .unwrap();
    drop(conn);
    for args in [
        vec!["migrate", "validate"],
        vec!["serve", "--listen", "127.0.0.1:0"],
    ] {
        let line = fails(cli(dir.path()).args(&args));
        assert!(line.contains("newer than this binary"), "{args:?}: {line}");
        assert!(line.contains("V999__from_the_future"), "{line}");
    }
}

#[test]
fn a_non_empty_database_is_copied_before_migrating_and_the_copy_opens() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    // A database with data but no migrations applied (e.g. created by an older tool).
    let db = dir.path().join("data/appliance.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("CREATE TABLE legacy(x TEXT); INSERT INTO legacy VALUES ('keep me');")
        .unwrap();
    drop(conn);

    let out = ok(cli(dir.path()).args(["migrate", "run"]));
    assert!(out.contains("kept a copy"), "{out}");
    let copies: Vec<_> = std::fs::read_dir(dir.path().join("data/backups"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(copies.len(), 1, "{copies:?}");
    let name = copies[0].file_name().unwrap().to_string_lossy().to_string();
    let latest = appliance::db::migrations::embedded().len();
    assert!(
        name.starts_with(&format!("pre-migrate-v0-to-v{latest}-")) && name.ends_with(".db"),
        "{name}"
    );
    let copy = rusqlite::Connection::open(&copies[0]).unwrap();
    let x: String = copy
        .query_row("SELECT x FROM legacy", [], |r| r.get(0))
        .unwrap();
    assert_eq!(x, "keep me");
    let check: String = copy
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

#[test]
fn serve_refuses_pending_migrations_when_told_not_to_migrate() {
    let dir = tempfile::tempdir().unwrap();
    let line = fails(
        cli(dir.path())
            .env("APPLIANCE__DATABASE__MIGRATE_ON_START", "false")
            .args(["serve", "--listen", "127.0.0.1:0"]),
    );
    assert!(line.contains("appliance migrate run"), "{line}");
}

#[test]
fn a_corrupt_database_makes_serve_exit_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    ok(cli(dir.path()).args(["migrate", "run"]));
    let db = dir.path().join("data/appliance.db");
    // Keep the header, destroy every page after the first.
    let mut bytes = std::fs::read(&db).unwrap();
    assert!(bytes.len() > 4096);
    for b in &mut bytes[4096..] {
        *b = 0xFF;
    }
    std::fs::write(&db, &bytes).unwrap();
    let line = fails(cli(dir.path()).args(["serve", "--listen", "127.0.0.1:0"]));
    assert!(line.contains("corrupt"), "{line}");
    assert!(line.contains("restore"), "{line}");

    // Not a database at all.
    std::fs::write(&db, vec![b'x'; 10_000]).unwrap();
    let line = fails(cli(dir.path()).args(["serve", "--listen", "127.0.0.1:0"]));
    assert!(
        line.contains("not a database") && line.contains("restore"),
        "{line}"
    );
}

#[test]
fn run_command_with_defaults_serves_and_sigterm_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start_server(dir.path());
    let (code, body) = http_get(&server.addr, "/readyz").expect("readyz answers");
    assert_eq!(code, 200, "{body}");
    let (code, _) = http_get(&server.addr, "/health").unwrap();
    assert_eq!(code, 200);
    // Default data dir is ./data, in WAL mode, migrations applied.
    let db = dir.path().join("data/appliance.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let n: i64 = conn
        .query_row("SELECT count(*) FROM refinery_schema_history", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(n >= 1);
    drop(conn);

    // A second server on the same directory is refused naming the holder's pid.
    let line = fails(cli(dir.path()).args(["serve", "--listen", "127.0.0.1:0"]));
    assert!(line.contains(&server.child.id().to_string()), "{line}");
    assert!(line.contains("data"), "{line}");

    let status = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = poll(Duration::from_secs(30), || {
        server.child.try_wait().ok().flatten()
    })
    .expect("server exits after SIGTERM");
    assert!(exit.success(), "{exit:?}");
    assert_eq!(
        wal_size(&db),
        0,
        "WAL checkpointed and truncated at shutdown"
    );
}

#[test]
fn packaged_config_is_valid_and_documents_every_key() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/appliance.toml"),
    )
    .unwrap();
    let packaged = appliance::config::Config::from_toml_str(&text).expect("packaged config parses");
    assert_eq!(packaged.data_dir, Path::new("/var/lib/appliance"));
    // Every key of the effective configuration appears in the file (commented or not).
    let defaults = appliance::config::Config::default();
    let rendered = toml::to_string(&defaults).unwrap();
    let doc: toml::Table = rendered.parse().unwrap();
    let mut keys = Vec::new();
    let mut headers = Vec::new();
    for (k, v) in &doc {
        match v.as_table() {
            Some(t) => {
                for (sub, w) in t {
                    match w.as_table() {
                        // A nested section: its header and its keys.
                        Some(inner) => {
                            headers.push(format!("[{k}.{sub}]"));
                            keys.extend(inner.keys().cloned());
                        }
                        None => keys.push(sub.clone()),
                    }
                }
            }
            None => keys.push(k.clone()),
        }
    }
    for h in headers {
        assert!(
            text.lines().any(|l| l.trim() == h),
            "packaging/appliance.toml does not document {h}"
        );
    }
    keys.extend(["dsn".to_string(), "dsn_file".to_string()]);
    for key in keys {
        assert!(
            text.lines().any(|l| l
                .trim_start_matches(['#', ' '])
                .starts_with(&format!("{key} ="))),
            "packaging/appliance.toml does not document `{key}`"
        );
    }
    // Apart from data_dir, the file states the built-in defaults.
    let mut expected = defaults;
    expected.data_dir = packaged.data_dir.clone();
    assert_eq!(
        toml::to_string(&packaged).unwrap(),
        toml::to_string(&expected).unwrap()
    );
}

#[test]
fn the_text_log_has_no_colour_codes_when_stderr_is_not_a_terminal() {
    // Under systemd stderr is the journal: escape sequences would be stored as text.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serve.log");
    let mut child = cli(dir.path())
        .env("APPLIANCE__LOG__FORMAT", "text")
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawn serve");
    let text = poll(Duration::from_secs(30), || {
        let t = std::fs::read_to_string(&log).ok()?;
        t.contains("listening on http://").then_some(t)
    });
    let _ = child.kill();
    let _ = child.wait();
    let text = text.expect("the server logs where it listens");
    assert!(text.contains("INFO"), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "escape sequences in the log: {text:?}"
    );
}

/// Every `appliance …` command the admin UI shows (in its JavaScript's strings) parses:
/// run against the real binary in a scratch directory, none is a usage error (before,
/// two hints ended in "unexpected argument": the CLI wants `--email`).
#[test]
fn every_command_the_ui_shows_is_accepted_by_the_cli() {
    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("web/assets");
    let mut sources = Vec::new();
    for dir in [assets.clone(), assets.join("pages")] {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "js") {
                sources.push(std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    let mut commands = Vec::new();
    for src in &sources {
        // Double-quoted string literals; a `\n` inside one separates shell lines.
        for literal in src.split('"').skip(1).step_by(2) {
            for line in literal.split("\\n") {
                let line = line.trim().trim_start_matches("sudo ").trim();
                if let Some(args) = line.strip_prefix("appliance ") {
                    commands.push(args.to_string());
                }
            }
        }
    }
    assert!(commands.len() >= 4, "found {commands:?}");
    let tmp = tempfile::tempdir().unwrap();
    for args in &commands {
        let words: Vec<String> = args
            .split_whitespace()
            .map(|w| match w {
                "EMAIL" => "someone@example.org".to_string(),
                "ARCHIVE" => "appliance-20260101T000000.000Z-manual.tar.zst".to_string(),
                other => other.to_string(),
            })
            .collect();
        let out = cli(tmp.path()).args(&words).output().unwrap();
        let err = stderr(&out);
        assert_ne!(
            out.status.code(),
            Some(2),
            "`appliance {args}` is a usage error: {err}"
        );
        assert!(
            !err.contains("unexpected argument") && !err.contains("Usage:"),
            "`appliance {args}`: {err}"
        );
    }
}

/// Start-up reads the whole database (`quick_check`) only after a stop that was not
/// clean; after a clean stop the check runs once the server is up, so a file damaged
/// while the server was stopped (bit rot: the same size and time) is still reported.
#[test]
fn after_a_clean_stop_the_database_check_runs_after_start_and_still_finds_damage() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data/appliance.db");
    let marker = dir.path().join("data/appliance.db-clean-stop");
    let stop = |server: &mut common::Server| {
        std::process::Command::new("kill")
            .args(["-TERM", &server.child.id().to_string()])
            .status()
            .unwrap();
        let exit = poll(Duration::from_secs(30), || {
            server.child.try_wait().ok().flatten()
        })
        .expect("exits after SIGTERM");
        assert!(exit.success(), "{exit:?}");
    };
    let mut server = start_server(dir.path());
    stop(&mut server);
    assert!(marker.is_file(), "a clean stop is recorded");
    let mut server = start_server(dir.path());
    assert!(!marker.exists(), "taken at start: a crash now leaves none");
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    assert!(
        !marker.exists(),
        "killed: the next start checks the whole file first"
    );
    let mut server = start_server(dir.path());
    stop(&mut server);
    assert!(marker.is_file());

    // Damage the last page while stopped, keeping the file's size and modification time.
    let modified = std::fs::metadata(&db).unwrap().modified().unwrap();
    let mut bytes = std::fs::read(&db).unwrap();
    let n = bytes.len();
    for b in &mut bytes[n - 4096..] {
        *b = 0xFF;
    }
    std::fs::write(&db, &bytes).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&db)
        .unwrap()
        .set_modified(modified)
        .unwrap();
    let log = dir.path().join("serve.log");
    let mut child = cli(dir.path())
        .env("APPLIANCE__SERVER__LISTEN", "127.0.0.1:0")
        .env("APPLIANCE__LOG__FORMAT", "json")
        .arg("serve")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // Found either way: at start (a page the start reads) or by the check after it.
    let found = poll(Duration::from_secs(30), || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Ok(Some(status)) = child.try_wait() {
            return Some(format!("exited {status}: {text}"));
        }
        let addr = common::log_value(&log, "address")?;
        let (_, body) = http_get(&addr, "/readyz")?;
        body.contains("found the file damaged").then_some(body)
    })
    .expect("the damage is reported");
    assert!(
        found.contains("damaged") || found.contains("malformed") || found.contains("corrupt"),
        "{found}"
    );
    let _ = child.kill();
    let _ = child.wait();
}
