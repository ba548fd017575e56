//! Backups end to end with real components: the server on 127.0.0.1:0, the real binary
//! for `backup` and `restore`, real archives on disk, a real (size-limited tmpfs) full
//! disk. Round trip, a backup beside four writers, damaged archives of every kind, a
//! newer schema, restore while serving, disk full, the API, and the scheduler.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{TestApp, cli, spawn_in, stderr, stdout};
use serde_json::{Value, json};

async fn publish(app: &TestApp, i: usize, body: &str) -> Value {
    let (status, v) = app
        .post(
            "/api/articles",
            json!({"title": format!("Article {i}"), "body": body, "status": "published",
                   "tags": ["t"], "category": "cat"}),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    v
}

/// Every row of the article tables, every column, as text (the data to compare).
async fn dump(app: &TestApp) -> Vec<String> {
    app.state()
        .db()
        .read(|c| {
            let mut out = Vec::new();
            for table in ["articles", "article_tags"] {
                let mut stmt = c.prepare(&format!("SELECT * FROM {table} ORDER BY 1, 2"))?;
                let n = stmt.column_count();
                let mut rows = stmt.query([])?;
                while let Some(r) = rows.next()? {
                    let cols: Vec<String> = (0..n)
                        .map(|i| format!("{:?}", r.get_ref(i).map(|v| format!("{v:?}"))))
                        .collect();
                    out.push(format!("{table}: {}", cols.join(" | ")));
                }
            }
            Ok(out)
        })
        .await
        .expect("dump")
}

/// Ids a search returns, once the index has caught up with the outbox.
async fn search_ids(app: &TestApp, q: &str) -> (u64, Vec<i64>) {
    wait_indexed(app).await;
    let (status, v) = app.get_json(&format!("/api/search?q={q}&limit=100")).await;
    assert_eq!(status, 200, "{v}");
    let mut ids: Vec<i64> = v["hits"]
        .as_array()
        .expect("hits")
        .iter()
        .map(|h| h["id"].as_i64().expect("id"))
        .collect();
    ids.sort();
    (v["total"].as_u64().expect("total"), ids)
}

async fn wait_indexed(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, v) = app.get_json("/api/admin/index").await;
        if v["outbox_pending"] == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "index never caught up: {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Start a backup through the API and wait for its recorded result.
async fn api_backup(app: &TestApp) -> Value {
    let (_, before) = app.get_json("/api/admin/backups").await;
    let (status, v) = app.post("/api/admin/backups", json!({})).await;
    assert_eq!(status, 202, "{v}");
    let job = v["job"]["id"].as_i64().expect("a job");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, v) = app.get_json("/api/admin/backups").await;
        if v["last_run"] != before["last_run"] && v["running"].is_null() {
            // The job's own record ends right after.
            let done = app.wait_job(job).await;
            assert_eq!(done["kind"], "backup", "{done}");
            return v;
        }
        // While it runs: its step and that step's bytes.
        if let Some(r) = v["running"].as_object() {
            let step = r["step"].as_str().unwrap();
            assert!(["writing", "verifying", "pruning"].contains(&step), "{v}");
            assert!(r["bytes_done"].is_u64() && r["bytes_total"].is_u64(), "{v}");
        }
        assert!(Instant::now() < deadline, "backup never finished: {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn sha256_file(p: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(p).expect("read")))
}

fn archives(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".tar.zst"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp") || n.starts_with(".verify-"))
        .collect()
}

#[tokio::test]
async fn round_trip_restores_the_data_at_backup_time_and_search_equals_a_rebuild() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let app = spawn_in(&data, |_| {}).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..30 {
        let body = if i % 2 == 0 {
            "apples and pears"
        } else {
            "pears only"
        };
        ids.push(publish(&app, i, body).await["id"].as_i64().unwrap());
    }
    let (s, v) = app
        .post(
            "/api/articles",
            json!({"title": "Draft apples", "body": "apples"}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let at_backup = dump(&app).await;
    let apples_at_backup = search_ids(&app, "apples").await;
    assert_eq!(apples_at_backup.0, 15);

    let status = api_backup(&app).await;
    assert_eq!(status["last_run"]["ok"], true, "{status}");
    let name = status["last_run"]["name"].as_str().unwrap().to_string();
    assert_eq!(status["backups"][0]["verification"]["ok"], true, "{status}");

    // After the backup: creates, edits, soft and hard deletes.
    for i in 30..40 {
        publish(&app, i, "apples after the backup").await;
    }
    for id in &ids[0..5] {
        let (s, v) = app
            .patch(&format!("/api/articles/{id}"), json!({"body": "changed"}))
            .await;
        assert_eq!(s, 200, "{v}");
    }
    for id in &ids[5..8] {
        let s = app
            .client
            .delete(app.url(&format!("/api/articles/{id}")))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(s, 204);
    }
    let s = app
        .client
        .delete(app.url(&format!("/api/articles/{}?purge=true", ids[9])))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(s, 204);
    assert_ne!(dump(&app).await, at_backup);
    app.stop().await.unwrap();

    let out = cli(tmp.path()).args(["restore", &name]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stdout(&out);
    assert!(said.contains("kept in"), "{said}");
    let aside: Vec<PathBuf> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("data.pre-restore-"))
        .collect();
    assert_eq!(aside.len(), 1, "the old data directory is kept aside");
    assert!(aside[0].join("appliance.db").is_file());
    assert!(
        data.join("backups").join(&name).is_file(),
        "backups stay with the data directory"
    );
    assert!(!data.join("manifest.json").exists());

    let app = spawn_in(&data, |_| {}).await.unwrap();
    assert_eq!(dump(&app).await, at_backup);
    let restored = search_ids(&app, "apples").await;
    assert_eq!(restored, apples_at_backup);
    let (_, v) = app.get_json("/api/admin/index/verify").await;
    assert_eq!(v["consistent"], true, "{v}");
    let job = app.run_job("/api/admin/index/rebuild").await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(search_ids(&app, "apples").await, restored);
    assert_eq!(search_ids(&app, "pears").await.0, 30);
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backup_beside_four_writers_is_a_consistent_point_in_time_and_no_write_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let app = Arc::new(spawn_in(&data, |_| {}).await.unwrap());
    for i in 0..200 {
        publish(&app, i, &"seed text ".repeat(50)).await;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (app, stop, written) = (app.clone(), stop.clone(), written.clone());
        writers.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let (s, v) = app
                    .post(
                        "/api/articles",
                        json!({"title": format!("w{w} {i}"), "body": "during the backup",
                               "status": "published", "tags": ["a", "b"]}),
                    )
                    .await;
                if s == 201 {
                    written.fetch_add(1, Ordering::SeqCst);
                } else {
                    failures.push(format!("{s} {v}"));
                }
                i += 1;
            }
            failures
        }));
    }
    // Writers are running before the backup starts.
    let deadline = Instant::now() + Duration::from_secs(10);
    while written.load(Ordering::SeqCst) < 50 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The real binary, in another process, beside the server.
    let dir = tmp.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || cli(&dir).args(["backup"]).output().unwrap())
        .await
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let during = written.load(Ordering::SeqCst);
    // Writers keep going after the backup (poll, with a deadline).
    let deadline = Instant::now() + Duration::from_secs(10);
    while written.load(Ordering::SeqCst) <= during {
        assert!(
            Instant::now() < deadline,
            "writers stalled after the backup"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        let failures = w.await.unwrap();
        assert!(failures.is_empty(), "writer requests failed: {failures:?}");
    }
    assert!(
        written.load(Ordering::SeqCst) > during,
        "writers kept going after the backup"
    );

    let name = archives(&data.join("backups")).pop().expect("an archive");
    let archive = data.join("backups").join(&name);
    let dest = tmp.path().join("extracted");
    std::fs::create_dir(&dest).unwrap();
    let trust = appliance::backup::signing::Trust::strict(Some(data_key(&data)));
    let manifest = appliance::backup::verify::verify_into(&archive, &dest, false, 0, &trust, None)
        .expect("verifies")
        .manifest;
    let conn = rusqlite::Connection::open(dest.join("appliance.db")).unwrap();
    let (min, max, count): (i64, i64, i64) = conn
        .query_row("SELECT min(id), max(id), count(*) FROM articles", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    // Inserts only, AUTOINCREMENT ids: a point in time is a gap-free prefix.
    assert_eq!(count, max - min + 1, "ids {min}..{max} with {count} rows");
    assert!(
        count >= 250,
        "the seed rows and the first writes are in: {count}"
    );
    assert_eq!(manifest.row_counts["articles"], count);
    let tags: i64 = conn
        .query_row("SELECT count(*) FROM article_tags", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        tags,
        200 + 2 * (count - 200),
        "every article has all its tags"
    );
    let app = Arc::into_inner(app).expect("writers are done");
    app.stop().await.unwrap();
}

/// A small stopped data directory with one archive; returns (tmp, data, archive).
async fn small_backup() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let app = spawn_in(&data, |_| {}).await.unwrap();
    for i in 0..20 {
        publish(&app, i, "something to find").await;
    }
    wait_indexed(&app).await;
    app.stop().await.unwrap();
    let out = cli(tmp.path()).args(["backup"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let name = archives(&data.join("backups")).pop().expect("archive");
    let archive = data.join("backups").join(name);
    (tmp, data, archive)
}

fn members(archive: &Path) -> Vec<(String, Vec<u8>)> {
    let f = std::fs::File::open(archive).unwrap();
    let mut tar = tar::Archive::new(zstd::Decoder::new(f).unwrap());
    tar.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            (path, data)
        })
        .collect()
}

