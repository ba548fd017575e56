//! Start-up benchmark: binary size, time from spawn to the first `/readyz` = 200 (fresh
//! data directory, with migrations, and an existing one), and idle RSS once ready; then
//! the same on data directories of `BENCH_STARTUP_ARTICLES` articles (default
//! `100000,1000000`; the benchmark corpus, ~2 KB bodies, imported and indexed with the
//! CLI), after a clean stop and after a kill (where the whole file is checked before
//! serving). Prints numbers; asserts nothing about speed.
//! Run: `cargo bench --bench startup`.

#[path = "../tests/common/mod.rs"]
mod common;
// Only `article` of the shared corpus is used here.
#[allow(dead_code)]
#[path = "support/corpus.rs"]
mod corpus;

use std::process::Command;
use std::time::{Duration, Instant};

const RUNS: usize = 10;

fn readyz(addr: &str) -> bool {
    common::http_get(addr, "/readyz").is_some_and(|(code, _)| code == 200)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Start `serve` on `dir`, return (ms to ready, RSS KiB after 1 s idle).
fn one_start(dir: &std::path::Path) -> (f64, u64) {
    let start = Instant::now();
    let mut server = common::start_server(dir);
    while !readyz(&server.addr) {
        assert!(start.elapsed() < Duration::from_secs(30), "never ready");
    }
    let ready_ms = start.elapsed().as_secs_f64() * 1000.0;
    // Let start-up allocations settle before reading the idle footprint.
    std::thread::sleep(Duration::from_secs(1));
    let rss = rss_kib(server.child.id());
    let _ = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status();
    let _ = server.child.wait();
    (ready_ms, rss)
}

/// Time from spawn to `/readyz` = 200 on `dir`; the server is left running.
fn start_ready(dir: &std::path::Path) -> (f64, common::Server) {
    let start = Instant::now();
    let server = common::start_server(dir);
    while !readyz(&server.addr) {
        assert!(start.elapsed() < Duration::from_secs(1800), "never ready");
        std::thread::sleep(Duration::from_millis(1));
    }
    (start.elapsed().as_secs_f64() * 1000.0, server)
}

fn stop(mut server: common::Server, kill: bool) {
    let signal = if kill { "-KILL" } else { "-TERM" };
    let _ = Command::new("kill")
        .args([signal, &server.child.id().to_string()])
        .status();
    let _ = server.child.wait();
}

/// A data directory with `n` articles: imported and indexed with the CLI.
fn big_data_dir(n: usize) -> tempfile::TempDir {
    use std::io::Write;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("articles.jsonl");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&file).expect("create"));
    let mut corpus = corpus::Corpus::new(7);
    for i in 0..n {
        serde_json::to_writer(&mut out, &corpus.article(i)).expect("write");
        out.write_all(b"\n").expect("write");
    }
    out.flush().expect("flush");
    drop(out);
    let migrate = common::cli(dir.path())
        .args(["migrate", "run"])
        .output()
        .expect("migrate");
    assert!(migrate.status.success(), "{}", common::stderr(&migrate));
    let t = Instant::now();
    let o = common::cli(dir.path())
        .args(["articles", "import", "--batch", "5000"])
        .arg(&file)
        .output()
        .expect("import");
    assert!(o.status.success(), "{}", common::stderr(&o));
    std::fs::remove_file(&file).expect("remove the file");
    println!(
        "  {n} articles imported in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    // The index built offline (a first start would build it before listening).
    let t = Instant::now();
    let o = common::cli(dir.path())
        .args(["index", "rebuild"])
        .output()
        .expect("index rebuild");
    assert!(o.status.success(), "{}", common::stderr(&o));
    println!(
        "  indexed (appliance index rebuild) in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    dir
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let bin = env!("CARGO_BIN_EXE_appliance");
    let size = std::fs::metadata(bin).map(|m| m.len()).unwrap_or(0);
    println!("binary: {bin}");
    println!("binary size: {:.1} MiB", size as f64 / (1024.0 * 1024.0));

    let mut fresh = Vec::new();
    let mut warm = Vec::new();
    let mut rss = Vec::new();
    for _ in 0..RUNS {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ms, kib) = one_start(dir.path());
        fresh.push(ms);
        rss.push(kib as f64);
        let (ms, _) = one_start(dir.path());
        warm.push(ms);
    }
    println!(
        "start to /readyz=200, fresh data dir (migrations): median {:.1} ms over {RUNS} runs",
        median(fresh)
    );
    println!(
        "start to /readyz=200, existing data dir:           median {:.1} ms over {RUNS} runs",
        median(warm)
    );
    println!(
        "idle RSS after ready: median {:.1} MiB",
        median(rss) / 1024.0
    );

    let sizes = std::env::var("BENCH_STARTUP_ARTICLES").unwrap_or_else(|_| "100000,1000000".into());
    for n in sizes
        .split(',')
        .filter_map(|s| s.trim().parse::<usize>().ok())
    {
        println!("data directory with {n} articles:");
        let dir = big_data_dir(n);
        let bytes = |name: &str| {
            std::fs::metadata(dir.path().join("data").join(name)).map_or(0, |m| m.len())
        };
        println!(
            "  database {:.0} MiB",
            bytes("appliance.db") as f64 / 1048576.0
        );
        let (mut clean, mut killed) = (Vec::new(), Vec::new());
        for _ in 0..5 {
            let (ms, server) = start_ready(dir.path());
            clean.push(ms);
            // The deferred whole-file check runs now; let it finish before the kill.
            std::thread::sleep(Duration::from_millis(if n >= 1_000_000 {
                8000
            } else {
                1500
            }));
            stop(server, true);
            let (ms, server) = start_ready(dir.path());
            killed.push(ms);
            stop(server, false);
        }
        println!(
            "  start to /readyz=200 after a clean stop: median {:.1} ms (of 5: {:?})",
            median(clean.clone()),
            clean.iter().map(|v| v.round() as i64).collect::<Vec<_>>()
        );
        println!(
            "  start to /readyz=200 after a kill (whole-file check first): median {:.1} ms (of 5: {:?})",
            median(killed.clone()),
            killed.iter().map(|v| v.round() as i64).collect::<Vec<_>>()
        );
    }
}
