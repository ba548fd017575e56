//! Off-site copies: the upload of a large archive (`BENCH_OFFSITE_ARTICLES`, default
//! 100,000 articles of the benchmark corpus, imported and indexed, then `appliance
//! backup`) to a local S3-compatible server (`rclone serve s3`), by `appliance backup
//! push` (age encryption and the multipart upload) against `rclone copyto` of the same
//! file through the same S3 API; and the writers' latency while a push runs: single
//! creates at c=16 against the server on the same data, with and without a push beside.
//!
//! Prints numbers; asserts nothing about speed. Run: `scripts/bench-offsite.sh`.

#[path = "../tests/common/mod.rs"]
mod common;
#[allow(dead_code)]
#[path = "support/corpus.rs"]
mod corpus;
#[path = "support/loadgen.rs"]
mod loadgen;

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::s3::{KEY_ID, S3, SECRET};

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn config(dir: &Path, s3: &S3) -> std::path::PathBuf {
    let identity = age::x25519::Identity::generate();
    let cfg = dir.join("appliance.toml");
    std::fs::write(
        &cfg,
        format!(
            "[backup.remote]\nbucket = \"offsite\"\nendpoint = \"{}\"\npath_style = true\naccess_key_id = \"{KEY_ID}\"\nsecret_access_key = \"{SECRET}\"\nrecipients = [\"{}\"]\n",
            s3.endpoint(),
            identity.to_public()
        ),
    )
    .expect("config");
    cfg
}

fn run(dir: &Path, cfg: &Path, args: &[&str]) -> (f64, String) {
    let t = Instant::now();
    let o = common::cli(dir)
        .env("APPLIANCE_CONFIG", cfg)
        .args(args)
        .output()
        .expect("appliance");
    let secs = t.elapsed().as_secs_f64();
    assert!(o.status.success(), "{args:?}: {}", common::stderr(&o));
    (secs, common::stdout(&o))
}

