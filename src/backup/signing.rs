//! Who made an archive: every manifest is signed with HMAC-SHA256 under a key that never
//! goes into an archive, and verification checks that signature before it believes
//! anything the manifest says. The manifest's sha256 sums prove an archive is intact;
//! only the signature proves this appliance (or one holding its key) wrote it, so an
//! archive someone rebuilt with an extra admin in `appliance.db` and fresh sums is
//! refused.
//!
//! The key is 32 random bytes written as 64 hex digits. It is found, in this order:
//! `backup.signing_key_file` (a relative name is looked up in systemd's
//! `$CREDENTIALS_DIRECTORY`), the systemd credential `backup-signing-key`, or
//! `<data_dir>/backup-signing.key`, which the first backup creates (mode 0600). Only the
//! last is ever created; a configured or credential key that is missing is an error.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use hmac::{Hmac, KeyInit, Mac};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::BackupError;
use crate::config::BackupConfig;

/// The archive member holding the manifest's signature.
pub const SIG_MEMBER: &str = "manifest.json.sig";
/// The key's file name in the data directory.
pub const KEY_FILE: &str = "backup-signing.key";
/// The systemd credential that holds the key (`LoadCredential=backup-signing-key:...`).
pub const CREDENTIAL: &str = "backup-signing-key";
const ALGORITHM: &str = "HMAC-SHA256";

/// A signing key. `Debug` shows its id, never the key.
#[derive(Clone)]
pub struct Key {
    secret: [u8; 32],
    id: String,
    path: PathBuf,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({} from {})", self.id, self.path.display())
    }
}

/// The signature member's content.
#[derive(Debug, Serialize, Deserialize)]
struct Signature {
    algorithm: String,
    key_id: String,
    mac: String,
}

impl Key {
    fn from_secret(secret: [u8; 32], path: PathBuf) -> Key {
        let id = hex::encode(&mac(&secret, b"appliance backup key id")[..8]);
        Key { secret, id, path }
    }

    /// A key from its file: 64 hex digits (whitespace around them is ignored).
    pub fn read(path: &Path) -> Result<Key, BackupError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            BackupError::Other(format!(
                "cannot read the backup signing key {}: {e}",
                path.display()
            ))
        })?;
        let bytes = hex::decode(text.trim()).ok();
        let secret: [u8; 32] = bytes.and_then(|b| b.try_into().ok()).ok_or_else(|| {
            BackupError::Other(format!(
                "{} is not a backup signing key (expected 64 hex digits)",
                path.display()
            ))
        })?;
        Ok(Key::from_secret(secret, path.to_path_buf()))
    }

    /// A short public name of the key (not the key): the first 8 bytes of an HMAC of a
    /// fixed text under it, in hex. Archives carry it, so a refusal can say which key
    /// signed them.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Where the key was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Write this key to `path` (a new file, mode 0600), e.g. into a restored data
    /// directory, so its next backups are signed as the archive it came from.
    pub fn install(&self, path: &Path) -> Result<(), BackupError> {
        write_key(path, &self.secret)
    }

    /// The signature member for `manifest`.
    pub fn sign(&self, manifest: &[u8]) -> Vec<u8> {
        let sig = Signature {
            algorithm: ALGORITHM.into(),
            key_id: self.id.clone(),
            mac: hex::encode(mac(&self.secret, manifest)),
        };
        let mut out = serde_json::to_vec_pretty(&sig).unwrap_or_default();
        out.push(b'\n');
        out
    }
}

fn mac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// Where this appliance's key is, and whether it may be created there.
#[derive(Debug, Clone, PartialEq)]
pub enum Location {
    /// `backup.signing_key_file`, or the systemd credential: must exist.
    Given(PathBuf),
    /// `<data_dir>/backup-signing.key`: created by the first backup.
    DataDir(PathBuf),
}

impl Location {
    pub fn of(config: &BackupConfig, data_dir: &Path) -> Location {
        let credentials = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
        if let Some(file) = &config.signing_key_file {
            return Location::Given(match &credentials {
                Some(dir) if file.is_relative() => dir.join(file),
                _ => file.clone(),
            });
        }
        if let Some(c) = credentials
            .map(|d| d.join(CREDENTIAL))
            .filter(|p| p.is_file())
        {
            return Location::Given(c);
        }
        Location::DataDir(data_dir.join(KEY_FILE))
    }

