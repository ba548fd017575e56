//! Articles and search benchmark over real HTTP against the release binary, on a seeded
//! synthetic corpus (benches/support/corpus.rs). Prints a table; asserts nothing.
//!
//!   cargo bench --bench articles
//!
//! Environment: BENCH_SINGLES (default 20000), BENCH_BULK (100000), BENCH_SEARCH_SECS (30).
//! Phases: single creates at concurrency 16; bulk load until everything is searchable;
//! 1- and 2-word searches at concurrency 8; the same queries against SQLite FTS5 (bm25,
//! in-process, 2 threads) as the reference point; server RSS.

#[path = "support/corpus.rs"]
mod corpus;
#[path = "support/server.rs"]
mod server;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use corpus::Corpus;
use serde_json::Value;
use server::{Server, Stats, bulk_load, cpu_secs, env_num, rss_mib, start, stats};

async fn single_creates(n: usize, concurrency: usize) -> (Stats, f64) {
    let server = start().await;
    let cpu0 = cpu_secs(server.child.id());
    let mut corpus = Corpus::new(1);
    let articles: Arc<Vec<Value>> = Arc::new((0..n).map(|i| corpus.article(i)).collect());
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (articles, next, url) = (
                articles.clone(),
                next.clone(),
                format!("{}/api/articles", server.base),
            );
            let client = server.client();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(a) = articles.get(i) else { break };
                    let t = Instant::now();
                    let res = client.post(&url).json(a).send().await.expect("create");
                    assert_eq!(res.status(), 201);
                    let _ = res.bytes().await;
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
    let cores = (cpu_secs(server.child.id()) - cpu0) / secs;
    (stats(lat, secs), cores)
}

/// Bulk-load `n` articles (1,000 per request, 2 requests at a time) and wait until all
/// are searchable. Returns the server (loaded) and articles/s until searchable.
fn queries(words: usize) -> Vec<String> {
    let mut c = Corpus::new(3 + words as u64);
    (0..10_000)
        .map(|_| {
            (0..words)
                .map(|_| c.query_word())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

async fn http_search(server: &Server, words: usize, secs: u64, concurrency: usize) -> (Stats, f64) {
    let cpu0 = cpu_secs(server.child.id());
    let qs = Arc::new(queries(words));
    let started = Instant::now();
    let until = started + Duration::from_secs(secs);
    let tasks: Vec<_> = (0..concurrency)
        .map(|t| {
            let (qs, base) = (qs.clone(), server.base.clone());
            let client = server.client();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut i = t * 1000;
                while Instant::now() < until {
                    let q = &qs[i % qs.len()];
                    i += 1;
                    let t0 = Instant::now();
                    let res = client
                        .get(format!("{base}/api/search"))
                        .query(&[("q", q.as_str()), ("limit", "10")])
                        .send()
                        .await
                        .expect("search");
                    assert_eq!(res.status(), 200);
                    let _ = res.bytes().await;
                    lat.push(t0.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("task"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cores = (cpu_secs(server.child.id()) - cpu0) / elapsed;
    (stats(lat, elapsed), cores)
}

/// The same corpus and queries against SQLite FTS5 in-process: bm25 (title weighted 3),
/// top 10 with a body snippet, two threads with a connection each.
fn fts5(n: usize, words: usize, secs: u64) -> Stats {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("fts.db");
    {
        let mut conn = rusqlite::Connection::open(&path).expect("open");
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; CREATE VIRTUAL TABLE fts USING fts5(title, body);",
        )
        .expect("schema");
        let tx = conn.transaction().expect("tx");
        {
            let mut ins = tx
                .prepare("INSERT INTO fts(title, body) VALUES (?1, ?2)")
                .expect("prep");
            let mut c = Corpus::new(2);
            for i in 0..n {
                let a = c.article(i);
                ins.execute([a["title"].as_str(), a["body"].as_str()])
                    .expect("insert");
            }
        }
        tx.commit().expect("commit");
    }
    let qs = Arc::new(queries(words));
    let started = Instant::now();
    let until = started + Duration::from_secs(secs);
    let threads: Vec<_> = (0..2)
        .map(|t| {
            let (qs, path) = (qs.clone(), path.clone());
            std::thread::spawn(move || {
                let conn = rusqlite::Connection::open(&path).expect("open");
                let mut stmt = conn
                    .prepare(
                        "SELECT rowid, title, snippet(fts, 1, '<mark>', '</mark>', '…', 24), bm25(fts, 3.0, 1.0) AS r
                         FROM fts WHERE fts MATCH ?1 ORDER BY r LIMIT 10",
                    )
                    .expect("prep");
                let mut lat = Vec::new();
                let mut i = t * 1000;
                while Instant::now() < until {
                    let q = &qs[i % qs.len()];
                    i += 1;
                    let t0 = Instant::now();
                    let rows: Vec<(i64, String, String)> = stmt
                        .query_map([q], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                        .expect("query")
                        .map(|r| r.expect("row"))
                        .collect();
                    std::hint::black_box(rows);
                    lat.push(t0.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut lat = Vec::new();
    for t in threads {
        lat.extend(t.join().expect("thread"));
    }
    stats(lat, started.elapsed().as_secs_f64())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let singles = env_num("BENCH_SINGLES", 20_000);
    let bulk = env_num("BENCH_BULK", 100_000);
    let secs = env_num("BENCH_SEARCH_SECS", 30) as u64;
    println!(
        "appliance articles benchmark: {singles} single creates, {bulk} bulk, {secs} s per search phase, {} cores",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );

    let (s, cores) = single_creates(singles, 16).await;
    println!(
        "| single create, c=16          | {:>9.0} articles/s | p50 {:>6.2} ms | p99 {:>6.2} ms | server used {cores:.2} cores |",
        s.rate(),
        s.p50_ms,
        s.p99_ms
    );

    let (server, stored_rate, searchable_rate) = bulk_load(bulk).await;
    println!(
        "| bulk load (1000/request)     | {stored_rate:>9.0} articles/s stored | {searchable_rate:>9.0} articles/s until searchable |"
    );
    let pid = server.child.id();
    println!(
        "| server RSS after bulk load   | {:>7.1} MiB |",
        rss_mib(pid, "VmRSS:")
    );

    let mut http = Vec::new();
    for words in [1, 2] {
        let (st, cores) = http_search(&server, words, secs, 8).await;
        println!(
            "| search {words}-word, HTTP, c=8    | {:>9.0} queries/s  | p50 {:>6.2} ms | p99 {:>6.2} ms | server used {cores:.2} cores |",
            st.rate(),
            st.p50_ms,
            st.p99_ms
        );
        http.push(st);
    }
    println!(
        "| server RSS after search      | {:>7.1} MiB (anonymous {:.1}, mapped files {:.1}) | peak (VmHWM) {:.1} MiB |",
        rss_mib(pid, "VmRSS:"),
        rss_mib(pid, "RssAnon:"),
        rss_mib(pid, "RssFile:"),
        rss_mib(pid, "VmHWM:")
    );
    drop(server);

    for (words, h) in [1, 2].into_iter().zip(&http) {
        let f = tokio::task::spawn_blocking(move || fts5(bulk, words, secs))
            .await
            .expect("fts5");
        println!(
            "| FTS5 {words}-word, in-process, 2 thr | {:>7.0} queries/s  | p50 {:>6.2} ms | p99 {:>6.2} ms | HTTP tantivy / FTS5 = {:.2}x |",
            f.rate(),
            f.p50_ms,
            f.p99_ms,
            h.rate() / f.rate()
        );
    }
}
