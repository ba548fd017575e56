//! `appliance export postgres`: every table of [`super::tables::TABLES`] copied from one
//! consistent SQLite snapshot (a read transaction; the server may keep writing) into a
//! schema of a PostgreSQL database, with `COPY … FROM STDIN (FORMAT csv)`, all inside one
//! PostgreSQL transaction; then verified in that same transaction before it commits.
//!
//! Verification reads every row back and compares it with the snapshot: each row is
//! turned into the same canonical text on both sides (integers in decimal, times as
//! RFC 3339 UTC milliseconds, booleans `t`/`f`, arrays and JSON re-serialised by
//! serde_json) and hashed (SHA-256); a table's checksum is the hash of its row hashes in
//! key order. A difference names the table and the first differing key.

use futures_util::{SinkExt, StreamExt};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_postgres::types::ToSql;

use super::rows::{canonical_json, csv_row, key_text, row_hash, sqlite_cell};
use super::tables::{Kind, TABLES, Table};
use super::{Client, PgError};
use crate::db::{Db, DbError};

/// What one table came to.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TableReport {
    pub table: &'static str,
    pub rows: u64,
    /// SHA-256 (hex) of the rows' hashes in key order, the same on both sides.
    pub checksum: String,
}

/// The hooks of a long copy: rows in all, and rows done.
pub trait Progress {
    fn total(&mut self, _rows: u64) {}
    fn rows(&mut self, _n: u64) {}
}

impl Progress for () {}

/// A schema name as given: lower-case letters, digits and `_`, not starting with a
/// digit (so it needs no quoting and means the same to every tool).
pub fn check_schema(name: &str) -> Result<String, PgError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && !name.starts_with("pg_");
    if ok {
        Ok(format!("\"{name}\""))
    } else {
        Err(PgError::Invalid(format!(
            "schema `{name}` is not a valid name: use lower-case letters, digits and _, not starting with a digit or pg_, at most 63 characters"
        )))
    }
}