/// c=16 single creates of `articles`; (creates/s, p50 ms, p99 ms, max ms).
async fn creates(base: &str, token: &str, articles: Arc<Vec<Bytes>>) -> (f64, f64, f64, f64) {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (articles, next, base, token) = (
                articles.clone(),
                next.clone(),
                base.to_string(),
                token.to_string(),
            );
            tokio::spawn(async move {
                let mut conn = loadgen::Conn::open(&base, &token).await;
                let mut lat = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(a) = articles.get(i) else { break };
                    let t = Instant::now();
                    let status = conn.post_json("/api/articles", a.clone()).await;
                    assert!(status.is_success(), "{status}");
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut lat: Vec<Duration> = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("task"));
    }
    let secs = started.elapsed().as_secs_f64();
    lat.sort();
    let pick = |q: f64| {
        lat.get(((lat.len() as f64 * q) as usize).min(lat.len() - 1))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    (
        lat.len() as f64 / secs,
        pick(0.5),
        pick(0.99),
        lat.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
    )
}

#[tokio::main]
async fn main() {
    let n = env_num("BENCH_OFFSITE_ARTICLES", 100_000);
    let root = tempfile::tempdir().expect("tempdir");
    let s3 = S3::start(&root.path().join("s3"), &["offsite", "plain"]);
    let dir = root.path().join("vm");
    std::fs::create_dir_all(&dir).expect("dir");
    // The corpus, imported and indexed, then one backup without the remote.
    let file = dir.join("articles.jsonl");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&file).expect("create"));
    let mut c = corpus::Corpus::new(9);
    for i in 0..n {
        serde_json::to_writer(&mut out, &c.article(i)).expect("write");
        out.write_all(b"\n").expect("write");
    }
    out.flush().expect("flush");
    drop(out);
    let none = dir.join("none.toml");
    std::fs::write(&none, "").expect("config");
    run(&dir, &none, &["migrate", "run"]);
    run(
        &dir,
        &none,
        &[
            "articles",
            "import",
            "--batch",
            "5000",
            file.to_str().expect("path"),
        ],
    );
    std::fs::remove_file(&file).expect("remove");
    run(&dir, &none, &["index", "rebuild"]);
    run(&dir, &none, &["backup"]);
    let backups = dir.join("data/backups");
    let archive = std::fs::read_dir(&backups)
        .expect("backups")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "zst"))
        .expect("an archive");
    let size = std::fs::metadata(&archive).expect("archive").len() as f64;
    println!(
        "Off-site copies: {n} articles, archive {:.0} MiB, to rclone serve s3 on 127.0.0.1",
        size / 1048576.0
    );
    println!();
    println!("| upload | s | MiB/s |");
    println!("|---|---:|---:|");
    let cfg = config(&dir, &s3);
    let name = archive
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for round in 0..2 {
        let (secs, _) = run(&dir, &cfg, &["backup", "push", &name]);
        println!(
            "| appliance backup push (age + multipart) | {secs:.2} | {:.0} |",
            size / 1048576.0 / secs
        );
        ours.push(secs);
        let t = Instant::now();
        let o = std::process::Command::new(common::s3::tool("APPLIANCE_TEST_RCLONE"))
            .env_remove("AWS_CA_BUNDLE")
            .env("RCLONE_CONFIG_BENCH_TYPE", "s3")
            .env("RCLONE_CONFIG_BENCH_PROVIDER", "Other")
            .env("RCLONE_CONFIG_BENCH_ENDPOINT", s3.endpoint())
            .env("RCLONE_CONFIG_BENCH_ACCESS_KEY_ID", KEY_ID)
            .env("RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY", SECRET)
            .env("RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE", "true")
            // A new key each round: rclone skips a copy that is already there.
            .args(["copyto", "--s3-no-check-bucket"])
            .arg(&archive)
            .arg(format!("bench:plain/copy-{round}/{name}"))
            .output()
            .expect("rclone copy");
        let secs = t.elapsed().as_secs_f64();
        assert!(o.status.success(), "rclone copy: {}", common::stderr(&o));
        println!(
            "| rclone copyto (same file, same server, a new key) | {secs:.2} | {:.0} |",
            size / 1048576.0 / secs
        );
        theirs.push(secs);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    println!();
    println!(
        "appliance's upload takes {:.2}x rclone's time (mean of 2; it also encrypts)",
        mean(&ours) / mean(&theirs)
    );

    // Writers while a push runs beside them (the server on the same data).
    let token = common::cli_admin_token(&dir);
    let mut server = common::start_server_env(
        &dir,
        &[
            ("APPLIANCE_CONFIG", cfg.to_str().expect("cfg")),
            ("APPLIANCE__RATE_LIMIT__ENABLED", "false"),
        ],
    );
    let base = format!("http://{}", server.addr);
    let creates_n = env_num("BENCH_OFFSITE_CREATES", 20_000);
    let mut c = corpus::Corpus::new(21);
    let bodies: Vec<Bytes> = (0..2 * creates_n)
        .map(|i| {
            let mut a = c.article(n + i);
            a["external_id"] = serde_json::json!(format!("w-{i}"));
            Bytes::from(serde_json::to_vec(&a).expect("json"))
        })
        .collect();
    let (quiet, busy) = bodies.split_at(creates_n);
    let quiet = creates(&base, &token, Arc::new(quiet.to_vec())).await;
    let mut push = common::cli(&dir)
        .env("APPLIANCE_CONFIG", &cfg)
        .args(["backup", "push", &name])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("push");
    let started = Instant::now();
    let during = creates(&base, &token, Arc::new(busy.to_vec())).await;
    let load_secs = started.elapsed().as_secs_f64();
    let pushed = push.wait().expect("push");
    let push_secs = started.elapsed().as_secs_f64();
    assert!(pushed.success());
    let _ = server.child.kill();
    let _ = server.child.wait();
    println!();
    println!("| creates, c=16 | creates/s | p50 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|---:|");
    for (what, r) in [
        ("without an upload", quiet),
        ("while backup push runs", during),
    ] {
        println!(
            "| {what} | {:.0} | {:.2} | {:.2} | {:.1} |",
            r.0, r.1, r.2, r.3
        );
    }
    println!(
        "(the second load took {load_secs:.2} s; the push beside it {push_secs:.2} s from the same start)"
    );
}
