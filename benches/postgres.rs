//! PostgreSQL in and out on the benchmark corpus (`BENCH_PG_ARTICLES`, default 100,000
//! articles of ~2 KB with two tags each), against a local PostgreSQL 15 cluster started
//! here (tests/common/pg.rs), with pgloader (Debian's package) moving the same SQLite
//! file in the same run:
//! - `export postgres`: schema, COPY of every table, indexes and the row-by-row
//!   verification, end to end;
//! - `export postgres --verify-only` alone;
//! - `articles import --from-postgres` of the exported articles into a fresh data
//!   directory (a dry run, then the import);
//! - `pgloader sqlite://… postgresql://…` of the same database file (its defaults:
//!   schema, COPY, indexes; no verification).
//!
//! Prints numbers; asserts nothing about speed. Run: `scripts/bench-postgres.sh`.

#[path = "../tests/common/mod.rs"]
mod common;
#[allow(dead_code)]
#[path = "support/corpus.rs"]
mod corpus;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use common::pg::{Cluster, PASSWORD};

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Run the appliance CLI in `dir`; (seconds, stdout). Panics on failure.
fn timed(dir: &Path, args: &[&str]) -> (f64, String) {
    let t = Instant::now();
    let o = common::cli(dir).args(args).output().expect("run appliance");
    let secs = t.elapsed().as_secs_f64();
    assert!(
        o.status.success(),
        "{args:?}: {}{}",
        common::stdout(&o),
        common::stderr(&o)
    );
    (secs, common::stdout(&o))
}

fn line(what: &str, rows: u64, secs: f64) {
    println!(
        "| {what:<48} | {rows:>9} | {secs:>7.2} | {:>9.0} |",
        rows as f64 / secs
    );
}

