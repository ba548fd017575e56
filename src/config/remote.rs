//! `[backup.remote]`: off-site copies of backup archives in S3-compatible object storage,
//! encrypted with age to public recipients before they leave the machine.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Secret};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RemoteConfig {
    /// The bucket; empty turns off-site copies off.
    pub bucket: String,
    /// The S3 endpoint URL; empty means AWS S3 in `region`.
    pub endpoint: String,
    pub region: String,
    /// Key prefix of the archives in the bucket.
    pub prefix: String,
    /// Path-style requests (`endpoint/bucket/key`), as MinIO, Garage, SeaweedFS, Ceph and
    /// rclone need; false: virtual-hosted style (`bucket.endpoint/key`).
    pub path_style: bool,
    pub access_key_id: String,
    pub secret_access_key: Option<Secret>,
    /// The secret key from a file (a relative name is looked up in
    /// `$CREDENTIALS_DIRECTORY`); unset: the systemd credential
    /// `backup.remote.secret_access_key` when given.
    pub secret_access_key_file: Option<PathBuf>,
    /// age public keys (`age1…`) archives are encrypted to before upload. The machine
    /// keeps none of the matching identities: a stolen bucket reveals nothing.
    pub recipients: Vec<String>,
    /// Upload archives unencrypted (only with this set, and no recipients).
    pub allow_unencrypted: bool,
    /// Retention in the bucket, applied after every upload, as `backup.keep_*` (the
    /// newest complete copy is always kept).
    pub keep_last: u32,
    pub keep_daily: u32,
    pub keep_weekly: u32,
    /// `/readyz` says degraded (and the backup alert fires) when the newest off-site
    /// copy is older than this, or the last upload failed (0: only the failure).
    pub max_age_hours: u64,
}

impl Default for RemoteConfig {
    fn default() -> Self {
        RemoteConfig {
            bucket: String::new(),
            endpoint: String::new(),
            region: "us-east-1".into(),
            prefix: "appliance/".into(),
            path_style: false,
            access_key_id: String::new(),
            secret_access_key: None,
            secret_access_key_file: None,
            recipients: Vec::new(),
            allow_unencrypted: false,
            keep_last: 7,
            keep_daily: 7,
            keep_weekly: 4,
            max_age_hours: 26,
        }
    }
}

impl RemoteConfig {
    /// Whether off-site copies are on.
    pub fn enabled(&self) -> bool {
        !self.bucket.is_empty()
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !self.enabled() {
            return Ok(());
        }
        if self.access_key_id.is_empty() || self.secret_access_key.is_none() {
            return Err(ConfigError::invalid(
                "backup.remote.access_key_id",
                format!("{:?}", self.access_key_id),
                "off-site copies need access_key_id and the secret key (secret_access_key_file, or the credential backup.remote.secret_access_key)",
            ));
        }
        let url = self.endpoint.starts_with("http://") || self.endpoint.starts_with("https://");
        if !(self.endpoint.is_empty() || url) {
            return Err(ConfigError::invalid(
                "backup.remote.endpoint",
                format!("{:?}", self.endpoint),
                "must be an http:// or https:// URL",
            ));
        }
        if self.keep_last == 0 {
            return Err(ConfigError::invalid(
                "backup.remote.keep_last",
                0,
                "must be at least 1 (the newest off-site copy is always kept)",
            ));
        }
        if self.recipients.is_empty() && !self.allow_unencrypted {
            return Err(ConfigError::invalid(
                "backup.remote.recipients",
                "[]",
                "archives leave the machine encrypted: give at least one age public key (age1…, from `age-keygen`), or set allow_unencrypted = true",
            ));
        }
        if !self.recipients.is_empty() && self.allow_unencrypted {
            return Err(ConfigError::invalid(
                "backup.remote.allow_unencrypted",
                true,
                "recipients are given, so archives are encrypted: remove one of the two",
            ));
        }
        for r in &self.recipients {
            if r.parse::<age::x25519::Recipient>().is_err() {
                return Err(ConfigError::invalid(
                    "backup.remote.recipients",
                    format!("{r:?}"),
                    "not an age public key (age1…)",
                ));
            }
        }
        Ok(())
    }
}
