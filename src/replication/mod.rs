//! Off-site copies of backup archives in S3-compatible object storage (`[backup.remote]`).
//!
//! An archive leaves the machine encrypted with age to the configured public recipients
//! (the machine holds none of the identities), as `<prefix><archive>.age`. It is
//! uploaded in parts (object_store's multipart upload: the object appears only when the
//! last part is committed, and the client retries with backoff); its size is checked
//! against what was sent; only then is the sidecar `<object>.json` written: the
//! object's size and SHA-256, signed with the backup signing key. An object without its
//! sidecar is an upload that did not finish and is never used.
//!
//! Fetching checks the sidecar's signature and the downloaded object's SHA-256 before
//! anything is decrypted onto disk, then decrypts with an identity file given for the
//! occasion; the archive then verifies and restores as a local one.

use std::path::Path;
use std::sync::Arc;

use futures_util::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

use crate::backup::retention::{Plan, Policy};
use crate::backup::signing;
use crate::config::RemoteConfig;

mod crypt;
mod fetch;
pub mod job;

/// Parts of this size are uploaded (S3's minimum is 5 MiB).
const PART: usize = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error(
        "off-site copies are not configured: set backup.remote.bucket, its keys and recipients"
    )]
    NotConfigured,
    #[error("{0}")]
    Store(String),
    #[error("{0}")]
    Invalid(String),
}

fn io(what: &str) -> impl Fn(std::io::Error) -> RemoteError + '_ {
    move |e| RemoteError::Invalid(format!("{what}: {e}"))
}

/// One line for an object store error, with what to check.
fn store(what: &str, e: object_store::Error) -> RemoteError {
    use object_store::Error as E;
    let why = match &e {
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => {
            "access denied (check backup.remote.access_key_id and the secret key)".to_string()
        }
        E::NotFound { .. } => "not found (check backup.remote.bucket and endpoint)".to_string(),
        other => {
            // The client's message, without the request dump and the server's body.
            let text = other.to_string();
            let first = text.lines().next().unwrap_or("").trim();
            let short = first.split(" - Server returned").next().unwrap_or(first);
            let short = short.split(": Error performing").next().unwrap_or(short);
            if text.contains("NoSuchBucket") {
                format!("{short} (no such bucket: check backup.remote.bucket)")
            } else {
                short.to_string()
            }
        }
    };
    RemoteError::Store(format!("{what}: {why}"))
}

/// What the sidecar says of an uploaded archive (signed).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Copy {
    /// The local archive's name.
    pub archive: String,
    /// The object's key below the prefix.
    pub object: String,
    pub size: u64,
    pub sha256: String,
    pub encrypted: bool,
    pub uploaded_at: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Sidecar {
    copy: Copy,
    /// The backup signing key's signature over `copy` as JSON.
    signature: serde_json::Value,
}

/// An archive in the bucket, complete (with its sidecar) or not.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub archive: String,
    pub size: u64,
    pub last_modified: String,
    /// The sidecar is there: the upload finished and was checked.
    pub complete: bool,
    pub encrypted: bool,
}

/// The configured bucket.
pub struct Remote {
    policy: Policy,
    store: Arc<dyn ObjectStore>,
    prefix: String,
    name: String,
    recipients: Vec<age::x25519::Recipient>,
}