fn main() {
    let n = env_num("BENCH_PG_ARTICLES", 100_000);
    let pgloader = std::env::var("BENCH_PGLOADER").unwrap_or_else(|_| "pgloader".into());
    println!("PostgreSQL in and out: {n} articles (~2 KB bodies, two tags each)");

    // The source data directory: the corpus imported with the CLI.
    let src = tempfile::tempdir().expect("tempdir");
    let file = src.path().join("articles.jsonl");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&file).expect("create"));
    let mut c = corpus::Corpus::new(11);
    for i in 0..n {
        let mut a = c.article(i);
        let tags = [c.word().to_string(), format!("topic{}", i % 50)];
        a["tags"] = serde_json::json!(tags);
        serde_json::to_writer(&mut out, &a).expect("write");
        out.write_all(b"\n").expect("write");
    }
    out.flush().expect("flush");
    drop(out);
    timed(src.path(), &["migrate", "run"]);
    let f = file.to_str().expect("path");
    let (secs, _) = timed(src.path(), &["articles", "import", "--batch", "5000", f]);
    std::fs::remove_file(&file).expect("remove");
    println!("  corpus imported from JSON lines in {secs:.1} s");
    // Indexed, as a running installation is: the search outbox is drained (pgloader
    // would move it too).
    let (secs, _) = timed(src.path(), &["index", "rebuild"]);
    println!("  search index built in {secs:.1} s");
    let db_file = src.path().join("data/appliance.db");
    println!(
        "  database file: {:.0} MiB",
        std::fs::metadata(&db_file).expect("db").len() as f64 / 1048576.0
    );

    let pg = Cluster::start(false);
    for db in ["target", "pgl"] {
        pg.psql("postgres", &format!("CREATE DATABASE {db}"));
    }
    println!(
        "  PostgreSQL {} on 127.0.0.1:{}",
        pg.psql("postgres", "SHOW server_version"),
        pg.port
    );
    println!();
    println!("| step | rows | s | rows/s |");
    println!("|---|---:|---:|---:|");

    let url = pg.url("target", "?sslmode=disable");
    let (export_secs, out) = timed(src.path(), &["export", "postgres", "--url", &url]);
    let rows: u64 = out
        .lines()
        .find_map(|l| {
            l.strip_prefix("exported and verified ")
                .and_then(|r| r.split_whitespace().next())
                .and_then(|r| r.parse().ok())
        })
        .expect("exported row count");
    line(
        "appliance export postgres (all tables, verified)",
        rows,
        export_secs,
    );
    let (secs, _) = timed(
        src.path(),
        &["export", "postgres", "--url", &url, "--verify-only"],
    );
    line("appliance export postgres --verify-only", rows, secs);

    let dst = tempfile::tempdir().expect("tempdir");
    timed(dst.path(), &["migrate", "run"]);
    let query = "SELECT external_id, slug, title, body, category, tags, status, published_at, created_at, updated_at FROM appliance.articles";
    let import = |extra: &[&str]| {
        let mut args = vec![
            "articles",
            "import",
            "--from-postgres",
            &url,
            "--query",
            query,
            "--batch",
            "5000",
        ];
        args.extend_from_slice(extra);
        timed(dst.path(), &args)
    };
    let (secs, out) = import(&["--dry-run"]);
    assert!(out.contains(&format!("would create {n},")), "{out}");
    line(
        "appliance articles import --from-postgres --dry-run",
        n as u64,
        secs,
    );
    let (secs, out) = import(&[]);
    assert!(out.contains(&format!("({n} created")), "{out}");
    line("appliance articles import --from-postgres", n as u64, secs);
    let (secs, out) = import(&[]);
    assert!(out.contains(&format!("{n} unchanged")), "{out}");
    line("  the same again (every article unchanged)", n as u64, secs);

    // pgloader 3.6's SQLite type parser stops at refinery's `int4` (its migration
    // history table), which is left out; with its default prefetch of 100,000 rows its
    // 1 GiB heap runs out on ~2 KB bodies, so it reads 10,000 at a time (its own docs'
    // advice); everything else moves with its defaults.
    let load = src.path().join("pgloader.load");
    std::fs::write(
        &load,
        format!(
            "LOAD DATABASE\n  FROM sqlite://{}\n  INTO postgresql://postgres:{PASSWORD}@127.0.0.1:{}/pgl\n  WITH prefetch rows = 10000\n  EXCLUDING TABLE NAMES LIKE 'refinery_schema_history';\n",
            db_file.display(),
            pg.port
        ),
    )
    .expect("load file");
    let t = Instant::now();
    let o = Command::new(&pgloader)
        .arg(&load)
        .output()
        .unwrap_or_else(|e| panic!("{pgloader}: {e} (scripts/bench-postgres.sh installs it)"));
    let secs = t.elapsed().as_secs_f64();
    assert!(
        o.status.success(),
        "pgloader: {}{}",
        common::stdout(&o),
        common::stderr(&o)
    );
    // pgloader moves every table, sessions and the outbox too: count what it moved.
    let moved: u64 = pg
        .psql(
            "pgl",
            "SELECT sum((xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I',
                 table_schema, table_name), false, true, '')))[1]::text::bigint)
             FROM information_schema.tables
             WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_type = 'BASE TABLE'",
        )
        .parse()
        .unwrap_or(0);
    // pgloader puts SQLite's tables into the target's `public` schema.
    let articles: u64 = pg
        .psql_try("pgl", "SELECT count(*) FROM public.articles")
        .map(|o| common::stdout(&o))
        .unwrap_or_default()
        .trim()
        .parse()
        .unwrap_or(0);
    assert_eq!(
        articles,
        n as u64,
        "pgloader did not move every article: {}{}",
        common::stdout(&o),
        common::stderr(&o)
    );
    line(
        "pgloader sqlite:// → postgresql:// (same file)",
        moved,
        secs,
    );
    println!();
    println!(
        "the same database file: appliance's verified export {export_secs:.2} s, pgloader {secs:.2} s ({:.2}x faster)",
        secs / export_secs
    );
    println!();
    println!(
        "pgloader {}",
        common::stdout(
            &Command::new(&pgloader)
                .arg("--version")
                .output()
                .expect("pgloader")
        )
        .lines()
        .next()
        .unwrap_or("")
    );
}