    pub fn path(&self) -> &Path {
        match self {
            Location::Given(p) | Location::DataDir(p) => p,
        }
    }

    /// The key, if there is one yet (a given key that is missing is an error).
    pub fn load(&self) -> Result<Option<Key>, BackupError> {
        match self {
            Location::DataDir(p) if !p.exists() => Ok(None),
            _ => Key::read(self.path()).map(Some),
        }
    }

    /// The key, created first when it is the data directory's and there is none yet.
    pub fn load_or_create(&self) -> Result<Key, BackupError> {
        if let Some(k) = self.load()? {
            return Ok(k);
        }
        let path = self.path();
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        match write_key(path, &secret) {
            Ok(()) => {}
            // Another process created it first (two first backups at once): use theirs.
            Err(BackupError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::AlreadyExists =>
            {
                return Key::read(path);
            }
            Err(e) => return Err(e),
        }
        tracing::warn!(
            key = %path.display(),
            "created the backup signing key: keep a copy off this machine, archives can only be restored elsewhere with it"
        );
        Ok(Key::from_secret(secret, path.to_path_buf()))
    }
}

/// Write a key file: temp name, mode 0600, fsync, link into place (never replacing a
/// key another process wrote first), fsync the directory. Root writing into a service
/// user's data directory gives the file to that user.
fn write_key(path: &Path, secret: &[u8; 32]) -> Result<(), BackupError> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let ctx = |e: std::io::Error| BackupError::Io {
        context: format!("writing the backup signing key {}", path.display()),
        source: e,
    };
    // A name of its own per attempt (process id and random), so that two writers never
    // share a temp file; only the link into place can find the key already there.
    let mut nonce = [0u8; 8];
    rand::rng().fill_bytes(&mut nonce);
    let tmp = dir.join(format!(
        ".{KEY_FILE}.{}.{}.tmp",
        std::process::id(),
        hex::encode(nonce)
    ));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(ctx)?;
    let written = writeln!(f, "{}", hex::encode(secret))
        .and_then(|()| f.sync_all())
        .and_then(|()| {
            if crate::fsutil::running_as_root() {
                use std::os::unix::fs::MetadataExt;
                let owner = std::fs::metadata(dir)?;
                std::os::unix::fs::chown(&tmp, Some(owner.uid()), Some(owner.gid()))?;
            }
            std::fs::hard_link(&tmp, path)
        });
    let _ = std::fs::remove_file(&tmp);
    written.map_err(ctx)?;
    crate::fsutil::fsync_dir(dir).map_err(ctx)
}

/// What verification knows about who made an archive.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Origin {
    /// Signed with this appliance's key.
    Signed { key_id: String },
    /// Accepted with `--trust-unsigned`: no signature (an archive from before signing).
    Unsigned,
    /// Accepted with `--trust-unsigned`: signed with a key this appliance does not have.
    OtherKey { key_id: String },
}

/// How an archive's origin is checked.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// This appliance's key (None: it has none yet, so nothing verifies as signed).
    pub key: Option<Key>,
    /// Accept an archive that is unsigned or signed with another key (`--trust-unsigned`).
    /// An archive signed with this key whose signature does not match is refused even so:
    /// that one is known to be altered.
    pub trust_unsigned: bool,
}

impl Trust {
    pub fn strict(key: Option<Key>) -> Trust {
        Trust {
            key,
            trust_unsigned: false,
        }
    }

