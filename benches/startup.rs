//! Start-up benchmark: binary size, time from spawn to the first `/readyz` = 200 (fresh
//! data directory, with migrations, and an existing one), and idle RSS once ready.
//! Prints numbers; asserts nothing about speed. Run: `cargo bench --bench startup`.

#[path = "../tests/common/mod.rs"]
mod common;

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
}
