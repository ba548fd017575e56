//! Test harness: `spawn_app()` builds the real appliance in-process on 127.0.0.1:0 with
//! its own temporary data directory; `cli()` runs the real binary. Logs stay quiet
//! unless `TEST_LOG` is set.
#![allow(dead_code)]

pub mod pg;
pub mod s3;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use appliance::app::App;
use appliance::config::Config;
use appliance::state::AppState;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct TestApp {
    pub addr: SocketAddr,
    /// Where `GET /metrics` is served.
    pub metrics_addr: Option<SocketAddr>,
    pub base: String,
    pub data_dir: PathBuf,
    /// Sends the admin API token with every request.
    pub client: reqwest::Client,
    /// Sends no credentials.
    pub anon: reqwest::Client,
    /// An admin API token (user `admin@test.example`).
    pub token: String,
    state: Option<AppState>,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
    _tmp: Option<tempfile::TempDir>,
}

/// A config for tests: temp data dir, a free port, disk floors low enough for any CI disk.
pub fn test_config(data_dir: &Path) -> Config {
    let mut c = Config {
        data_dir: data_dir.to_path_buf(),
        ..Config::default()
    };
    c.server.listen = "127.0.0.1:0".parse().expect("addr");
    c.metrics.listen = "127.0.0.1:0".parse().expect("addr");
    // Tests drive load from one address; the per-IP limits are tested on their own
    // (tests/security.rs turns them on where it checks them).
    c.rate_limit.enabled = false;
    c.health.min_free_disk_bytes = 1024 * 1024;
    c.health.warn_free_disk_bytes = 2 * 1024 * 1024;
    c
}

fn init_test_log() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = appliance::telemetry::init_tracing(&Config::default().log, Some("debug"));
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut app = spawn_in(&tmp.path().join("data"), tweak)
        .await
        .expect("app builds");
    app._tmp = Some(tmp);
    app
}

/// Build and start an app on an existing data directory (kept by the caller).
pub async fn spawn_in(data_dir: &Path, tweak: impl FnOnce(&mut Config)) -> anyhow::Result<TestApp> {
    init_test_log();
    let mut config = test_config(data_dir);
    tweak(&mut config);
    let app = App::build(config).await?;
    let token = admin_token(app.state()).await;
    let addr = app.local_addr();
    let metrics_addr = app.metrics_addr();
    let state = app.state().clone();
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    Ok(TestApp {
        addr,
        metrics_addr,
        base: format!("http://{addr}"),
        data_dir: data_dir.to_path_buf(),
        client: client_with_token(&token),
        anon: reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .expect("client"),
        token,
        state: Some(state),
        shutdown: Some(tx),
        handle: Some(handle),
        _tmp: None,
    })
}

/// A request of a test client that gets no answer in this long fails the test (a server
/// that stopped answering must not hang the test run).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Longest wait for a clean stop before the test fails.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(120);

/// Email of the admin every TestApp has.
pub const ADMIN_EMAIL: &str = "admin@test.example";

/// Create (once) the test admin and a fresh API token for it, through the same
/// operations the CLI uses.
pub async fn admin_token(state: &AppState) -> String {
    use appliance::auth::ops::{self, Actor, NewUser, TokenRequest};
    state
        .db()
        .write(|c| {
            let actor = Actor::cli();
            let owner = match appliance::db::users::by_email(c, ADMIN_EMAIL)? {
                Some(u) => u,
                None => ops::create_user(
                    c,
                    &NewUser {
                        email: ADMIN_EMAIL.into(),
                        display_name: "Test Admin".into(),
                        role: appliance::auth::Role::Admin,
                        password_hash: None,
                    },
                    &actor,
                )?,
            };
            let req = TokenRequest {
                owner,
                name: "tests".into(),
                role: appliance::auth::Role::Admin,
                expires_at: None,
            };
            ops::issue_token(c, &req, &actor).map(|(t, _)| t)
        })
        .await
        .expect("test admin token")
}