/// The tables already in `schema` (none when it does not exist).
pub async fn existing_tables(client: &Client, schema: &str) -> Result<Vec<String>, PgError> {
    let rows = client
        .query(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1",
            &[&schema],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The tables that move, for the plan printed before a run.
pub fn table_names() -> Vec<&'static str> {
    TABLES.iter().map(|t| t.name).collect()
}

/// One row as hashed and compared: its key (for messages) and digest.
type RowHash = (String, [u8; 32]);

/// Messages from the SQLite snapshot to the PostgreSQL side.
enum Msg {
    Total(u64),
    Start(usize),
    Data(Vec<u8>, u64),
    End(usize, Vec<RowHash>),
}

const CHUNK: usize = 256 * 1024;

/// Copy everything into `schema` (created; with `replace`, dropped first with all it
/// holds) and verify it, in one transaction: on any error nothing is left behind.
pub async fn export(
    db: &Db,
    client: &mut Client,
    schema: &str,
    replace: bool,
    comment: &str,
    progress: &mut impl Progress,
) -> Result<Vec<TableReport>, PgError> {
    let s = check_schema(schema)?;
    let tx = client.transaction().await?;
    if replace {
        tx.batch_execute(&format!("DROP SCHEMA IF EXISTS {s} CASCADE"))
            .await?;
    }
    tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {s}"))
        .await?;
    for t in TABLES {
        tx.batch_execute(&t.create(&s)).await?;
    }
    let (send, recv) = mpsc::channel::<Msg>(8);
    let reader = db.read(move |c| snapshot(c, Some(&send)));
    let writer = async {
        // Owned here: when this side fails, the channel closes and the reader stops.
        let mut recv = recv;
        let mut hashes: Vec<Vec<RowHash>> = vec![Vec::new(); TABLES.len()];
        let mut sink = None;
        while let Some(msg) = recv.recv().await {
            match msg {
                Msg::Total(n) => progress.total(n),
                Msg::Start(i) => {
                    let t = &TABLES[i];
                    let sql = format!(
                        "COPY {s}.{} ({}) FROM STDIN (FORMAT csv)",
                        t.name,
                        t.column_list()
                    );
                    sink = Some(Box::pin(tx.copy_in::<_, bytes::Bytes>(&sql).await?));
                }
                Msg::Data(chunk, rows) => {
                    if let Some(sink) = sink.as_mut() {
                        sink.send(bytes::Bytes::from(chunk)).await?;
                    }
                    progress.rows(rows);
                }
                Msg::End(i, h) => {
                    if let Some(mut sink) = sink.take() {
                        let copied = sink.as_mut().finish().await?;
                        if copied != h.len() as u64 {
                            return Err(PgError::Invalid(format!(
                                "table {}: PostgreSQL took {copied} rows of {}",
                                TABLES[i].name,
                                h.len()
                            )));
                        }
                    }
                    hashes[i] = h;
                }
            }
        }
        Ok::<_, PgError>(hashes)
    };
    let (read, written) = tokio::join!(reader, writer);
    // PostgreSQL's error first: the reader's is then only "the other side stopped".
    let hashes = match (read, written) {
        (_, Err(e)) => return Err(e),
        (Err(e), Ok(_)) => return Err(e.into()),
        (Ok(()), Ok(h)) => h,
    };
    for t in TABLES {
        for ix in t.indexes {
            tx.batch_execute(&ix.replace("{s}", &s)).await?;
        }
    }
    let mut reports = Vec::with_capacity(TABLES.len());
    for (t, h) in TABLES.iter().zip(&hashes) {
        reports.push(compare(&tx, t, &s, h).await?);
    }
    let comment = comment.replace('\'', "''");
    tx.batch_execute(&format!("COMMENT ON SCHEMA {s} IS '{comment}'"))
        .await?;
    tx.batch_execute(&format!("ANALYZE {s}.articles")).await?;
    tx.commit().await?;
    Ok(reports)
}

/// Compare `schema` with the database as it is now, table by table.
pub async fn verify(db: &Db, client: &Client, schema: &str) -> Result<Vec<TableReport>, PgError> {
    let s = check_schema(schema)?;
    let found = existing_tables(client, schema).await?;
    if let Some(t) = TABLES.iter().find(|t| !found.iter().any(|f| f == t.name)) {
        return Err(PgError::Invalid(format!(
            "schema {schema} has no table {}: is it an export of appliance?",
            t.name
        )));
    }
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?;
    let hashes = db
        .read(|c| {
            let tx = c.unchecked_transaction()?;
            TABLES
                .iter()
                .map(|t| table_rows(&tx, t, None))
                .collect::<Result<Vec<_>, _>>()
        })
        .await;
    let hashes = match hashes {
        Ok(h) => h,
        Err(e) => {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(e.into());
        }
    };
    let mut reports = Vec::with_capacity(TABLES.len());
    for (t, h) in TABLES.iter().zip(&hashes) {
        match compare(client, t, &s, h).await {
            Ok(r) => reports.push(r),
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK").await;
                return Err(e);
            }
        }
    }
    client.batch_execute("ROLLBACK").await?;
    Ok(reports)
}

/// Read every table in one SQLite transaction; with `send`, stream the rows as CSV for
/// `COPY` as they are read. Returns once all is sent.
fn snapshot(c: &rusqlite::Connection, send: Option<&mpsc::Sender<Msg>>) -> Result<(), DbError> {
    let tx = c.unchecked_transaction()?;
    let gone = || DbError::Other("the PostgreSQL side stopped".into());
    if let Some(send) = send {
        let mut total = 0u64;
        for t in TABLES {
            let n: i64 = tx.query_row(&format!("SELECT count(*) FROM {}", t.name), [], |r| {
                r.get(0)
            })?;
            total += u64::try_from(n).unwrap_or(0);
        }
        send.blocking_send(Msg::Total(total)).map_err(|_| gone())?;
        for (i, t) in TABLES.iter().enumerate() {
            send.blocking_send(Msg::Start(i)).map_err(|_| gone())?;
            let h = table_rows(&tx, t, Some(send))?;
            send.blocking_send(Msg::End(i, h)).map_err(|_| gone())?;
        }
    }
    Ok(())
}