impl Remote {
    /// The remote of `config`; [`RemoteError::NotConfigured`] when there is none.
    pub fn new(config: &RemoteConfig) -> Result<Remote, RemoteError> {
        if !config.enabled() {
            return Err(RemoteError::NotConfigured);
        }
        let secret = config
            .secret_access_key
            .as_ref()
            .map(|s| s.expose().to_string())
            .unwrap_or_default();
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_access_key_id(&config.access_key_id)
            .with_secret_access_key(secret)
            .with_virtual_hosted_style_request(!config.path_style)
            // Retries with exponential backoff (and jitter), but an endpoint that is
            // down is said within a minute instead of object_store's three.
            .with_retry(object_store::RetryConfig {
                backoff: object_store::BackoffConfig {
                    init_backoff: std::time::Duration::from_millis(200),
                    max_backoff: std::time::Duration::from_secs(10),
                    base: 2.0,
                },
                max_retries: 5,
                retry_timeout: std::time::Duration::from_secs(60),
            });
        if !config.endpoint.is_empty() {
            b = b
                .with_endpoint(&config.endpoint)
                .with_allow_http(config.endpoint.starts_with("http://"));
        }
        let s3 = b
            .build()
            .map_err(|e| store("the backup.remote settings are not usable", e))?;
        let recipients = config
            .recipients
            .iter()
            .map(|r| {
                r.parse()
                    .map_err(|_| RemoteError::Invalid(format!("{r:?} is not an age public key")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Remote {
            policy: Policy {
                keep_last: config.keep_last,
                keep_daily: config.keep_daily,
                keep_weekly: config.keep_weekly,
            },
            store: Arc::new(s3),
            prefix: config.prefix.trim_start_matches('/').to_string(),
            name: format!(
                "s3://{}/{}",
                config.bucket,
                config.prefix.trim_start_matches('/')
            ),
            recipients,
        })
    }

    /// `s3://bucket/prefix`, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn key(&self, object: &str) -> Key {
        Key::from(format!("{}{object}", self.prefix))
    }

    fn object_of(&self, archive: &str) -> String {
        if self.recipients.is_empty() {
            archive.to_string()
        } else {
            format!("{archive}.age")
        }
    }

    /// Copy `archive` off the machine (encrypting it first when recipients are set) and
    /// record it with a signed sidecar; `progress(sent, total)` as parts go.
    pub async fn push(
        &self,
        archive: &Path,
        key: &signing::Key,
        progress: &(dyn Fn(u64, u64) + Send + Sync),
    ) -> Result<Copy, RemoteError> {
        let name = archive
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| RemoteError::Invalid(format!("{} is not a file", archive.display())))?;
        let object = self.object_of(&name);
        // What goes up: the encrypted copy (a temporary file beside the archive) or the
        // archive itself; its size and SHA-256.
        let (source, temp, size, sha256) = if self.recipients.is_empty() {
            let a = archive.to_path_buf();
            let (size, sha) = tokio::task::spawn_blocking(move || crypt::digest(&a))
                .await
                .map_err(|e| RemoteError::Invalid(e.to_string()))??;
            (archive.to_path_buf(), None, size, sha)
        } else {
            let tmp = crate::fsutil::temp_path_for(&archive.with_file_name(&object));
            let (a, t, r) = (archive.to_path_buf(), tmp.clone(), self.recipients.clone());
            let (size, sha) = tokio::task::spawn_blocking(move || crypt::encrypt(&a, &t, &r))
                .await
                .map_err(|e| RemoteError::Invalid(e.to_string()))??;
            (tmp.clone(), Some(tmp), size, sha)
        };
        let res = self.upload(&source, &object, size, progress).await;
        if let Some(t) = temp {
            let _ = std::fs::remove_file(t);
        }
        res?;
        let copy = Copy {
            archive: name,
            object: object.clone(),
            size,
            sha256,
            encrypted: !self.recipients.is_empty(),
            uploaded_at: crate::clock::now(),
        };
        let body = serde_json::to_vec(&copy).map_err(|e| RemoteError::Invalid(e.to_string()))?;
        let signature: serde_json::Value = serde_json::from_slice(&key.sign(&body))
            .map_err(|e| RemoteError::Invalid(e.to_string()))?;
        let sidecar = serde_json::to_vec_pretty(&Sidecar {
            copy: copy.clone(),
            signature,
        })
        .map_err(|e| RemoteError::Invalid(e.to_string()))?;
        self.store
            .put(
                &self.key(&format!("{object}.json")),
                PutPayload::from(sidecar),
            )
            .await
            .map_err(|e| store(&format!("cannot record {object} in {}", self.name), e))?;
        Ok(copy)
    }

    async fn upload(
        &self,
        source: &Path,
        object: &str,
        size: u64,
        progress: &(dyn Fn(u64, u64) + Send + Sync),
    ) -> Result<(), RemoteError> {
        let key = self.key(object);
        let what = format!("cannot upload {object} to {}", self.name);
        let upload = self
            .store
            .put_multipart(&key)
            .await
            .map_err(|e| store(&what, e))?;
        let mut w = WriteMultipart::new_with_chunk_size(upload, PART);
        let mut f = tokio::fs::File::open(source)
            .await
            .map_err(io(&source.display().to_string()))?;
        let mut buf = vec![0u8; PART];
        let mut sent = 0u64;
        loop {
            let n = match f.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    let _ = w.abort().await;
                    return Err(io(&source.display().to_string())(e));
                }
            };
            if let Err(e) = w.wait_for_capacity(2).await {
                let _ = w.abort().await;
                return Err(store(&what, e));
            }
            w.write(&buf[..n]);
            sent += n as u64;
            progress(sent, size);
        }
        w.finish().await.map_err(|e| store(&what, e))?;
        let meta = self.store.head(&key).await.map_err(|e| store(&what, e))?;
        if meta.size != size {
            let _ = self.store.delete(&key).await;
            return Err(RemoteError::Store(format!(
                "{what}: the bucket holds {} bytes of {size}; removed, try again",
                meta.size
            )));
        }
        Ok(())
    }

    /// Every archive in the bucket, newest name first.
    pub async fn list(&self) -> Result<Vec<Listed>, RemoteError> {
        let prefix = Key::from(self.prefix.trim_end_matches('/'));
        let mut objects = self.store.list(Some(&prefix));
        let mut all = Vec::new();
        while let Some(o) = objects.next().await {
            let o = o.map_err(|e| store(&format!("cannot list {}", self.name), e))?;
            all.push(o);
        }
        let names: std::collections::HashSet<String> =
            all.iter().map(|o| o.location.to_string()).collect();
        let mut out: Vec<Listed> = all
            .iter()
            .filter_map(|o| {
                let loc = o.location.to_string();
                if loc.ends_with(".json") {
                    return None;
                }
                let object = loc.strip_prefix(&self.prefix).unwrap_or(&loc);
                let encrypted = object.ends_with(".age");
                Some(Listed {
                    archive: object.trim_end_matches(".age").to_string(),
                    size: o.size,
                    last_modified: crate::clock::format(
                        time::OffsetDateTime::from_unix_timestamp(o.last_modified.timestamp())
                            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
                    ),
                    complete: names.contains(&format!("{loc}.json")),
                    encrypted,
                })
            })
            .collect();
        out.sort_by(|a, b| b.archive.cmp(&a.archive));
        Ok(out)
    }

    /// `doctor --online`: write a small object under the prefix, see it listed, delete
    /// it. The error says which step failed and why, in one line.
    pub async fn probe(&self) -> Result<String, RemoteError> {
        let object = format!(".appliance-doctor-{}", uuid::Uuid::new_v4());
        let key = self.key(&object);
        let started = std::time::Instant::now();
        self.store
            .put(&key, PutPayload::from_static(b"appliance doctor"))
            .await
            .map_err(|e| store(&format!("cannot write to {}", self.name), e))?;
        let listed = self.list_raw().await;
        let deleted = self.store.delete(&key).await;
        let names = listed?;
        deleted.map_err(|e| store(&format!("cannot delete from {}", self.name), e))?;
        if !names.iter().any(|n| n.ends_with(&object)) {
            return Err(RemoteError::Store(format!(
                "{}: an object written there is not listed (check backup.remote.prefix)",
                self.name
            )));
        }
        Ok(format!(
            "{} accepts writes, lists and deletes ({} ms)",
            self.name,
            started.elapsed().as_millis()
        ))
    }

    async fn list_raw(&self) -> Result<Vec<String>, RemoteError> {
        let prefix = Key::from(self.prefix.trim_end_matches('/'));
        let mut objects = self.store.list(Some(&prefix));
        let mut out = Vec::new();
        while let Some(o) = objects.next().await {
            let o = o.map_err(|e| store(&format!("cannot list {}", self.name), e))?;
            out.push(o.location.to_string());
        }
        Ok(out)
    }

    /// Apply `backup.remote.keep_*` to the complete copies in the bucket (the newest
    /// complete one is always kept): each one deleted goes with its sidecar.
    pub async fn prune(&self) -> Result<Plan, RemoteError> {
        let listed = self.list().await?;
        let complete: Vec<crate::backup::Entry> = listed
            .iter()
            .filter(|l| l.complete)
            .filter_map(|l| {
                let (created_at, trigger) = crate::backup::parse_name(&l.archive)?;
                Some(crate::backup::Entry {
                    name: l.archive.clone(),
                    created_at,
                    trigger,
                    size_bytes: l.size,
                })
            })
            .collect();
        let verified = complete.iter().map(|e| e.name.clone()).collect();
        let plan = crate::backup::retention::plan(&complete, self.policy, &verified);
        for name in &plan.delete {
            let object = self.object_of(name);
            for key in [self.key(&format!("{object}.json")), self.key(&object)] {
                self.store
                    .delete(&key)
                    .await
                    .map_err(|e| store(&format!("cannot delete {key} from {}", self.name), e))?;
            }
            tracing::info!(archive = %name, remote = %self.name, "off-site copy removed by retention");
        }
        Ok(plan)
    }
}