/// A client that sends `Authorization: Bearer <token>` with every request.
pub fn client_with_token(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().expect("header"),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("client")
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let res = self.get(path).await;
        let status = res.status().as_u16();
        (status, res.json().await.expect("json body"))
    }

    /// Send a JSON body with `method`; the status and the JSON answer (Null if none).
    pub async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> (u16, Value) {
        let res = self
            .client
            .request(method, self.url(path))
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send_json(reqwest::Method::POST, path, body).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.send_json(reqwest::Method::PATCH, path, body).await
    }

    pub fn state(&self) -> &AppState {
        self.state.as_ref().expect("state until stopped")
    }

    /// Insert a row through the real write path (a test key in app_meta).
    pub async fn state_write(&self, i: usize) {
        self.state()
            .db()
            .write(move |tx| {
                tx.execute(
                    "INSERT INTO app_meta (key, value) VALUES (?1, 'x')",
                    [format!("test-{i}")],
                )?;
                Ok::<_, appliance::db::DbError>(())
            })
            .await
            .expect("write");
    }

    /// Stop through the shutdown future and wait for the clean stop.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        // Let go of our handle on the database first, as a real client would have none.
        self.state = None;
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.handle.take() {
            Some(h) => tokio::time::timeout(STOP_TIMEOUT, h).await.map_err(|_| {
                anyhow::anyhow!("the server did not stop within {STOP_TIMEOUT:?}")
            })??,
            None => Ok(()),
        }
    }

    /// Take the index-commit lock exclusively, as a backup does: the indexer may read the
    /// outbox but cannot commit, so no outbox row goes until the returned file is
    /// dropped. (Drop it before `stop()`: the final index pass waits for it.)
    ///
    /// The wait happens off the test's runtime: the server shares that runtime, and an
    /// index pass holds the lock shared across awaits, so a blocking wait here would
    /// stop the very pass it waits for (a deadlock seen in CI).
    pub async fn hold_index_commits(&self) -> std::fs::File {
        let dd = appliance::data_dir::DataDir::new(&self.data_dir);
        tokio::task::spawn_blocking(move || dd.index_commit_guard(true))
            .await
            .expect("the lock task")
            .expect("the index-commit lock")
    }

    /// POST to a route that starts a background job, expect 202, and follow the job to
    /// its end; the finished job.
    pub async fn run_job(&self, path: &str) -> Value {
        let (s, v) = self.post(path, serde_json::json!({})).await;
        assert_eq!(s, 202, "{path}: {v}");
        let id = v["job"]["id"].as_i64().expect("a job id");
        self.wait_job(id).await
    }

    /// Poll `GET /api/admin/jobs/{id}` until the job is no longer running (2 minutes at
    /// most); the finished job.
    pub async fn wait_job(&self, id: i64) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            let (s, v) = self.get_json(&format!("/api/admin/jobs/{id}")).await;
            assert_eq!(s, 200, "{v}");
            if v["job"]["state"] != "running" {
                return v["job"].clone();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "job {id} never finished: {v}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("appliance.db")
    }
}

