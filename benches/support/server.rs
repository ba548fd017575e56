//! Shared by the benchmarks: the release binary started on a free loopback port in a
//! temporary data directory, a bulk load of the synthetic corpus, latency statistics
//! and /proc readings. Asserts only what a benchmark needs to be meaningful.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::corpus::{Corpus, MARKER};

pub fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub struct Server {
    pub child: Child,
    pub base: String,
    pub dir: tempfile::TempDir,
    /// An admin API token (made with `appliance user create` / `token create`).
    pub token: String,
}

impl Server {
    /// A client that sends the admin token with every request.
    pub fn client(&self) -> reqwest::Client {
        client(&self.token)
    }
}

pub fn client(token: &str) -> reqwest::Client {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().expect("header"),
    );
    reqwest::Client::builder()
        .default_headers(h)
        .build()
        .expect("client")
}

/// Run a command that must succeed; its stdout, trimmed.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Run the binary in `dir` with the bench environment; its stdout.
fn admin_cli(dir: &std::path::Path, args: &[&str]) -> String {
    run_ok(
        Command::new(env!("CARGO_BIN_EXE_appliance"))
            .current_dir(dir)
            .env("APPLIANCE_CONFIG", "/dev/null")
            .args(args),
    )
}

/// A loopback port that is free now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Poll `url` until it answers 200 (30 s at most).
pub async fn wait_for_200(url: &str) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client
        .get(url)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .ok()
        != Some(200)
    {
        assert!(Instant::now() < deadline, "{url} never answered 200");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Server {
    /// SIGTERM and wait for the clean stop (the data directory stays).
    pub fn stop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
        }
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The release binary with production defaults (log level info, to /dev/null here).
pub async fn start() -> Server {
    start_with(&[]).await
}

/// [`start`] with extra environment (configuration overrides such as
/// `APPLIANCE__DATABASE__CHECKPOINT_INTERVAL_MS`).
pub async fn start_with(env: &[(&str, &str)]) -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    admin_cli(
        dir.path(),
        &[
            "user",
            "create",
            "--email",
            "bench@example.org",
            "--role",
            "admin",
        ],
    );
    let token = admin_cli(
        dir.path(),
        &[
            "token",
            "create",
            "--email",
            "bench@example.org",
            "--name",
            "bench",
        ],
    );
    let (child, base) = spawn_env(dir.path(), port, env).await;
    Server {
        child,
        base,
        dir,
        token,
    }
}

impl Server {
    /// Stop the server cleanly and start it again on the same data and port (an
    /// operator's restart): the numbers that follow carry nothing over from before.
    pub async fn restart(&mut self) {
        self.stop();
        let port = self
            .base
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .expect("port");
        let (child, _) = spawn(self.dir.path(), port).await;
        self.child = child;
    }
}

/// Start `appliance serve` in `dir` on `port` and wait until /readyz says 200.
async fn spawn(dir: &std::path::Path, port: u16) -> (Child, String) {
    spawn_env(dir, port, &[]).await
}

