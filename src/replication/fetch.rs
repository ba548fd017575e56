//! The way back: an off-site copy downloaded, its sidecar's signature and its SHA-256
//! checked before anything is decrypted onto disk, then decrypted.

use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use object_store::ObjectStoreExt;
use tokio::io::AsyncWriteExt;

use super::{Copy, Remote, RemoteError, Sidecar, crypt, io, store};
use crate::backup::signing;

impl Remote {
    /// Download `archive` into `dir`: the sidecar's signature checked against `trust`,
    /// the object's SHA-256 against the sidecar, then decrypted with `identity` (an age
    /// identity file) when it is encrypted. Returns the archive's local path.
    pub async fn fetch(
        &self,
        archive: &str,
        dir: &Path,
        identity: Option<&Path>,
        trust: &signing::Trust,
        progress: &(dyn Fn(u64, u64) + Send + Sync),
    ) -> Result<PathBuf, RemoteError> {
        let archive = archive.trim_start_matches("s3://");
        let archive = archive.rsplit('/').next().unwrap_or(archive);
        let archive = archive.trim_end_matches(".age").trim_end_matches(".json");
        let copy = self.sidecar(archive, trust).await?;
        let key = self.key(&copy.object);
        let what = format!("cannot download {} from {}", copy.object, self.name);
        let got = self.store.get(&key).await.map_err(|e| store(&what, e))?;
        let download = dir.join(format!(".{}.download", copy.object));
        let mut f = tokio::fs::File::create(&download)
            .await
            .map_err(io(&download.display().to_string()))?;
        let mut hash = crypt::Hasher::default();
        let mut stream = got.into_stream();
        let mut n = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    let _ = std::fs::remove_file(&download);
                    return Err(store(&what, e));
                }
            };
            hash.update(&chunk);
            n += chunk.len() as u64;
            if let Err(e) = f.write_all(&chunk).await {
                let _ = std::fs::remove_file(&download);
                return Err(io(&download.display().to_string())(e));
            }
            progress(n, copy.size);
        }
        f.sync_all()
            .await
            .map_err(io(&download.display().to_string()))?;
        drop(f);
        if n != copy.size || hash.hex() != copy.sha256 {
            let _ = std::fs::remove_file(&download);
            return Err(RemoteError::Invalid(format!(
                "the remote copy of {archive} is damaged: {n} bytes with SHA-256 {}, but {} bytes with {} were uploaded; it is refused",
                &hash.hex()[..16],
                copy.size,
                &copy.sha256[..16.min(copy.sha256.len())]
            )));
        }
        let out = dir.join(&copy.archive);
        let tmp = crate::fsutil::temp_path_for(&out);
        let result = if copy.encrypted {
            let Some(identity) = identity else {
                let _ = std::fs::remove_file(&download);
                return Err(RemoteError::Invalid(format!(
                    "{archive} is encrypted: give the age identity that matches backup.remote.recipients with --identity-file"
                )));
            };
            let (d, t, i) = (download.clone(), tmp.clone(), identity.to_path_buf());
            tokio::task::spawn_blocking(move || crypt::decrypt(&d, &t, &i))
                .await
                .map_err(|e| RemoteError::Invalid(e.to_string()))
                .and_then(|r| r)
        } else {
            std::fs::rename(&download, &tmp).map_err(io(&tmp.display().to_string()))
        };
        let _ = std::fs::remove_file(&download);
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        crate::fsutil::persist(&tmp, &out).map_err(io(&out.display().to_string()))?;
        Ok(out)
    }

    /// The sidecar of `archive`, its signature checked with `trust` (this appliance's
    /// key, or one given with --key-file; `--trust-unsigned` accepts another key's).
    async fn sidecar(&self, archive: &str, trust: &signing::Trust) -> Result<Copy, RemoteError> {
        let object = self.object_of(archive);
        let key = self.key(&format!("{object}.json"));
        let got = self.store.get(&key).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => RemoteError::Invalid(format!(
                "{archive} has no completed upload in {} (see `appliance backup list --remote`)",
                self.name
            )),
            e => store(&format!("cannot read {object}.json"), e),
        })?;
        let bytes = got
            .bytes()
            .await
            .map_err(|e| store(&format!("cannot read {object}.json"), e))?;
        let sidecar: Sidecar = serde_json::from_slice(&bytes).map_err(|_| {
            RemoteError::Invalid(format!("{object}.json is not a sidecar: refused"))
        })?;
        let body =
            serde_json::to_vec(&sidecar.copy).map_err(|e| RemoteError::Invalid(e.to_string()))?;
        let signature = serde_json::to_vec(&sidecar.signature)
            .map_err(|e| RemoteError::Invalid(e.to_string()))?;
        trust
            .check(&body, Some(&signature))
            .map_err(|why| RemoteError::Invalid(format!("the remote copy of {archive}: {why}")))?;
        Ok(sidecar.copy)
    }
}
