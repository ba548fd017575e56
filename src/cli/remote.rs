//! The off-site side of `appliance backup` and `restore`: `backup push`, `backup list
//! --remote`, `backup verify s3://NAME`, `restore --remote NAME`, and the upload after
//! `appliance backup` (see `crate::replication`).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::backup::TrustArgs;
use crate::backup::signing::Location;
use crate::config::Config;
use crate::db::audit::Outcome;
use crate::replication::{Remote, RemoteError};

/// A byte progress bar for a transfer.
fn bar() -> (indicatif::ProgressBar, impl Fn(u64, u64) + Send + Sync) {
    let pb = super::progress::bytes();
    let p = pb.clone();
    (pb, move |done, total| {
        p.set_length(total);
        p.set_position(done);
    })
}

/// Copy `archive` (a path) off the machine; prints where it went unless `quiet`.
pub(super) async fn push_path(config: &Config, archive: &Path, quiet: bool) -> anyhow::Result<()> {
    let remote = Remote::new(&config.backup.remote)?;
    let at = Location::of(&config.backup, &config.data_dir);
    let key = at.load_or_create()?;
    let (pb, progress) = bar();
    let res = remote.push(archive, &key, &progress).await;
    pb.finish_and_clear();
    // Recorded as the server's are: /readyz and the backup alert read the newest.
    let event = match &res {
        Ok(copy) => crate::auth::audit::Actor::cli()
            .event("backup.offsite", Outcome::Success)
            .details(serde_json::json!({"object": copy.object, "bytes": copy.size, "encrypted": copy.encrypted})),
        Err(e) => crate::auth::audit::Actor::cli()
            .event("backup.offsite", Outcome::Failure)
            .details(serde_json::json!({"error": e.to_string()})),
    };
    let name = archive
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    crate::auth::audit::write(&super::ledger(config), event.target(name)).await;
    let copy = res.with_context(|| {
        format!(
            "the local archive {} is kept; the off-site copy failed",
            archive.display()
        )
    })?;
    let plan = remote.prune().await?;
    if quiet {
        return Ok(());
    }
    for name in &plan.delete {
        println!("off-site retention removed {name}");
    }
    println!(
        "off-site copy: {}{} ({} bytes, {}, sha256 {})",
        remote.name(),
        copy.object,
        copy.size,
        if copy.encrypted {
            "encrypted with age"
        } else {
            "NOT encrypted"
        },
        &copy.sha256[..16]
    );
    Ok(())
}

/// `backup push [NAME]`: the named archive, or the newest.
pub(super) async fn push(config: &Config, archive: Option<&str>) -> anyhow::Result<()> {
    let dir = config.backups_dir();
    let path = match archive {
        Some(a) => crate::backup::resolve(&dir, a)?,
        None => {
            let newest = crate::backup::list(&dir)?
                .into_iter()
                .max_by(|a, b| a.created_at.cmp(&b.created_at));
            match newest {
                Some(e) => dir.join(e.name),
                None => bail!("no backups in {} to copy off the machine", dir.display()),
            }
        }
    };
    push_path(config, &path, false).await
}

/// `backup list --remote`.
pub(super) async fn list(config: &Config, json: bool) -> anyhow::Result<()> {
    let remote = Remote::new(&config.backup.remote)?;
    let items = remote.list().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&items)?);
        return Ok(());
    }
    if items.is_empty() {
        println!("no archives in {}", remote.name());
        return Ok(());
    }
    println!(
        "{:<52} {:>12} {:<24} STATE",
        "NAME", "SIZE", "UPLOADED (UTC)"
    );
    for i in &items {
        let state = match (i.complete, i.encrypted) {
            (true, true) => "complete, encrypted",
            (true, false) => "complete, NOT encrypted",
            (false, _) => "INCOMPLETE (upload did not finish; not used)",
        };
        println!(
            "{:<52} {:>12} {:<24} {state}",
            i.archive, i.size, i.last_modified
        );
    }
    Ok(())
}

/// Download `archive` from the bucket into `dir` (checked and decrypted).
pub(super) async fn fetch(
    config: &Config,
    archive: &str,
    dir: &Path,
    identity: Option<&Path>,
    trust: &TrustArgs,
) -> anyhow::Result<PathBuf> {
    let remote = Remote::new(&config.backup.remote)?;
    let (trust, _) = trust.trust(config)?;
    crate::data_dir::create_private_dir(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let (pb, progress) = bar();
    let res = remote
        .fetch(archive, dir, identity, &trust, &progress)
        .await;
    pb.finish_and_clear();
    match res {
        Err(RemoteError::NotConfigured) => Err(RemoteError::NotConfigured.into()),
        other => Ok(other?),
    }
}

/// `backup verify s3://NAME`: download to a temporary directory, verify, remove.
pub(super) async fn verify(
    config: &Config,
    name: &str,
    trust_args: &TrustArgs,
    identity: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let scratch = crate::backup::job::Scratch::of(&config.data_dir, &config.backup);
    crate::data_dir::create_private_dir(&scratch.dir)
        .with_context(|| format!("cannot create {}", scratch.dir.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".remote-verify-")
        .tempdir_in(&scratch.dir)
        .with_context(|| format!("cannot create a directory in {}", scratch.dir.display()))?;
    let path = fetch(config, name, tmp.path(), identity, trust_args).await?;
    let (trust, _) = trust_args.trust(config)?;
    let pb = super::progress::bytes();
    let res = crate::backup::job::verify_and_record(
        &super::ledger(config),
        &config.backups_dir(),
        &path,
        &scratch,
        trust,
        super::backup::job_report(&pb),
        None,
    )
    .await;
    pb.finish_and_clear();
    let v = res??;
    super::backup::print_verified(&path, &v);
    println!("the off-site copy s3://{name} is complete and restorable");
    Ok(())
}