/// One table's rows in key order: their hashes, and (with `send`) their CSV.
fn table_rows(
    tx: &rusqlite::Connection,
    t: &Table,
    send: Option<&mpsc::Sender<Msg>>,
) -> Result<Vec<RowHash>, DbError> {
    let mut stmt = tx.prepare(&t.sqlite_select())?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK + 4096);
    let mut in_buf = 0u64;
    let key_at: Vec<usize> = t
        .key
        .iter()
        .filter_map(|k| t.columns.iter().position(|c| c.name == *k))
        .collect();
    let mut cells: Vec<Option<String>> = Vec::with_capacity(t.columns.len());
    while let Some(row) = rows.next()? {
        cells.clear();
        for (i, c) in t.columns.iter().enumerate() {
            cells.push(sqlite_cell(row.get_ref(i)?, c.kind).map_err(|why| {
                DbError::Other(format!("table {}, column {}: {why}", t.name, c.name))
            })?);
        }
        let key = key_text(t, &key_at, &cells);
        out.push((key, row_hash(&cells)));
        if let Some(send) = send {
            csv_row(&mut buf, t, &cells);
            in_buf += 1;
            if buf.len() >= CHUNK {
                let chunk = std::mem::replace(&mut buf, Vec::with_capacity(CHUNK + 4096));
                send.blocking_send(Msg::Data(chunk, in_buf))
                    .map_err(|_| DbError::Other("the PostgreSQL side stopped".into()))?;
                in_buf = 0;
            }
        }
    }
    if let Some(send) = send
        && !buf.is_empty()
    {
        send.blocking_send(Msg::Data(buf, in_buf))
            .map_err(|_| DbError::Other("the PostgreSQL side stopped".into()))?;
    }
    Ok(out)
}

/// Read table `t` of schema `s` back and compare it, row by row in key order, with the
/// snapshot's hashes. A difference names the table and the first differing key.
async fn compare<C: tokio_postgres::GenericClient>(
    client: &C,
    t: &Table,
    s: &str,
    expected: &[RowHash],
) -> Result<TableReport, PgError> {
    let stmt = client.prepare(&t.pg_select(s)).await?;
    let rows = client
        .query_raw(&stmt, std::iter::empty::<&(dyn ToSql + Sync)>())
        .await?;
    let mut rows = std::pin::pin!(rows);
    let key_at: Vec<usize> = t
        .key
        .iter()
        .filter_map(|k| t.columns.iter().position(|c| c.name == *k))
        .collect();
    let mut table = Sha256::new();
    let mut n = 0usize;
    let mut cells: Vec<Option<String>> = Vec::with_capacity(t.columns.len());
    let differ = |key: &str, why: &str| {
        PgError::Invalid(format!(
            "verification failed: table {} differs at {key}: {why}",
            t.name
        ))
    };
    while let Some(row) = rows.next().await {
        let row = row?;
        cells.clear();
        for (i, c) in t.columns.iter().enumerate() {
            let v: Option<String> = row.try_get(i)?;
            cells.push(match (v, c.kind) {
                (Some(text), Kind::TextArray | Kind::Json) => {
                    Some(canonical_json(&text, c.kind).map_err(PgError::Invalid)?)
                }
                (v, _) => v,
            });
        }
        let key = key_text(t, &key_at, &cells);
        let hash = row_hash(&cells);
        match expected.get(n) {
            None => return Err(differ(&key, "a row the database does not have")),
            Some((k, _)) if *k != key => {
                return Err(differ(
                    k,
                    &format!("the next row in PostgreSQL is {key}: rows are missing or extra"),
                ));
            }
            Some((k, h)) if *h != hash => return Err(differ(k, "the row's values differ")),
            Some(_) => {}
        }
        table.update(hash);
        n += 1;
    }
    if let Some((k, _)) = expected.get(n) {
        return Err(differ(k, "a row PostgreSQL does not have"));
    }
    Ok(TableReport {
        table: t.name,
        rows: n as u64,
        checksum: hex::encode(table.finalize()),
    })
}
