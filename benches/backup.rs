//! Backup and restore benchmark against the release binary on a large database of the
//! synthetic corpus. Prints a table; asserts nothing about time.
//!
//!   cargo bench --bench backup
//!
//! Environment: BENCH_BACKUP_ARTICLES (default 400000, about 1 GB of database),
//! BENCH_WRITE_SECS (8: length of the baseline write phase).
//! Phases: bulk load; `cp` of the database file (the disk's limit, page cache warm for
//! both); `appliance backup` (the CLI, another process, as an operator runs it) while
//! idle; article creates at concurrency 4 alone, then during a second backup;
//! `appliance restore` of the archive with the server stopped.

#[path = "support/corpus.rs"]
#[allow(dead_code)]
mod corpus;
#[path = "support/server.rs"]
mod server;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use server::{Server, Stats, bulk_load, env_num, stats};

const MIB: f64 = 1024.0 * 1024.0;

fn appliance(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_appliance"));
    c.current_dir(dir)
        .env("APPLIANCE_CONFIG", "/dev/null")
        .env("APPLIANCE__METRICS__LISTEN", "127.0.0.1:0");
    c
}

fn file_size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// Creates at concurrency 4 until `stop`; their latencies.
async fn writers(server: &Server, stop: Arc<AtomicBool>) -> Vec<Duration> {
    let tasks: Vec<_> = (0..4)
        .map(|w| {
            let (url, stop) = (format!("{}/api/articles", server.base), stop.clone());
            let client = server.client();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let body = serde_json::json!({
                        "title": format!("writer {w} article {i}"),
                        "body": "written while the benchmark runs ".repeat(40),
                        "status": "published",
                    });
                    let t = Instant::now();
                    let res = client.post(&url).json(&body).send().await.expect("create");
                    assert_eq!(res.status(), 201, "{:?}", res.text().await);
                    lat.push(t.elapsed());
                    i += 1;
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("writer"));
    }
    all
}

fn newest_archive(dir: &Path) -> String {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("backups dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tar.zst"))
        .collect();
    names.sort();
    names.pop().expect("an archive")
}

fn run_backup(dir: &Path) -> f64 {
    let t = Instant::now();
    let out = appliance(dir).arg("backup").output().expect("backup");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    t.elapsed().as_secs_f64()
}

fn row(label: &str, s: &Stats) {
    println!(
        "| {label:<34} | {:>7.0} creates/s | p50 {:>6.2} ms | p99 {:>6.2} ms |",
        s.rate(),
        s.p50_ms,
        s.p99_ms
    );
}

#[tokio::main]
async fn main() {
    let n = env_num("BENCH_BACKUP_ARTICLES", 400_000);
    let write_secs = env_num("BENCH_WRITE_SECS", 8) as u64;
    println!("appliance backup benchmark: {n} articles");
    let t = Instant::now();
    let (mut server, _) = bulk_load(n).await;
    let dir = server.dir.path().to_path_buf();
    let data = dir.join("data");
    let db = data.join("appliance.db");
    // Move the WAL into the database file, so that the file is the whole database.
    let conn = rusqlite::Connection::open(&db).expect("open");
    conn.busy_timeout(Duration::from_secs(30)).expect("busy");
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .expect("checkpoint");
    drop(conn);
    let db_bytes = file_size(&db) as f64;
    println!(
        "| loaded and indexed in {:.0} s       | database {:.0} MiB |",
        t.elapsed().as_secs_f64(),
        db_bytes / MIB
    );

    // The disk's limit: cp of the same file (read it once first so both start warm).
    let _ = std::fs::read(&db);
    let copy = dir.join("copy.db");
    let t = Instant::now();
    let ok = Command::new("cp").arg(&db).arg(&copy).status().expect("cp");
    assert!(ok.success());
    let cp_secs = t.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&copy);
    println!(
        "| cp of the database file            | {cp_secs:>6.2} s | {:>6.0} MiB/s |",
        db_bytes / MIB / cp_secs
    );

    let idle_secs = run_backup(&dir);
    let backups = data.join("backups");
    let archive = newest_archive(&backups);
    let archive_bytes = file_size(&backups.join(&archive)) as f64;
    println!(
        "| appliance backup, idle (CLI)       | {idle_secs:>6.2} s | {:>6.0} MiB/s | {:.0}% of cp | archive {:.0} MiB = {:.0}% of the database |",
        db_bytes / MIB / idle_secs,
        100.0 * cp_secs / idle_secs,
        archive_bytes / MIB,
        100.0 * archive_bytes / db_bytes
    );

    // Writers alone, then writers during a backup.
    let stop = Arc::new(AtomicBool::new(false));
    let stopper = {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(write_secs)).await;
            stop.store(true, Ordering::Relaxed);
        })
    };
    let t = Instant::now();
    let base = stats(writers(&server, stop).await, t.elapsed().as_secs_f64());
    stopper.await.expect("stopper");
    row("creates c=4, no backup", &base);

    let stop = Arc::new(AtomicBool::new(false));
    let bg = {
        let (stop, dir) = (stop.clone(), dir.clone());
        tokio::task::spawn_blocking(move || {
            // Let the writers get going first.
            std::thread::sleep(Duration::from_millis(500));
            let secs = run_backup(&dir);
            std::thread::sleep(Duration::from_millis(200));
            stop.store(true, Ordering::Relaxed);
            secs
        })
    };
    let t = Instant::now();
    let lat = writers(&server, stop).await;
    let during = stats(lat, t.elapsed().as_secs_f64());
    let busy_secs = bg.await.expect("backup");
    row("creates c=4, during a backup", &during);
    println!(
        "| appliance backup beside writers    | {busy_secs:>6.2} s | {:>6.0} MiB/s | writer p99 during / without = {:.2}x |",
        db_bytes / MIB / busy_secs,
        during.p99_ms / base.p99_ms
    );

    // Restore: the server must be stopped.
    let archive = newest_archive(&backups);
    let db_now = file_size(&db) as f64;
    server.stop();
    let t = Instant::now();
    let out = appliance(&dir)
        .args(["restore", &archive])
        .output()
        .expect("restore");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let restore_secs = t.elapsed().as_secs_f64();
    println!(
        "| appliance restore (CLI)            | {restore_secs:>6.2} s | {:>6.0} MiB/s of database |",
        db_now / MIB / restore_secs
    );
    drop(server);
}