async fn spawn_env(dir: &std::path::Path, port: u16, env: &[(&str, &str)]) -> (Child, String) {
    let child = Command::new(env!("CARGO_BIN_EXE_appliance"))
        .current_dir(dir)
        .envs(env.iter().copied())
        .env("APPLIANCE_CONFIG", "/dev/null")
        // Load generators from one address would be throttled by the per-IP limits
        // (PocketBase, the comparison, has its limiter off by default too).
        .env("APPLIANCE__RATE_LIMIT__ENABLED", "false")
        .env("APPLIANCE__SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("APPLIANCE__METRICS__LISTEN", "127.0.0.1:0")
        .arg("serve")
        .stdout(Stdio::null())
        // BENCH_SERVER_LOG=FILE keeps the server's log (RUST_LOG applies).
        .stderr(match std::env::var("BENCH_SERVER_LOG") {
            Ok(path) => std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map(Stdio::from)
                .unwrap_or_else(|_| Stdio::null()),
            Err(_) => Stdio::null(),
        })
        .spawn()
        .expect("spawn");
    let base = format!("http://127.0.0.1:{port}");
    wait_for_200(&format!("{base}/readyz")).await;
    (child, base)
}

pub fn rss_mib(pid: u32, key: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

/// Write every dirty page of the machine to disk before a phase, so that a phase does not
/// pay for the writeback of what came before it (a build just finished, the previous
/// phase's database): the first phase would otherwise be measured against a busy disk.
pub fn settle() {
    rustix::fs::sync();
}

/// CPU seconds (user + system) the process has used so far.
pub fn cpu_secs(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which is in parentheses): utime is the 12th, stime the 13th.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / 100.0 // USER_HZ is 100 on Linux
}

pub struct Stats {
    pub count: usize,
    pub secs: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

pub fn stats(mut lat: Vec<Duration>, secs: f64) -> Stats {
    lat.sort();
    let pick = |q: f64| {
        lat.get(((lat.len() as f64 * q) as usize).min(lat.len().saturating_sub(1)))
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(0.0)
    };
    Stats {
        count: lat.len(),
        secs,
        p50_ms: pick(0.50),
        p99_ms: pick(0.99),
    }
}

impl Stats {
    pub fn rate(&self) -> f64 {
        self.count as f64 / self.secs
    }
}

/// POST every body to `url`, two requests at a time (each must answer 2xx).
pub async fn post_all(url: &str, client: &reqwest::Client, bodies: Vec<Value>) {
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..2)
        .map(|_| {
            let (bodies, next, url, client) = (
                bodies.clone(),
                next.clone(),
                url.to_string(),
                client.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(b) = bodies.get(i) else { break };
                    let res = client.post(&url).json(b).send().await.expect("bulk");
                    let status = res.status();
                    let text = res.text().await.unwrap_or_default();
                    assert!(status.is_success(), "{status}: {text:.300}");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
}

/// Wait until a search for the corpus marker word counts `n` articles.
pub async fn wait_searchable(server: &Server, n: usize) {
    let client = reqwest::Client::new();
    loop {
        let v: Value = client
            .get(format!("{}/api/search?q={MARKER}&limit=1", server.base))
            .send()
            .await
            .expect("search")
            .json()
            .await
            .expect("json");
        // At least: wrk may send a few more than asked while it stops.
        if v["total"].as_u64().is_some_and(|t| t >= n as u64) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// What a bulk load measured.
pub struct Bulk {
    /// Articles per second until all were stored, and until all were searchable.
    pub stored_rate: f64,
    pub searchable_rate: f64,
    /// The server's CPU time (user + system) from the first request until searchable.
    pub cpu_secs: f64,
}

/// Bulk-load `n` articles (1,000 per request, 2 requests at a time) and wait until all
/// are searchable. Returns the server (loaded) and what was measured.
pub async fn bulk_load(n: usize) -> (Server, Bulk) {
    settle();
    let server = start().await;
    let mut corpus = Corpus::new(2);
    let batches: Vec<Value> = (0..n)
        .map(|i| corpus.article(i))
        .collect::<Vec<_>>()
        .chunks(1000)
        .map(|c| Value::Array(c.to_vec()))
        .collect();
    let started = Instant::now();
    let cpu_before = cpu_secs(server.child.id());
    post_all(
        &format!("{}/api/articles/bulk", server.base),
        &server.client(),
        batches,
    )
    .await;
    let stored = started.elapsed().as_secs_f64();
    wait_searchable(&server, n).await;
    let searchable = started.elapsed().as_secs_f64();
    let cpu_secs = cpu_secs(server.child.id()) - cpu_before;
    let bulk = Bulk {
        stored_rate: n as f64 / stored,
        searchable_rate: n as f64 / searchable,
        cpu_secs,
    };
    (server, bulk)
}