    /// Check `signature` (the member's bytes, None when absent) over `manifest`.
    /// The error is the problem, in words for an operator.
    pub fn check(&self, manifest: &[u8], signature: Option<&[u8]>) -> Result<Origin, String> {
        const HINT: &str = "restore it only if you trust where it came from, with --trust-unsigned";
        let Some(raw) = signature else {
            return self.unproven(
                Origin::Unsigned,
                format!("the archive is not signed (no {SIG_MEMBER}); it may be from before archives were signed, or altered; {HINT}"),
            );
        };
        let sig: Signature = serde_json::from_slice(raw)
            .map_err(|_| format!("{SIG_MEMBER} is not a signature: the archive was altered"))?;
        if sig.algorithm != ALGORITHM {
            return Err(format!(
                "{SIG_MEMBER} uses {:?}, this appliance checks {ALGORITHM}",
                sig.algorithm
            ));
        }
        let key = match &self.key {
            Some(k) if k.id == sig.key_id => k,
            Some(k) => {
                let problem = format!(
                    "the archive is signed with key {}, not this appliance's key {} ({}); give that key with --key-file, or {HINT}",
                    sig.key_id,
                    k.id,
                    k.path.display()
                );
                return self.unproven(Origin::OtherKey { key_id: sig.key_id }, problem);
            }
            None => {
                let problem = format!(
                    "the archive is signed with key {}, and this appliance has no backup signing key; give that key with --key-file, or {HINT}",
                    sig.key_id
                );
                return self.unproven(Origin::OtherKey { key_id: sig.key_id }, problem);
            }
        };
        let expected = hex::decode(&sig.mac).unwrap_or_default();
        let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(&key.secret)
            .map_err(|_| "bad key length".to_string())?;
        m.update(manifest);
        m.verify_slice(&expected).map_err(|_| {
            format!(
                "the manifest's signature does not match (key {}): the archive was altered after it was written; it is refused",
                key.id
            )
        })?;
        Ok(Origin::Signed {
            key_id: key.id.clone(),
        })
    }

    fn unproven(&self, origin: Origin, problem: String) -> Result<Origin, String> {
        if self.trust_unsigned {
            tracing::warn!(?origin, "archive accepted with --trust-unsigned: {problem}");
            Ok(origin)
        } else {
            Err(problem)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(dir: &Path) -> Key {
        Location::DataDir(dir.join(KEY_FILE))
            .load_or_create()
            .unwrap()
    }

    #[test]
    fn a_key_is_created_once_private_and_signs_what_it_verifies() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let loc = Location::DataDir(tmp.path().join(KEY_FILE));
        assert!(loc.load().unwrap().is_none());
        let k = loc.load_or_create().unwrap();
        let mode = std::fs::metadata(loc.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = loc.load_or_create().unwrap();
        assert_eq!(again.id(), k.id(), "the second call reads the same key");
        let sig = k.sign(b"manifest");
        let trust = Trust::strict(Some(k.clone()));
        assert_eq!(
            trust.check(b"manifest", Some(&sig)),
            Ok(Origin::Signed {
                key_id: k.id().into()
            })
        );
        let err = trust.check(b"manifesT", Some(&sig)).unwrap_err();
        assert!(err.contains("does not match"), "{err}");
        // Altered is refused even when unsigned archives are trusted.
        let lax = Trust {
            key: Some(k.clone()),
            trust_unsigned: true,
        };
        assert!(lax.check(b"manifesT", Some(&sig)).is_err());
        assert_eq!(lax.check(b"m", None), Ok(Origin::Unsigned));
        assert!(trust.check(b"m", None).unwrap_err().contains("not signed"));
        assert!(format!("{k:?}").contains(k.id()));
        assert!(!format!("{k:?}").contains(&hex::encode(k.secret)));
    }

    #[test]
    fn two_first_backups_at_once_end_up_with_one_key() {
        let tmp = tempfile::tempdir().unwrap();
        let loc = Location::DataDir(tmp.path().join(KEY_FILE));
        let ids: Vec<String> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|_| s.spawn(|| loc.load_or_create().unwrap().id().to_string()))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let on_disk = Key::read(loc.path()).unwrap();
        assert!(ids.iter().all(|id| id == on_disk.id()), "{ids:?}");
    }

    #[test]
    fn another_key_is_named_and_a_bad_key_file_is_refused() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (ka, kb) = (key(a.path()), key(b.path()));
        assert_ne!(ka.id(), kb.id());
        let sig = kb.sign(b"m");
        let err = Trust::strict(Some(ka.clone()))
            .check(b"m", Some(&sig))
            .unwrap_err();
        assert!(err.contains(kb.id()) && err.contains(ka.id()), "{err}");
        let err = Trust::strict(None).check(b"m", Some(&sig)).unwrap_err();
        assert!(err.contains("no backup signing key"), "{err}");
        let bad = a.path().join("bad.key");
        std::fs::write(&bad, "not hex").unwrap();
        let err = Key::read(&bad).unwrap_err().to_string();
        assert!(err.contains("64 hex digits"), "{err}");
        let err = Location::Given(a.path().join("missing"))
            .load()
            .unwrap_err();
        assert!(err.to_string().contains("cannot read"), "{err}");
    }
}