fn write_archive(path: &Path, members: &[(String, Vec<u8>)]) {
    let f = std::fs::File::create(path).unwrap();
    let mut tar = tar::Builder::new(zstd::Encoder::new(f, 3).unwrap());
    for (name, data) in members {
        // The name is set byte by byte: the tar crate refuses to write `..`, and an
        // attacker's archive would not ask it.
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_size(data.len() as u64);
        h.set_mode(0o640);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        tar.append(&h, &data[..]).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap();
}

fn sum_line(manifest: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    format!(
        "{}  manifest.json\n",
        hex::encode(sha2::Sha256::digest(manifest))
    )
    .into_bytes()
}

/// The data directory's backup signing key.
fn data_key(data: &Path) -> appliance::backup::signing::Key {
    appliance::backup::signing::Key::read(&data.join("backup-signing.key")).expect("the key")
}

/// `archive` rebuilt the way an intruder with write access to the backups would: an
/// admin added to `appliance.db`, and the manifest's sizes, sums and row counts and the
/// manifest's own sum made to match. With `sign`, the intruder's manifest is signed with
/// that key; without, the signature member is left out.
fn forged(
    archive: &Path,
    work: &Path,
    sign: Option<&appliance::backup::signing::Key>,
) -> Vec<(String, Vec<u8>)> {
    use sha2::Digest;
    let mut m = members(archive);
    let db_at = m.iter().position(|(n, _)| n == "appliance.db").unwrap();
    let db_file = work.join("forged.db");
    std::fs::write(&db_file, &m[db_at].1).unwrap();
    let conn = rusqlite::Connection::open(&db_file).unwrap();
    conn.execute(
        "INSERT INTO users (email, role, password_hash, created_at, updated_at) VALUES ('intruder@example.org', 'admin', 'copied-hash', '2026-01-01', '2026-01-01')",
        [],
    )
    .unwrap();
    drop(conn);
    let db = std::fs::read(&db_file).unwrap();
    let idx = m.iter().position(|(n, _)| n == "manifest.json").unwrap();
    let mut manifest: Value = serde_json::from_slice(&m[idx].1).unwrap();
    for f in manifest["files"].as_array_mut().unwrap() {
        if f["path"] == "appliance.db" {
            f["size"] = json!(db.len());
            f["sha256"] = json!(hex::encode(sha2::Sha256::digest(&db)));
        }
    }
    let users = manifest["row_counts"]["users"].as_i64().unwrap();
    manifest["row_counts"]["users"] = json!(users + 1);
    m[db_at].1 = db;
    m[idx].1 = serde_json::to_vec_pretty(&manifest).unwrap();
    let sum = m
        .iter()
        .position(|(n, _)| n == "manifest.json.sha256")
        .unwrap();
    m[sum].1 = sum_line(&m[idx].1);
    let sig = m
        .iter()
        .position(|(n, _)| n == "manifest.json.sig")
        .unwrap();
    match sign {
        Some(k) => m[sig].1 = k.sign(&m[idx].1),
        None => {
            m.remove(sig);
        }
    }
    m
}

#[tokio::test]
async fn a_forged_archive_is_refused_and_a_key_from_elsewhere_restores_on_a_new_machine() {
    let (tmp, data, archive) = small_backup().await;
    let key = data_key(&data);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(data.join("backup-signing.key"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the key is the service's alone");
    let out = cli(tmp.path()).args(["backup", "key"]).output().unwrap();
    assert!(stdout(&out).contains(key.id()), "{}", stdout(&out));
    // The key never goes into an archive.
    let raw_key = std::fs::read(data.join("backup-signing.key")).unwrap();
    for (name, bytes) in members(&archive) {
        assert_ne!(name, "backup-signing.key");
        assert!(
            !bytes.windows(64).any(|w| w == &raw_key[..64]),
            "{name} holds the key"
        );
    }
    let bad = tmp.path().join("forged.tar.zst");

    // The manifest kept the old signature: it no longer matches.
    let mut m = forged(&archive, tmp.path(), None);
    let good = members(&archive);
    let sig = good
        .iter()
        .find(|(n, _)| n == "manifest.json.sig")
        .unwrap()
        .clone();
    m.push(sig);
    write_archive(&bad, &m);
    assert_refused(tmp.path(), &data, &bad, "signature does not match");

    // Signed with the intruder's own key: not this appliance's.
    let elsewhere = tempfile::tempdir().unwrap();
    let other = appliance::backup::signing::Location::DataDir(elsewhere.path().join("k"))
        .load_or_create()
        .unwrap();
    write_archive(&bad, &forged(&archive, tmp.path(), Some(&other)));
    assert_refused(
        tmp.path(),
        &data,
        &bad,
        &format!("signed with key {}", other.id()),
    );

    // No signature at all: refused unless the operator says --trust-unsigned.
    write_archive(&bad, &forged(&archive, tmp.path(), None));
    assert_refused(tmp.path(), &data, &bad, "not signed");
    let trusting_dry_run = || {
        cli(tmp.path())
            .args(["restore", "--dry-run", "--trust-unsigned"])
            .arg(&bad)
            .output()
            .unwrap()
    };
    let out = trusting_dry_run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("NOT SIGNED"), "{}", stdout(&out));
    // ...but a signature of this key that does not match is refused even so.
    let mut m = forged(&archive, tmp.path(), None);
    m.push(
        good.iter()
            .find(|(n, _)| n == "manifest.json.sig")
            .unwrap()
            .clone(),
    );
    write_archive(&bad, &m);
    let out = trusting_dry_run();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stderr(&out).contains("does not match"), "{}", stderr(&out));

    // A new machine: no data directory, no key. The archive is refused until the key
    // kept elsewhere is given; then it restores, and the key comes with it.
    let new = tempfile::tempdir().unwrap();
    let copy = new.path().join("from-old-machine.tar.zst");
    std::fs::copy(&archive, &copy).unwrap();
    let out = cli(new.path())
        .args(["restore", copy.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("no backup signing key"),
        "{}",
        stderr(&out)
    );
    assert!(!new.path().join("data").exists());
    let kept = new.path().join("kept.key");
    std::fs::copy(data.join("backup-signing.key"), &kept).unwrap();
    let out = cli(new.path())
        .args([
            "restore",
            "--key-file",
            kept.to_str().unwrap(),
            copy.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("signed with key {}", key.id())),
        "{}",
        stdout(&out)
    );
    let new_data = new.path().join("data");
    assert_eq!(
        data_key(&new_data).id(),
        key.id(),
        "the restored directory adopts the key"
    );
    // Its next backup is signed with the same key, and the old archive verifies there.
    let out = cli(new.path())
        .args(["backup", "--verify"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = cli(new.path())
        .args(["backup", "verify", copy.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(stdout(&out).contains(key.id()), "{}", stderr(&out));

    // A restore over an existing directory keeps that directory's key.
    let out = cli(tmp.path())
        .args(["restore", archive.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(data_key(&data).id(), key.id());
}

/// `backup verify` and `restore` both refuse `bad`, and the live data is untouched.
fn assert_refused(tmp: &Path, data: &Path, bad: &Path, expect: &str) {
    let db_before = sha256_file(&data.join("appliance.db"));
    let out = cli(tmp)
        .args(["backup", "verify", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "verify accepted {}",
        bad.display()
    );
    let err = stderr(&out);
    assert!(err.contains(expect), "verify: want {expect:?} in {err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    let out = cli(tmp)
        .args(["restore", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "restore accepted {}",
        bad.display()
    );
    assert!(stderr(&out).contains(expect), "restore: {}", stderr(&out));
    assert_eq!(sha256_file(&data.join("appliance.db")), db_before);
    let stray: Vec<String> = std::fs::read_dir(tmp)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("restore"))
        .collect();
    assert!(stray.is_empty(), "restore left {stray:?}");
    assert!(leftovers(&data.join("backups")).is_empty());
}

#[tokio::test]
async fn damaged_truncated_and_tampered_archives_are_refused_and_live_data_untouched() {
    let (tmp, data, archive) = small_backup().await;
    let out = cli(tmp.path())
        .args([
            "backup",
            "verify",
            archive.file_name().unwrap().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the good archive verifies: {}",
        stderr(&out)
    );
    let good = members(&archive);
    assert!(
        good.len() >= 5,
        "{:?}",
        good.iter().map(|m| &m.0).collect::<Vec<_>>()
    );
    let bad = tmp.path().join("bad.tar.zst");

    // One flipped byte in each member in turn (re-compressed, so only our checks see it).
    for i in 0..good.len() {
        let mut m = good.clone();
        let (name, bytes) = &mut m[i];
        let at = bytes.len() / 2;
        bytes[at] ^= 0x01;
        let expect = if name.starts_with("manifest.json") {
            "manifest".to_string()
        } else {
            name.clone()
        };
        write_archive(&bad, &m);
        assert_refused(tmp.path(), &data, &bad, &expect);
    }

    // A flipped byte in the compressed stream.
    let mut raw = std::fs::read(&archive).unwrap();
    let at = raw.len() / 2;
    raw[at] ^= 0x40;
    std::fs::write(&bad, &raw).unwrap();
    assert_refused(tmp.path(), &data, &bad, "damaged");

    // Truncated.
    let raw = std::fs::read(&archive).unwrap();
    std::fs::write(&bad, &raw[..raw.len() * 2 / 3]).unwrap();
    assert_refused(tmp.path(), &data, &bad, "truncated");

    // A manifest with a wrong checksum (and a matching manifest sum, so only the file
    // check can notice).
    let mut m = good.clone();
    let idx = m.iter().position(|(n, _)| n == "manifest.json").unwrap();
    let mut manifest: Value = serde_json::from_slice(&m[idx].1).unwrap();
    manifest["files"][0]["sha256"] = json!("0".repeat(64));
    m[idx].1 = serde_json::to_vec(&manifest).unwrap();
    let sum = m
        .iter()
        .position(|(n, _)| n == "manifest.json.sha256")
        .unwrap();
    m[sum].1 = sum_line(&m[idx].1);
    write_archive(&bad, &m);
    assert_refused(tmp.path(), &data, &bad, "signature does not match");
    // Re-signed with the real key, the file check still notices.
    let sig = m
        .iter()
        .position(|(n, _)| n == "manifest.json.sig")
        .unwrap();
    m[sig].1 = data_key(&data).sign(&m[idx].1);
    write_archive(&bad, &m);
    assert_refused(tmp.path(), &data, &bad, "checksum mismatch");

    // Junk after the last zstd frame, and a whole second zstd frame after it.
    let raw = std::fs::read(&archive).unwrap();
    let mut junk = raw.clone();
    junk.extend_from_slice(b"appended after the archive was written");
    std::fs::write(&bad, &junk).unwrap();
    assert_refused(tmp.path(), &data, &bad, "trailing data");
    let mut framed = raw.clone();
    framed.extend(zstd::encode_all(&b"a second frame"[..], 1).unwrap());
    std::fs::write(&bad, &framed).unwrap();
    assert_refused(tmp.path(), &data, &bad, "trailing data");

    // A member that is not part of a backup.
    let mut m = good.clone();
    m.insert(0, ("../escape".into(), b"x".to_vec()));
    write_archive(&bad, &m);
    assert_refused(tmp.path(), &data, &bad, "unexpected member");
    assert!(!tmp.path().join("escape").exists());
}

#[tokio::test]
async fn an_archive_from_a_newer_schema_is_refused() {
    let (tmp, data, _) = small_backup().await;
    // The database of a newer appliance: one more applied migration than this binary has.
    let conn = rusqlite::Connection::open(data.join("appliance.db")).unwrap();
    conn.execute(
        "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) VALUES (99, 'future', '2030-01-01', '1')",
        [],
    )
    .unwrap();
    drop(conn);
    let out = cli(tmp.path()).args(["backup"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let newest = archives(&data.join("backups")).pop().unwrap();
    let copy = tmp.path().join("newer.tar.zst");
    std::fs::copy(data.join("backups").join(&newest), &copy).unwrap();
    assert_refused(
        tmp.path(),
        &data,
        &copy,
        "newer appliance (schema version 99",
    );
}

#[tokio::test]
async fn restore_is_refused_while_a_server_runs() {
    let (tmp, data, archive) = small_backup().await;
    let mut server = common::start_server(tmp.path());
    let db_before = sha256_file(&data.join("appliance.db"));
    let out = cli(tmp.path())
        .args(["restore", archive.to_str().unwrap()])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("refusing to restore"), "{err}");
    assert!(
        err.contains(&server.child.id().to_string()),
        "names the pid: {err}"
    );
    assert!(
        common::http_get(&server.addr, "/health").is_some(),
        "server unharmed"
    );
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    assert_eq!(sha256_file(&data.join("appliance.db")), db_before);
}

/// A tmpfs of `size` mounted at `dir` for the test, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test needs root to mount a small tmpfs (a real full disk): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test]
async fn a_full_backup_disk_leaves_no_partial_archive_and_the_server_healthy() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let disk = tmp.path().join("backup-disk");
    let _fs = Tmpfs::mount(&disk, "2m");
    let backup_dir = disk.clone();
    let app = spawn_in(&data, move |c| {
        c.backup.dir = backup_dir;
        c.backup.min_free_margin_bytes = 64 * 1024;
    })
    .await
    .unwrap();
    // Compressible data first: a good archive that teaches a small size ratio.
    for i in 0..100 {
        publish(&app, i, &"the same words again ".repeat(200)).await;
    }
    let first = api_backup(&app).await;
    assert_eq!(first["last_run"]["ok"], true, "{first}");
    let first_name = first["last_run"]["name"].as_str().unwrap().to_string();
    let first_sum = sha256_file(&disk.join(&first_name));

    // Then ~4 MiB that does not compress: the space check (from the last ratio) passes,
    // and the disk fills up while the archive is written.
    use rand_like::Noise;
    let mut noise = Noise(0x2545F4914F6CDD1D);
    for i in 100..160 {
        publish(&app, i, &noise.text(64 * 1024)).await;
    }
    let second = api_backup(&app).await;
    assert_eq!(second["last_run"]["ok"], false, "{second}");
    let error = second["last_run"]["error"].as_str().unwrap();
    assert!(
        error.contains("No space left") || error.contains("not enough free space"),
        "{error}"
    );
    assert!(
        error.contains("No space left"),
        "the write itself hit the full disk: {error}"
    );
    assert_eq!(
        archives(&disk),
        vec![first_name.clone()],
        "no partial archive"
    );
    assert!(leftovers(&disk).is_empty(), "{:?}", leftovers(&disk));
    assert_eq!(sha256_file(&disk.join(&first_name)), first_sum);

    // The service is unharmed; /readyz says degraded (the backup failed), not failing.
    let (status, v) = app.get_json("/readyz").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["status"], "degraded", "{v}");
    assert_eq!(v["checks"]["backup"]["status"], "degraded", "{v}");
    assert!(
        v["checks"]["backup"]["detail"]
            .as_str()
            .unwrap()
            .contains("failed"),
        "{v}"
    );
    publish(&app, 1000, "still writable").await;

    // With nothing learnt about compression, the space check refuses up front.
    // (On a blocking thread: the server in this runtime must keep running beside it.)
    let (dir, disk2) = (tmp.path().to_path_buf(), disk.clone());
    let out = tokio::task::spawn_blocking(move || {
        cli(&dir)
            .env("APPLIANCE__BACKUP__DIR", &disk2)
            .env("APPLIANCE__BACKUP__MIN_FREE_MARGIN_BYTES", "10000000")
            .args(["backup"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not enough free space"),
        "{}",
        stderr(&out)
    );
    assert_eq!(archives(&disk), vec![first_name]);
    app.stop().await.unwrap();
}

/// Deterministic incompressible text (xorshift), without a dependency.
mod rand_like {
    pub struct Noise(pub u64);
    impl Noise {
        pub fn text(&mut self, len: usize) -> String {
            const ALPHABET: &[u8] =
                b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/";
            (0..len)
                .map(|_| {
                    self.0 ^= self.0 << 13;
                    self.0 ^= self.0 >> 7;
                    self.0 ^= self.0 << 17;
                    ALPHABET[(self.0 % 64) as usize] as char
                })
                .collect()
        }
    }
}

#[tokio::test]
async fn api_lists_downloads_verifies_and_refuses_a_second_backup() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let app = spawn_in(&data, |_| {}).await.unwrap();
    publish(&app, 1, "hello").await;
    let v = api_backup(&app).await;
    let name = v["last_run"]["name"].as_str().unwrap().to_string();
    assert_eq!(v["backups"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["backups"][0]["name"], name.as_str());
    assert_eq!(v["backups"][0]["trigger"], "api");
    assert!(v["schedule"]["next_run"].is_string(), "{v}");

    let res = app.get(&format!("/api/admin/backups/{name}")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/zstd");
    let body = res.bytes().await.unwrap();
    assert_eq!(
        &body[..],
        &std::fs::read(data.join("backups").join(&name)).unwrap()[..]
    );

    for bad in [
        "nothing.tar.zst",
        "..%2Fappliance.db",
        "appliance-20200101T000000.000Z-api.tar.zst",
    ] {
        let (s, v) = app.get_json(&format!("/api/admin/backups/{bad}")).await;
        assert_eq!(s, 404, "{bad}: {v}");
        assert_eq!(v["error"]["code"], "not_found");
    }

    let job = app
        .run_job(&format!("/api/admin/backups/{name}/verify"))
        .await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["kind"], "backup_verify", "{job}");
    assert_eq!(job["result"]["ok"], true, "{job}");
    // Damage the archive on disk: verification now fails, naming the problem.
    let path = data.join("backups").join(&name);
    let mut raw = std::fs::read(&path).unwrap();
    let at = raw.len() / 2;
    raw[at] ^= 0x10;
    std::fs::write(&path, raw).unwrap();
    let job = app
        .run_job(&format!("/api/admin/backups/{name}/verify"))
        .await;
    assert_eq!(job["state"], "failed", "{job}");
    assert!(job["error"].as_str().unwrap().contains(&name), "{job}");
    let (_, v) = app.get_json("/api/admin/backups").await;
    assert_eq!(v["backups"][0]["verification"]["ok"], false, "{v}");

    // One at a time: while the lock is held, a second backup is refused.
    let lock = appliance::backup::BackupLock::acquire(&data.join("backups")).unwrap();
    let (s, v) = app.post("/api/admin/backups", json!({})).await;
    assert_eq!(s, 409, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already running"),
        "{v}"
    );
    let out = cli(tmp.path()).args(["backup"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("already running"), "{}", stderr(&out));
    drop(lock);
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_streams_past_a_full_backups_disk_and_a_failed_one_degrades_readyz() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let disk = tmp.path().join("backup-disk");
    let _fs = Tmpfs::mount(&disk, "4m");
    let backup_dir = disk.clone();
    let app = spawn_in(&data, move |c| {
        c.backup.dir = backup_dir;
        c.backup.min_free_margin_bytes = 64 * 1024;
        c.alerts.interval_ms = 100;
    })
    .await
    .unwrap();
    for i in 0..150 {
        publish(&app, i, &"the same words again ".repeat(400)).await;
    }
    let v = api_backup(&app).await;
    let name = v["last_run"]["name"].as_str().unwrap().to_string();
    assert_eq!(v["backups"][0]["verification"]["ok"], true, "{v}");
    let (_, ready) = app.get_json("/readyz").await;
    assert_eq!(ready["checks"]["backup"]["status"], "ok", "{ready}");

    // The backups disk fills up: far less free than the database and index take
    // uncompressed. Verifying streams the archive and needs no room there.
    let free = fs2_free(&disk);
    std::fs::write(disk.join("filler"), vec![0u8; (free - 100 * 1024) as usize]).unwrap();
    let m = members(&disk.join(&name));
    let uncompressed: usize = m.iter().map(|(_, b)| b.len()).sum();
    assert!(
        uncompressed as u64 > 4 * fs2_free(&disk),
        "{uncompressed} bytes unpacked"
    );
    let job = app
        .run_job(&format!("/api/admin/backups/{name}/verify"))
        .await;
    assert_eq!(
        job["state"], "succeeded",
        "verified beside a full backups disk: {job}"
    );
    assert!(leftovers(&disk).is_empty() && leftovers(&data).is_empty());

    // No room anywhere for the deep checks: told apart from a bad archive, recorded as
    // not checked, and /readyz says degraded, and the backup alert fires.
    let (dir, disk2, n) = (tmp.path().to_path_buf(), disk.clone(), name.clone());
    let out = tokio::task::spawn_blocking(move || {
        cli(&dir)
            .env("APPLIANCE__BACKUP__DIR", &disk2)
            .env(
                "APPLIANCE__BACKUP__MIN_FREE_MARGIN_BYTES",
                "1000000000000000",
            )
            .args(["backup", "verify", &n])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("not enough free space") && err.contains("not found faulty"),
        "{err}"
    );
    let (_, v) = app.get_json("/api/admin/backups").await;
    let verification = &v["backups"][0]["verification"];
    assert_eq!(verification["ok"], false, "{v}");
    assert!(
        verification["error"]
            .as_str()
            .unwrap()
            .starts_with("not checked: "),
        "{v}"
    );
    let (s, ready) = app.get_json("/readyz").await;
    assert_eq!(s, 200);
    assert_eq!(ready["checks"]["backup"]["status"], "degraded", "{ready}");
    let detail = ready["checks"]["backup"]["detail"].as_str().unwrap();
    assert!(detail.contains("could not be verified"), "{detail}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, v) = app.get_json("/api/admin/alerts").await;
        let fired = v["active"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == "backup")
            .cloned();
        if let Some(a) = fired {
            assert!(a.to_string().contains("could not be verified"), "{a}");
            break;
        }
        assert!(Instant::now() < deadline, "no backup alert: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A damaged newest archive: a failed verification, and /readyz says so.
    let path = disk.join(&name);
    let mut raw = std::fs::read(&path).unwrap();
    let at = raw.len() / 2;
    raw[at] ^= 0x40;
    std::fs::write(&path, &raw).unwrap();
    let job = app
        .run_job(&format!("/api/admin/backups/{name}/verify"))
        .await;
    assert_eq!(job["state"], "failed", "{job}");
    let message = job["error"].as_str().unwrap();
    assert!(
        !message.contains(disk.to_str().unwrap()),
        "no server paths: {message}"
    );
    let (_, ready) = app.get_json("/readyz").await;
    let detail = ready["checks"]["backup"]["detail"].as_str().unwrap();
    assert!(detail.contains("failed verification"), "{detail}");

    // A new good backup puts it right.
    std::fs::remove_file(disk.join("filler")).unwrap();
    let v = api_backup(&app).await;
    assert_eq!(v["last_run"]["ok"], true, "{v}");
    let (_, ready) = app.get_json("/readyz").await;
    assert_eq!(ready["checks"]["backup"]["status"], "ok", "{ready}");
    app.stop().await.unwrap();
}

/// Free bytes on the file system of `dir`.
fn fs2_free(dir: &Path) -> u64 {
    let out = std::process::Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .expect("df prints the free bytes")
}

#[tokio::test]
async fn readyz_is_degraded_when_the_last_good_backup_is_too_old() {
    let tmp = tempfile::tempdir().unwrap();
    let app = spawn_in(&tmp.path().join("data"), |_| {}).await.unwrap();
    let (_, v) = app.get_json("/readyz").await;
    assert_eq!(
        v["checks"]["backup"]["status"], "ok",
        "no backup yet is fine at first: {v}"
    );
    // A good backup 30 hours ago (the default limit is 26 h).
    let old = time::OffsetDateTime::now_utc() - time::Duration::hours(30);
    let run = appliance::db::backups::Run {
        name: appliance::backup::archive_name(old, appliance::backup::Trigger::Scheduled),
        trigger: "scheduled".into(),
        started_at: appliance::clock::format(old),
        duration_ms: 10,
        size_bytes: Some(10),
        source_bytes: Some(100),
        ok: true,
        error: None,
    };
    app.state()
        .db()
        .write(move |c| appliance::db::backups::record_run(c, &run))
        .await
        .unwrap();
    let (status, v) = app.get_json("/readyz").await;
    assert_eq!(status, 200);
    assert_eq!(v["checks"]["backup"]["status"], "degraded", "{v}");
    assert!(
        v["checks"]["backup"]["detail"]
            .as_str()
            .unwrap()
            .contains("30 h old"),
        "{v}"
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn the_scheduler_fires_verifies_and_applies_retention() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let app = spawn_in(&data, |c| {
        c.backup.schedule = "* * * * * *".into(); // every second
        c.backup.keep_last = 2;
        c.backup.keep_daily = 0;
        c.backup.keep_weekly = 0;
    })
    .await
    .unwrap();
    publish(&app, 1, "scheduled").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut names = std::collections::BTreeSet::new();
    loop {
        let (_, v) = app.get_json("/api/admin/backups").await;
        if let Some(n) = v["last_success"]["name"].as_str() {
            assert_eq!(v["last_success"]["trigger"], "scheduled", "{v}");
            names.insert(n.to_string());
        }
        let listed = v["backups"].as_array().unwrap();
        if names.len() >= 3 && v["running"].is_null() {
            assert_eq!(listed.len(), 2, "keep_last = 2: {v}");
            assert!(
                listed.iter().all(|b| b["verification"]["ok"] == true),
                "every scheduled run is verified: {v}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the scheduler did not run 3 times: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.stop().await.unwrap();
}

#[test]
fn cli_backup_list_prune_and_errors() {
    let tmp = tempfile::tempdir().unwrap();
    // No database yet: a clear one-line error.
    let out = cli(tmp.path()).args(["backup"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no database"), "{}", stderr(&out));
    let out = cli(tmp.path()).args(["migrate", "run"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // The temporary file of a backup that was killed half-way.
    let stale = tmp
        .path()
        .join("data/backups/.appliance-20260101T000000.000Z-manual.tar.zst.999.tmp");
    std::fs::write(&stale, b"half an archive").unwrap();
    for _ in 0..3 {
        let out = cli(tmp.path())
            .args(["backup", "create", "--verify"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stdout(&out).contains("backup written"), "{}", stdout(&out));
    }
    assert!(
        !stale.exists(),
        "the next backup removes stale temporary files"
    );
    let out = cli(tmp.path()).args(["backup", "list"]).output().unwrap();
    let listing = stdout(&out);
    assert_eq!(listing.lines().count(), 4, "{listing}");
    assert!(
        listing
            .lines()
            .skip(1)
            .all(|l| l.contains("manual") && l.contains("yes")),
        "{listing}"
    );
    let out = cli(tmp.path())
        .env("APPLIANCE__BACKUP__KEEP_LAST", "1")
        .args(["backup", "prune", "--dry-run"])
        .output()
        .unwrap();
    assert!(
        stdout(&out).contains("1 kept, 2 would delete"),
        "{}",
        stdout(&out)
    );
    assert_eq!(archives(&tmp.path().join("data/backups")).len(), 3);
    let out = cli(tmp.path())
        .env("APPLIANCE__BACKUP__KEEP_LAST", "1")
        .args(["backup", "prune"])
        .output()
        .unwrap();
    assert!(
        stdout(&out).contains("1 kept, 2 deleted"),
        "{}",
        stdout(&out)
    );
    assert_eq!(archives(&tmp.path().join("data/backups")).len(), 1);
    let name = archives(&tmp.path().join("data/backups")).pop().unwrap();
    let db = tmp.path().join("data/appliance.db");
    let before = sha256_file(&db);
    let out = cli(tmp.path())
        .args(["restore", &name, "--dry-run"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("dry run: nothing changed"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("articles"), "{}", stdout(&out));
    assert_eq!(sha256_file(&db), before);
    let entries: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !entries.iter().any(|n| n.contains("restore")),
        "{entries:?}"
    );
    let out = cli(tmp.path())
        .args(["backup", "verify", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no backup"), "{}", stderr(&out));
}

#[tokio::test]
async fn an_older_snapshot_is_migrated_and_reindexed_at_the_next_start() {
    let (tmp, data, _) = small_backup().await;
    // Make it the database of an earlier release: migrations V3 to V7 not applied yet.
    let conn = rusqlite::Connection::open(data.join("appliance.db")).unwrap();
    conn.execute_batch(
        "DROP TABLE backup_runs; DROP TABLE backup_verifications;
         DROP TABLE audit_log; DROP TABLE password_resets; DROP TABLE api_tokens;
         DROP TABLE sessions; DROP TABLE users; DROP TABLE error_groups;
         DROP TABLE auth_epoch; DROP TABLE jobs;
         DELETE FROM refinery_schema_history WHERE version >= 3;",
    )
    .unwrap();
    drop(conn);
    let out = cli(tmp.path()).args(["backup"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("not recorded"), "{}", stdout(&out));
    let name = archives(&data.join("backups")).pop().unwrap();
    let out = cli(tmp.path()).args(["restore", &name]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("applies 5 pending migration"),
        "{}",
        stdout(&out)
    );
    let app = spawn_in(&data, |_| {}).await.unwrap();
    let (_, v) = app.get_json("/readyz").await;
    assert_eq!(v["checks"]["migrations"]["status"], "ok", "{v}");
    assert_eq!(search_ids(&app, "something").await.0, 20);
    let pre_migrate = std::fs::read_dir(data.join("backups"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("pre-migrate-v2-to-v7")
        })
        .count();
    assert_eq!(
        pre_migrate, 1,
        "the restored database was copied before migrating"
    );
    app.stop().await.unwrap();
}

/// 20 articles and an admin token in `<tmp>/data`, backed up (the token is in the
/// archive, so it works after a restore), then 5 more articles written after the backup.
async fn backup_then_more() -> (tempfile::TempDir, PathBuf, PathBuf, String) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let app = spawn_in(&data, |_| {}).await.unwrap();
    for i in 0..20 {
        publish(&app, i, "before the backup").await;
    }
    let token = common::admin_token(app.state()).await;
    wait_indexed(&app).await;
    app.stop().await.unwrap();
    let out = cli(tmp.path()).args(["backup"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let name = archives(&data.join("backups")).pop().expect("archive");
    let app = spawn_in(&data, |_| {}).await.unwrap();
    for i in 20..25 {
        publish(&app, i, "after the backup").await;
    }
    app.stop().await.unwrap();
    (tmp, data.clone(), data.join("backups").join(name), token)
}

/// The restore's steps fail one at a time, on purpose: each failure leaves the live data
/// where and as it was, the backups where they were, and nothing beside them.
#[tokio::test]
async fn a_restore_failing_at_any_step_leaves_the_live_data_as_it_was() {
    use appliance::backup::restore::{Options, STEPS, restore};
    let (tmp, data, archive, _) = backup_then_more().await;
    let db = data.join("appliance.db");
    let before = sha256_file(&db);
    let beside = || {
        let mut v: Vec<String> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let around = beside();
    let key = appliance::backup::signing::Key::read(&data.join("backup-signing.key")).unwrap();
    let dir = appliance::data_dir::DataDir::new(&data);
    for step in STEPS {
        let opts = Options {
            trust: appliance::backup::signing::Trust::strict(Some(key.clone())),
            fail_at: Some(step.to_string()),
            ..Options::default()
        };
        let err = restore(&dir, &data.join("backups"), &archive, &opts, None).unwrap_err();
        assert!(err.to_string().contains(step), "{step}: {err}");
        assert_eq!(
            sha256_file(&db),
            before,
            "{step}: the live database changed"
        );
        assert!(archive.is_file(), "{step}: the archive moved");
        assert_eq!(beside(), around, "{step}: left something beside the data");
    }
    // Without a failure: the archive's data (20 articles), the old data kept aside.
    let opts = Options {
        trust: appliance::backup::signing::Trust::strict(Some(key)),
        ..Options::default()
    };
    let report = restore(&dir, &data.join("backups"), &archive, &opts, None).unwrap();
    let aside = report.moved_aside.expect("kept aside");
    assert_eq!(sha256_file(&aside.join("appliance.db")), before);
    let app = spawn_in(&data, |_| {}).await.unwrap();
    let (_, page) = app.get_json("/api/articles?count=true").await;
    assert_eq!(page["total"], 20, "{page}");
    app.stop().await.unwrap();
}

/// A restore asked for over HTTP (the admin UI's way): the server stops, restores at its
/// restart in the same process and serves the archive's data on the same address; the
/// outcome is listed and audited. Then one that fails at the swap (on purpose, a
/// debug-build hook): the server comes back on the data it had.
#[tokio::test]
async fn a_restore_asked_over_http_restarts_the_server_on_the_archive_data() {
    let (tmp, _data, archive, token) = backup_then_more().await;
    let name = archive.file_name().unwrap().to_string_lossy().into_owned();
    let mut server = common::start_server_env(
        tmp.path(),
        &[(appliance::ops::restore::FAIL_AT_ENV, "none")],
    );
    let http = common::client_with_token(&token);
    let base = format!("http://{}", server.addr);
    let total = |http: reqwest::Client, base: String| async move {
        let r = http
            .get(format!("{base}/api/articles?count=true"))
            .send()
            .await
            .ok()?;
        (r.status() == 200).then_some(())?;
        r.json::<Value>().await.ok()?["total"].as_u64()
    };
    assert_eq!(total(http.clone(), base.clone()).await, Some(25));
    let res = http
        .post(format!("{base}/api/admin/backups/{name}/restore"))
        .json(&json!({"confirm": "not the name"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let res = http
        .post(format!("{base}/api/admin/backups/{name}/restore"))
        .json(&json!({"confirm": name}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let asked: Value = res.json().await.unwrap();
    // Back on the same address with the archive's 20 articles.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if total(http.clone(), base.clone()).await == Some(20) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not come back restored"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the same process serves"
    );
    let list: Value = http
        .get(format!("{base}/api/admin/backups"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let done = &list["last_restore"];
    assert_eq!(
        (done["ok"].as_bool(), &done["requested_at"]),
        (Some(true), &asked["requested_at"]),
        "{list}"
    );
    let aside = PathBuf::from(done["moved_aside"].as_str().unwrap());
    assert!(aside.join("appliance.db").is_file(), "{aside:?}");
    let audit: Value = http
        .get(format!("{base}/api/admin/audit?action=backup.restore"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        audit.to_string().contains(&name) && audit.to_string().contains("success"),
        "{audit}"
    );
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    // A restore that fails at the swap: the server comes back on the data it had.
    let mut server = common::start_server_env(
        tmp.path(),
        &[(appliance::ops::restore::FAIL_AT_ENV, "swap")],
    );
    let base = format!("http://{}", server.addr);
    let res = http
        .post(format!("{base}/api/articles"))
        .json(&json!({"title": "after the restore", "body": "x", "status": "published"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let res = http
        .post(format!("{base}/api/admin/backups/{name}/restore"))
        .json(&json!({"confirm": name}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let asked: Value = res.json().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let list = loop {
        if let Ok(r) = http.get(format!("{base}/api/admin/backups")).send().await
            && r.status() == 200
        {
            let v: Value = r.json().await.unwrap();
            if v["last_restore"]["requested_at"] == asked["requested_at"] {
                break v;
            }
        }
        assert!(Instant::now() < deadline, "the server did not come back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let done = &list["last_restore"];
    assert_eq!(done["ok"], false, "{list}");
    assert!(done["error"].as_str().unwrap().contains("swap"), "{list}");
    assert_eq!(
        total(http.clone(), base.clone()).await,
        Some(21),
        "the data as it was"
    );
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("restore") && n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}