/// Run the real binary with a clean environment: no APPLIANCE_* variables from the
/// caller and an empty config file, so /etc/appliance/appliance.toml is never read.
pub fn cli(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_appliance"));
    for (k, _) in std::env::vars() {
        if k.starts_with("APPLIANCE") {
            cmd.env_remove(k);
        }
    }
    let empty = dir.join("empty.toml");
    if !empty.exists() {
        std::fs::write(&empty, "").expect("write empty config");
    }
    // Servers started by tests run side by side: no fixed metrics port.
    cmd.current_dir(dir)
        .env("APPLIANCE_CONFIG", &empty)
        .env("APPLIANCE__METRICS__LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "info");
    cmd
}

/// Create the test admin with the real binary (`user create`, `token create`) in the
/// data directory under `dir` and return a new admin API token.
pub fn cli_admin_token(dir: &Path) -> String {
    let exists = cli(dir)
        .args(["user", "list", "--json"])
        .output()
        .map(|o| stdout(&o).contains(ADMIN_EMAIL))
        .unwrap_or(false);
    if !exists {
        let o = cli(dir)
            .args(["user", "create", "--email", ADMIN_EMAIL, "--role", "admin"])
            .output()
            .expect("user create");
        assert!(o.status.success(), "user create: {}", stderr(&o));
    }
    let o = cli(dir)
        .args(["token", "create", "--email", ADMIN_EMAIL, "--name", "tests"])
        .output()
        .expect("token create");
    assert!(o.status.success(), "token create: {}", stderr(&o));
    stdout(&o).trim().to_string()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Poll `f` until it returns Some or the deadline passes.
pub fn poll<T>(deadline: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Wait for a server `child` sent SIGTERM to exit, at most `within`; past it, kill it
/// and fail the test (a server that cannot stop must not hang the test run).
pub fn exit_within(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    match poll(within, || child.try_wait().ok().flatten()) {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server did not exit within {within:?}");
        }
    }
}

/// Size of the WAL file beside the database (0 when absent).
pub fn wal_size(db: &Path) -> u64 {
    let wal = PathBuf::from(format!("{}-wal", db.display()));
    std::fs::metadata(wal).map(|m| m.len()).unwrap_or(0)
}

/// A `serve` child whose stderr is watched for the "listening on" line.
pub struct Server {
    pub child: Child,
    pub addr: String,
}

pub fn start_server(dir: &Path) -> Server {
    start_server_env(dir, &[])
}

/// `start_server` with extra environment variables.
pub fn start_server_env(dir: &Path, env: &[(&str, &str)]) -> Server {
    start_server_args(dir, env, &["serve"])
}

/// A server started with these exact arguments (e.g. the unit's ExecStart line).
pub fn start_server_args(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Server {
    let mut child = cli(dir)
        .envs(env.iter().copied())
        .env("APPLIANCE__SERVER__LISTEN", "127.0.0.1:0")
        .env("APPLIANCE__LOG__FORMAT", "json")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && let Some(addr) = v["address"].as_str()
            {
                let _ = tx.send(addr.to_string());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("server printed its address");
    Server { child, addr }
}

/// `serve` with its JSON log written to the file `log` (kept for the test to read, e.g. the
/// setup token): the child and the address it logged.
pub fn serve_logged(dir: &Path, env: &[(&str, &str)], log: &Path) -> (Child, String) {
    let child = cli(dir)
        .env("APPLIANCE__SERVER__LISTEN", "127.0.0.1:0")
        .env("APPLIANCE__LOG__FORMAT", "json")
        .envs(env.iter().copied())
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("create the log file"))
        .spawn()
        .expect("spawn serve");
    let addr = poll(Duration::from_secs(30), || log_value(log, "address"))
        .expect("the server logs its address");
    (child, addr)
}

/// The first string value of `key` in a JSON-lines log file.
pub fn log_value(log: &Path, key: &str) -> Option<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| v[key].as_str().map(str::to_owned))
}

/// Read one HTTP/1.1 request from `stream` (headers up to the blank line, then a body of
/// `Content-Length` bytes) and return the body; for small local receivers in tests.
pub fn read_request_body(stream: &std::net::TcpStream) -> Vec<u8> {
    use std::io::Read;
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let (mut len, mut line) = (0usize, String::new());
    while reader.read_line(&mut line).unwrap_or(0) > 0 {
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
        line.clear();
    }
    let mut body = vec![0u8; len];
    let _ = reader.read_exact(&mut body);
    body
}

/// A minimal HTTP/1.1 GET without a client library: (status, body).
pub fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    http_get_auth(addr, path, None)
}

/// `http_get` with an optional `Authorization: Bearer` token.
pub fn http_get_auth(addr: &str, path: &str, token: Option<&str>) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let code = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
    Some((code, body))
}
