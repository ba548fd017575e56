//! Read scaling through the real reader pool: point reads on a 20,000-row table with 1
//! and 2 concurrent readers, with the configured `mmap_size` and with mmap off (DESIGN.md:
//! the bundled SQLite's shared page-cache lock keeps two readers no faster than one
//! without mmap). Prints reads per second; asserts nothing. Run:
//! `cargo bench --bench reads`.

use std::time::{Duration, Instant};

use appliance::config::DatabaseConfig;
use appliance::db::Db;

const ROWS: i64 = 20_000;
const PER_TASK: usize = 40_000;

async fn run(db: &Db, tasks: usize) -> f64 {
    let start = Instant::now();
    let mut handles = Vec::new();
    for t in 0..tasks {
        let db = db.clone();
        handles.push(tokio::spawn(async move {
            // One blocking closure per task doing many reads: measures SQLite, not the
            // cost of a spawn_blocking per read.
            db.read(move |c| {
                let mut stmt = c.prepare_cached("SELECT body FROM bench WHERE id = ?1")?;
                let mut n = 0usize;
                for i in 0..PER_TASK {
                    let id = ((i * 7919 + t * 104_729) as i64 % ROWS) + 1;
                    let body: String = stmt.query_row([id], |r| r.get(0))?;
                    n += body.len();
                }
                Ok(n)
            })
            .await
            .expect("reads")
        }));
    }
    for h in handles {
        h.await.expect("task");
    }
    (tasks * PER_TASK) as f64 / start.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    for (label, mmap) in [("mmap 256 MiB", 256u64 * 1024 * 1024), ("mmap off", 0)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = DatabaseConfig {
            mmap_size_bytes: mmap,
            ..DatabaseConfig::default()
        };
        let db = Db::open(&dir.path().join("bench.db"), &cfg)
            .await
            .expect("open");
        db.write(|tx| {
            tx.execute_batch("CREATE TABLE bench(id INTEGER PRIMARY KEY, body TEXT NOT NULL)")?;
            let mut ins = tx.prepare("INSERT INTO bench(id, body) VALUES (?1, ?2)")?;
            for i in 1..=ROWS {
                ins.execute(rusqlite::params![i, format!("row {i} {}", "x".repeat(200))])?;
            }
            Ok::<_, appliance::db::DbError>(())
        })
        .await
        .expect("fill");
        db.checkpoint(appliance::db::Checkpoint::Truncate)
            .await
            .expect("checkpoint");
        run(&db, 1).await; // warm the caches
        let one = run(&db, 1).await;
        let two = run(&db, 2).await;
        println!(
            "{label:>13}: 1 reader {one:>10.0} reads/s, 2 readers {two:>10.0} reads/s ({:.2}x)",
            two / one
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
