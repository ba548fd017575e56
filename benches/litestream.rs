//! Litestream beside appliance: the single-create load (W1: `BENCH_LITESTREAM_CREATES`,
//! default 20,000 articles of the benchmark corpus, one per request, c = 16, the
//! built-in load generator) with and without Litestream 0.5.17 replicating to a local
//! S3-compatible server (`rclone serve s3`), alternated twice; and the replication lag:
//! sampled every 100 ms during the load as the age of the newest level-0 file (shipped
//! from the WAL) Litestream put into the bucket, and at the end as the time from the last acknowledged write until a
//! file written after it is in the bucket.
//!
//! Prints numbers; asserts nothing about speed. Run: `scripts/bench-litestream.sh`.

#[allow(dead_code)]
#[path = "support/corpus.rs"]
mod corpus;
#[path = "support/loadgen.rs"]
mod loadgen;
#[path = "support/server.rs"]
mod server;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use server::{Stats, cpu_secs, env_num, stats};

const KEY_ID: &str = "bench";
const SECRET: &str = "bench-secret";

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tool(var: &str) -> String {
    std::env::var(var)
        .unwrap_or_else(|_| panic!("{var} is not set: run scripts/bench-litestream.sh"))
}

/// The newest modification time of a file under `dir`.
fn newest(dir: &Path) -> Option<SystemTime> {
    let mut best = None;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else if let Ok(t) = m.modified()
                && best.is_none_or(|b| t > b)
            {
                best = Some(t);
            }
        }
    }
    best
}

async fn creates(base: &str, token: &str, pid: u32, articles: Arc<Vec<Bytes>>) -> (Stats, f64) {
    let next = Arc::new(AtomicUsize::new(0));
    let cpu0 = cpu_secs(pid);
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
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("task"));
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_secs(pid) - cpu0;
    (stats(lat, secs), cpu)
}

struct Replicated {
    _s3: Proc,
    _litestream: Proc,
    bucket: PathBuf,
}

async fn with_litestream(server: &server::Server, root: &Path) -> Replicated {
    let bucket = root.join("s3/replica");
    std::fs::create_dir_all(&bucket).expect("bucket");
    let port = server::free_port();
    let s3 = Proc(
        Command::new(tool("APPLIANCE_TEST_RCLONE"))
            .args(["serve", "s3", "--addr", &format!("127.0.0.1:{port}")])
            .args(["--auth-key", &format!("{KEY_ID},{SECRET}")])
            .arg(root.join("s3"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rclone"),
    );
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "rclone did not listen"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let db = server.dir.path().join("data/appliance.db");
    let cfg = root.join("litestream.yml");
    std::fs::write(
        &cfg,
        format!(
            "dbs:\n  - path: {}\n    replica:\n      type: s3\n      bucket: replica\n      path: appliance\n      endpoint: http://127.0.0.1:{port}\n      region: us-east-1\n      force-path-style: true\n      sync-interval: 1s\n",
            db.display()
        ),
    )
    .expect("config");
    let litestream = Proc(
        Command::new(tool("APPLIANCE_TEST_LITESTREAM"))
            .env_remove("AWS_CA_BUNDLE")
            .env("LITESTREAM_ACCESS_KEY_ID", KEY_ID)
            .env("LITESTREAM_SECRET_ACCESS_KEY", SECRET)
            .args(["replicate", "-config"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("litestream"),
    );
    // Replicating once its first snapshot is in the bucket.
    let t = Instant::now();
    while newest(&bucket).is_none() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no snapshot in the bucket"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Replicated {
        _s3: s3,
        _litestream: litestream,
        // Level 0: the files Litestream ships from the WAL (compactions write levels 1+).
        bucket: bucket.join("appliance/0000"),
    }
}

fn row(what: &str, st: &Stats, cpu: f64) {
    println!(
        "| {what:<28} | {:>7.0} | {:>6.2} | {:>6.2} | {:>4.0} |",
        st.count as f64 / st.secs,
        st.p50_ms,
        st.p99_ms,
        cpu * 1e6 / st.count.max(1) as f64
    );
}

#[tokio::main]
async fn main() {
    let n = env_num("BENCH_LITESTREAM_CREATES", 20_000);
    let mut c = corpus::Corpus::new(5);
    let articles: Arc<Vec<Bytes>> = Arc::new(
        (0..n)
            .map(|i| Bytes::from(serde_json::to_vec(&c.article(i)).expect("json")))
            .collect(),
    );
    println!(
        "Litestream 0.5.17 beside appliance: {n} single creates, c=16 (built-in load generator)"
    );
    println!();
    println!("| run | creates/s | p50 ms | p99 ms | server CPU us/create |");
    println!("|---|---:|---:|---:|---:|");
    let mut rates = (Vec::new(), Vec::new());
    let mut lags = Vec::new();
    for round in 1..=2 {
        for replicated in [false, true] {
            let root = tempfile::tempdir().expect("tempdir");
            let env: &[(&str, &str)] = if replicated {
                &[("APPLIANCE__DATABASE__CHECKPOINT_INTERVAL_MS", "0")]
            } else {
                &[]
            };
            let server = server::start_with(env).await;
            let pid = server.child.id();
            let rep = if replicated {
                Some(with_litestream(&server, root.path()).await)
            } else {
                None
            };
            server::settle();
            // The bucket's newest file's age, every 100 ms while the load runs.
            let done = Arc::new(AtomicBool::new(false));
            let sampler = rep.as_ref().map(|r| {
                let (bucket, done) = (r.bucket.clone(), done.clone());
                std::thread::spawn(move || {
                    let mut ages = Vec::new();
                    while !done.load(Ordering::Relaxed) {
                        if let Some(t) = newest(&bucket) {
                            ages.push(SystemTime::now().duration_since(t).unwrap_or_default());
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    ages
                })
            });
            let (st, cpu) = creates(&server.base, &server.token, pid, articles.clone()).await;
            let end = SystemTime::now();
            done.store(true, Ordering::Relaxed);
            let label = format!(
                "round {round}, {}",
                if replicated {
                    "with Litestream"
                } else {
                    "without"
                }
            );
            row(&label, &st, cpu);
            if replicated {
                rates.1.push(st.count as f64 / st.secs);
            } else {
                rates.0.push(st.count as f64 / st.secs);
            }
            if let (Some(r), Some(s)) = (&rep, sampler) {
                let mut ages = s.join().expect("sampler");
                ages.sort();
                let t = Instant::now();
                while newest(&r.bucket).is_none_or(|m| m < end) {
                    assert!(
                        t.elapsed() < Duration::from_secs(60),
                        "the last write never reached the bucket"
                    );
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                lags.push((
                    ages.get(ages.len() / 2).copied().unwrap_or_default(),
                    ages.last().copied().unwrap_or_default(),
                    t.elapsed(),
                ));
            }
        }
    }
    println!();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    println!(
        "creates with Litestream / without: {:.2} (means of {} runs each)",
        mean(&rates.1) / mean(&rates.0),
        rates.0.len()
    );
    for (i, (p50, max, end)) in lags.iter().enumerate() {
        println!(
            "replication lag, round {}: during the load p50 {:.2} s, max {:.2} s (age of the bucket's newest file); last write in the bucket {:.2} s after it was acknowledged",
            i + 1,
            p50.as_secs_f64(),
            max.as_secs_f64(),
            end.as_secs_f64()
        );
    }
}
